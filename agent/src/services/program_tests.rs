//! Tests of the programmer over fake maps: incremental changes touch only their service, and
//! a snapshot reconciles against whatever the maps held (an earlier agent's pins).

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::lb::{L4Proto, LbError, Programmed, Vip};

/// Maps in memory that log every write.
#[derive(Default)]
struct FakeMaps {
    entries: Programmed,
    affinity: HashMap<Vip, u32>,
    log: Vec<String>,
}

impl Maps for FakeMaps {
    fn set_backends(&mut self, vip: Vip, backends: &[SocketAddrV4]) -> Result<(), LbError> {
        self.log.push(format!("set {vip} {}", backends.len()));
        self.entries.insert(vip, backends.to_vec());
        Ok(())
    }

    fn remove(&mut self, vip: Vip) -> Result<bool, LbError> {
        self.log.push(format!("remove {vip}"));
        Ok(self.entries.remove(&vip).is_some())
    }

    fn programmed(&mut self) -> Result<Programmed, LbError> {
        Ok(self.entries.clone())
    }

    fn set_affinity(&mut self, vip: Vip, timeout_s: Option<u32>) -> Result<(), LbError> {
        self.log.push(format!("affinity {vip} {timeout_s:?}"));
        match timeout_s {
            Some(t) => self.affinity.insert(vip, t),
            None => self.affinity.remove(&vip),
        };
        Ok(())
    }

    fn affinities(&mut self) -> Result<HashMap<Vip, u32>, LbError> {
        Ok(self.affinity.clone())
    }
}

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

fn slice(service: &str, ips: &[&str]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn vip(ip: &str) -> Vip {
    Vip::new(SocketAddrV4::new(ip.parse().unwrap(), 80), L4Proto::Tcp)
}

fn programmer() -> Programmer<FakeMaps> {
    Programmer::new(FakeMaps::default(), Default::default())
}

#[test]
fn a_change_to_one_service_touches_only_its_entry() {
    let mut p = programmer();
    let now = Instant::now();
    p.snapshot(
        vec![service("a", "10.43.0.1"), service("b", "10.43.0.2")],
        vec![slice("a", &["10.42.0.1"]), slice("b", &["10.42.0.2"])],
        now,
    )
    .unwrap();
    assert_eq!(p.maps().entries.len(), 2);
    p.maps().log.clear();

    let w = p
        .apply(
            Change::Slice(Box::new(slice("b", &["10.42.0.2", "10.42.0.3"]))),
            now,
        )
        .unwrap();
    assert_eq!(w, Writes { set: 1, removed: 0 });
    assert_eq!(p.maps().log, ["set 10.43.0.2:80/Tcp 2"]);

    // The same slice again (e.g. a status-only update) writes nothing.
    let w = p
        .apply(
            Change::Slice(Box::new(slice("b", &["10.42.0.3", "10.42.0.2"]))),
            now,
        )
        .unwrap();
    assert_eq!(w, Writes::default());

    // Scaled to zero: the entry stays with no backends, so connects are refused.
    p.apply(Change::Slice(Box::new(slice("b", &[]))), now)
        .unwrap();
    assert_eq!(
        p.maps().entries[&vip("10.43.0.2")],
        Vec::<SocketAddrV4>::new()
    );

    // Deleting the service removes its entry, and only it.
    p.maps().log.clear();
    p.apply(Change::ServiceRemoved(NsName::new("default", "b")), now)
        .unwrap();
    assert_eq!(p.maps().log, ["remove 10.43.0.2:80/Tcp"]);
    assert_eq!(
        p.maps().entries.keys().copied().collect::<Vec<_>>(),
        [vip("10.43.0.1")]
    );
}

#[test]
fn a_snapshot_reconciles_with_what_the_pins_hold() {
    let mut maps = FakeMaps::default();
    let stale = vip("10.43.0.99");
    let kept = vip("10.43.0.1");
    let backend = SocketAddrV4::new("10.42.0.1".parse().unwrap(), 8080);
    maps.entries = HashMap::from([(stale, vec![backend]), (kept, vec![backend])]);
    let mut p = Programmer::new(maps, Default::default());
    let w = p
        .snapshot(
            vec![service("a", "10.43.0.1"), service("c", "10.43.0.3")],
            vec![slice("a", &["10.42.0.1"]), slice("c", &["10.42.0.5"])],
            Instant::now(),
        )
        .unwrap();
    // The stale entry goes, the unchanged one is not rewritten, the missing one is added.
    assert_eq!(w, Writes { set: 1, removed: 1 });
    let mut log = p.maps().log.clone();
    log.sort();
    assert_eq!(log, ["remove 10.43.0.99:80/Tcp", "set 10.43.0.3:80/Tcp 1"]);
}

#[test]
fn static_entries_survive_snapshots_and_dns_follows_every_change() {
    use hickory_proto::rr::{Name, RecordType};
    use std::str::FromStr;

    let zone = std::sync::Arc::new(crate::dns::Zone::default());
    let mut p = programmer().with_zone(zone.clone());
    let dns_vip = vip("10.43.0.10");
    let listener: SocketAddrV4 = "10.42.0.1:53".parse().unwrap();
    let key = NsName::new("", "cluster-dns");
    p.set_static(key, [(dns_vip, vec![listener])].into_iter().collect())
        .unwrap();
    assert_eq!(p.maps().entries.get(&dns_vip), Some(&vec![listener]));

    let now = Instant::now();
    p.snapshot(vec![service("web", "10.43.0.20")], vec![], now)
        .unwrap();
    assert_eq!(
        p.maps().entries.get(&dns_vip),
        Some(&vec![listener]),
        "a snapshot does not remove the agent's own entry"
    );
    let web = Name::from_str("web.default.svc.cluster.local.").unwrap();
    let api = Name::from_str("api.default.svc.cluster.local.").unwrap();
    assert!(matches!(
        zone.lookup(&web, RecordType::A),
        crate::dns::Lookup::Found { .. }
    ));

    p.apply(Change::Service(Box::new(service("api", "10.43.0.21"))), now)
        .unwrap();
    assert!(matches!(
        zone.lookup(&api, RecordType::A),
        crate::dns::Lookup::Found { .. }
    ));
    p.apply(Change::ServiceRemoved(NsName::new("default", "web")), now)
        .unwrap();
    assert_eq!(
        zone.lookup(&web, RecordType::A),
        crate::dns::Lookup::NxDomain
    );
    p.snapshot(vec![], vec![], now).unwrap();
    assert_eq!(
        zone.lookup(&api, RecordType::A),
        crate::dns::Lookup::NxDomain
    );
    assert!(p.maps().entries.contains_key(&dns_vip));
}

#[test]
fn client_ip_affinity_follows_the_service_spec() {
    let mut p = programmer();
    let now = Instant::now();
    let sticky = |timeout: Option<i32>| {
        let mut s = service("web", "10.43.0.20");
        let spec = s.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = timeout
            .map(|t| serde_json::from_value(json!({"clientIP": {"timeoutSeconds": t}})).unwrap());
        s
    };
    // Left over by an earlier agent for a service that no longer has affinity: removed.
    p.maps().affinity.insert(vip("10.43.0.99"), 5);
    p.snapshot(vec![sticky(None)], vec![slice("web", &["10.42.0.5"])], now)
        .unwrap();
    assert_eq!(
        p.maps().affinity,
        HashMap::from([(vip("10.43.0.20"), desired::DEFAULT_AFFINITY_TIMEOUT)])
    );
    p.apply(Change::Service(Box::new(sticky(Some(30)))), now)
        .unwrap();
    assert_eq!(p.maps().affinity, HashMap::from([(vip("10.43.0.20"), 30)]));
    p.apply(Change::Service(Box::new(service("web", "10.43.0.20"))), now)
        .unwrap();
    assert!(p.maps().affinity.is_empty());
    p.apply(Change::Service(Box::new(sticky(Some(30)))), now)
        .unwrap();
    p.apply(Change::ServiceRemoved(NsName::new("default", "web")), now)
        .unwrap();
    assert!(p.maps().affinity.is_empty() && p.maps().entries.is_empty());
}

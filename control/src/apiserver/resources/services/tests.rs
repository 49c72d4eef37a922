//! Unit tests of services: defaults, validation, ClusterIP / NodePort allocation and the row.

use serde_json::{Value, json};

use super::*;

fn svc(name: &str, spec: Value) -> Value {
    let mut s = json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec});
    defaults(&mut s);
    s
}

fn msg(errs: &[FieldError]) -> Vec<String> {
    errs.iter()
        .map(|e| format!("{}: {}", e.field, e.body()))
        .collect()
}

#[test]
fn network_parsing() {
    let net = ServiceNetwork::default();
    assert_eq!(net.cidr(), "10.43.0.0/16");
    assert_eq!(net.first_ip().to_string(), "10.43.0.1");
    assert!(net.contains("10.43.255.254".parse().unwrap()));
    assert!(!net.contains("10.43.255.255".parse().unwrap()));
    assert!(!net.contains("10.43.0.0".parse().unwrap()));
    assert!(!net.contains("10.44.0.1".parse().unwrap()));
    assert_eq!(
        ServiceNetwork::parse("10.96.5.0/12").unwrap().cidr(),
        "10.96.0.0/12"
    );
    assert!(matches!(
        ServiceNetwork::parse("nope"),
        Err(ServiceNetworkError::Cidr(_))
    ));
    assert!(matches!(
        ServiceNetwork::parse("10.0.0.0/30"),
        Err(ServiceNetworkError::TooSmall(_))
    ));
}

#[test]
fn defaults_ports_and_type() {
    let s = svc(
        "web",
        json!({"ports": [{"port": 80}], "selector": {"app": "web"}}),
    );
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["sessionAffinity"], "None");
    assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert!(validate(&s).is_empty());
}

#[test]
fn validation_messages() {
    let s = svc(
        "web",
        json!({"type": "Weird", "ports": [{"port": 0}, {"port": 81, "protocol": "ICMP"}]}),
    );
    let m = msg(&validate(&s));
    assert!(m.contains(&r#"spec.type: Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#.to_string()), "{m:?}");
    assert!(
        m.contains(
            &"spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
                .to_string()
        ),
        "{m:?}"
    );
    assert!(
        m.contains(&"spec.ports[0].name: Required value".to_string()),
        "{m:?}"
    );
    assert!(m.contains(&r#"spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#.to_string()), "{m:?}");
    let s = svc("web", json!({}));
    assert_eq!(msg(&validate(&s)), ["spec.ports: Required value"]);
    let s = svc("web", json!({"clusterIP": "None"}));
    assert!(validate(&s).is_empty(), "headless services need no ports");
    let s = svc("web", json!({"ports": [{"port": 80, "nodePort": 30001}]}));
    assert_eq!(
        msg(&validate(&s)),
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
}

#[test]
fn cluster_ips_are_allocated_and_checked() {
    let net = ServiceNetwork::default();
    let mut k = kubernetes_service(&net, 6443);
    defaults(&mut k);
    assert!(allocate(&mut k, None, &[], &net).is_empty());
    assert_eq!(k["spec"]["clusterIPs"], json!(["10.43.0.1"]));

    let mut a = svc("a", json!({"ports": [{"port": 80}]}));
    assert!(allocate(&mut a, None, std::slice::from_ref(&k), &net).is_empty());
    let ip_a: Ipv4Addr = a["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(net.contains(ip_a));
    assert_ne!(ip_a, net.first_ip());

    let mut b = svc("b", json!({"ports": [{"port": 80}]}));
    assert!(allocate(&mut b, None, &[k.clone(), a.clone()], &net).is_empty());
    assert_ne!(b["spec"]["clusterIP"], a["spec"]["clusterIP"]);

    let mut dup = svc(
        "c",
        json!({"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        msg(&allocate(&mut dup, None, std::slice::from_ref(&k), &net)),
        [
            r#"spec.clusterIPs: Invalid value: []string{"10.43.0.1"}: failed to allocate IP 10.43.0.1: provided IP is already allocated"#
        ]
    );
    let mut out = svc(
        "d",
        json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        msg(&allocate(&mut out, None, &[], &net)),
        [
            r#"spec.clusterIPs: Invalid value: []string{"10.96.0.5"}: failed to allocate IP 10.96.0.5: the provided IP (10.96.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"#
        ]
    );
    let mut headless = svc("h", json!({"clusterIP": "None"}));
    assert!(allocate(&mut headless, None, &[], &net).is_empty());
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
}

#[test]
fn cluster_ip_is_kept_and_immutable_on_update() {
    let net = ServiceNetwork::default();
    let mut old = svc("a", json!({"ports": [{"port": 80}]}));
    allocate(&mut old, None, &[], &net);
    let mut new = svc("a", json!({"ports": [{"port": 8080}]}));
    assert!(validate_update(&new, &old).is_empty());
    assert!(allocate(&mut new, Some(&old), &[], &net).is_empty());
    assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
    let changed = svc(
        "a",
        json!({"clusterIP": "10.43.9.9", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        msg(&validate_update(&changed, &old)),
        [r#"spec.clusterIPs[0]: Invalid value: "10.43.9.9": may not change once set"#]
    );
}

#[test]
fn node_ports_are_allocated_and_checked() {
    let net = ServiceNetwork::default();
    let mut a = svc(
        "a",
        json!({"type": "NodePort", "ports": [{"name": "x", "port": 80}, {"name": "y", "port": 81, "nodePort": 30000}]}),
    );
    assert!(allocate(&mut a, None, &[], &net).is_empty());
    assert_eq!(a["spec"]["ports"][1]["nodePort"], 30000);
    assert_eq!(a["spec"]["ports"][0]["nodePort"], 30001);
    assert_eq!(a["spec"]["externalTrafficPolicy"], "Cluster");

    let mut b = svc(
        "b",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
    );
    assert_eq!(
        msg(&allocate(&mut b, None, std::slice::from_ref(&a), &net)),
        ["spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated"]
    );
    let mut c = svc(
        "c",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
    );
    assert_eq!(
        msg(&allocate(&mut c, None, &[], &net)),
        [
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        ]
    );
    // An update keeps the allocated ports of unchanged ports.
    let mut upd = svc(
        "a",
        json!({"type": "NodePort", "ports": [{"name": "x", "port": 80}, {"name": "y", "port": 81}]}),
    );
    assert!(allocate(&mut upd, Some(&a), &[], &net).is_empty());
    assert_eq!(upd["spec"]["ports"], a["spec"]["ports"]);
}

#[test]
fn rows_like_kubectl() {
    let now: jiff::Timestamp = "2024-01-01T00:00:10Z".parse().unwrap();
    let net = ServiceNetwork::default();
    let mut s = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.43.0.7", "ports": [{"port": 80, "nodePort": 30080}, {"name": "b", "port": 53, "protocol": "UDP"}], "selector": {"b": "2", "a": "1"}}),
    );
    s["spec"]["ports"][0]["name"] = json!("a");
    allocate(&mut s, None, &[], &net);
    let cells = row(&s, now);
    assert_eq!(
        cells,
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.43.0.7"),
            json!("<none>"),
            json!("80:30080/TCP,53:30000/UDP"),
            json!("10s"),
            json!("a=1,b=2")
        ]
    );
    let lb = svc(
        "lb",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    );
    assert_eq!(row(&lb, now)[3], "<pending>");
    let en = svc(
        "en",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    assert_eq!(row(&en, now)[2], "<none>");
    assert_eq!(row(&en, now)[3], "example.com");
}

mod through_the_registry {
    use std::sync::Arc;

    use serde_json::json;

    use crate::apiserver::ApiError;
    use crate::apiserver::registry::memstore::MemStore;
    use crate::apiserver::registry::{ListParams, Registry, WriteParams, resource};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_get_distinct_ips_and_ports() {
        let reg = Registry::new(Arc::new(MemStore::new())).await.unwrap();
        let def = resource("", "services").unwrap();
        let kube = reg
            .get_json(def, Some("default"), "kubernetes")
            .await
            .unwrap();
        assert_eq!(kube["spec"]["clusterIP"], "10.43.0.1");
        assert_eq!(kube["spec"]["ports"][0]["targetPort"], 6443);
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let reg = reg.clone();
                tokio::spawn(async move {
                    let svc = json!({"metadata": {"name": format!("s{i}")}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
                    reg.create_json(def, Some("default"), svc, WriteParams::default())
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let list = reg
            .list_json(def, None, &ListParams::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), 25);
        let mut ips: Vec<&str> = list
            .items
            .iter()
            .map(|s| s["spec"]["clusterIP"].as_str().unwrap())
            .collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 25, "every service has its own IP");
        let mut ports: Vec<i64> = list
            .items
            .iter()
            .filter_map(|s| s["spec"]["ports"][0]["nodePort"].as_i64())
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 24, "every NodePort service has its own port");

        // A deleted service's address is free again; a taken one is refused.
        let taken = list.items[1]["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        let dup = json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": taken, "ports": [{"port": 80}]}});
        let err = reg
            .create_json(def, Some("default"), dup.clone(), WriteParams::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
        assert!(
            err.to_string().contains("provided IP is already allocated"),
            "{err}"
        );
        let owner = list.items[1]["metadata"]["name"].as_str().unwrap();
        reg.delete_json(def, Some("default"), owner, &Default::default())
            .await
            .unwrap();
        let created = reg
            .create_json(def, Some("default"), dup, WriteParams::default())
            .await
            .unwrap();
        assert_eq!(created["spec"]["clusterIP"], taken.as_str());

        // Updates keep the address; changing it is refused.
        let mut upd = created.clone();
        upd["spec"]["clusterIP"] = json!("");
        upd["spec"]["clusterIPs"] = json!(null);
        upd["spec"]["ports"] = json!([{"port": 81}]);
        let updated = reg
            .update_json(
                def,
                Some("default"),
                "dup",
                upd,
                crate::apiserver::registry::Subresource::Main,
                WriteParams::default(),
            )
            .await
            .unwrap();
        assert_eq!(updated["spec"]["clusterIP"], taken.as_str());
        assert_eq!(updated["spec"]["ports"][0]["targetPort"], 81);
    }
}

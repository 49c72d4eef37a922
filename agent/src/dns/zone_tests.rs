//! Cluster DNS answers: services, headless endpoints, SRV for named ports, pod names,
//! NXDOMAIN and REFUSED — through the zone and through a real UDP/TCP server on loopback.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::server::answer;
use super::*;
use crate::services::NsName;

fn service(json: serde_json::Value) -> Service {
    serde_json::from_value(json).unwrap()
}

fn slice(json: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json).unwrap()
}

fn zone() -> Zone {
    let zone = Zone::default();
    let web = service(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.43.0.20", "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP"}]}
    }));
    let db = service(serde_json::json!({
        "metadata": {"name": "db", "namespace": "prod"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
    }));
    let db_slice = slice(serde_json::json!({
        "metadata": {"name": "db-1", "namespace": "prod",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.1.8"], "conditions": {"ready": true}},
            {"addresses": ["10.42.1.9"], "conditions": {"ready": false}}]
    }));
    let ext = service(serde_json::json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.org"}
    }));
    zone.set(&NsName::new("default", "web"), service_record(&web, &[]));
    zone.set(
        &NsName::new("prod", "db"),
        service_record(&db, &[&db_slice]),
    );
    zone.set(&NsName::new("default", "ext"), service_record(&ext, &[]));
    zone
}

fn ask(zone: &Zone, name: &str, qtype: RecordType) -> Option<Message> {
    let mut q = Message::new(7, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    answer(zone, &q)
}

fn ips(m: &Message) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_service_name_resolves_to_its_cluster_ip() {
    let z = zone();
    let m = ask(&z, "web.default.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.id, 7);
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 43, 0, 20)]);
    // Case does not matter; AAAA exists with no data (NOERROR, empty, SOA for caching).
    let m = ask(&z, "WEB.Default.SVC.cluster.local.", RecordType::A).unwrap();
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 43, 0, 20)]);
    let m = ask(&z, "web.default.svc.cluster.local.", RecordType::AAAA).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
}

#[test]
fn unknown_names_in_the_zone_are_nxdomain_and_other_domains_are_not_ours() {
    let z = zone();
    for name in [
        "nope.default.svc.cluster.local.",
        "web.other.svc.cluster.local.",
        // The search path applied to an outside name.
        "example.com.default.svc.cluster.local.",
        "x.y.z.w.v.cluster.local.",
    ] {
        let m = ask(&z, name, RecordType::A).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    assert!(ask(&z, "example.com.", RecordType::A).is_none());
    assert!(ask(&z, "notcluster.local.", RecordType::A).is_none());
}

#[test]
fn headless_services_resolve_to_ready_endpoints_and_endpoint_names() {
    let z = zone();
    let m = ask(&z, "db.prod.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(
        ips(&m),
        [Ipv4Addr::new(10, 42, 0, 7), Ipv4Addr::new(10, 42, 1, 8)]
    );
    let m = ask(&z, "db-0.db.prod.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 42, 0, 7)]);
    let m = ask(&z, "10-42-1-8.db.prod.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 42, 1, 8)]);
    // Not ready: not published.
    let m = ask(&z, "10-42-1-9.db.prod.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn srv_records_name_the_port_of_named_service_ports() {
    let z = zone();
    let m = ask(
        &z,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    let srv: Vec<(u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    assert_eq!(srv, [(80, "web.default.svc.cluster.local.".to_string())]);
    let mut additionals = m.clone();
    additionals.answers = m.additionals.clone();
    assert_eq!(ips(&additionals), [Ipv4Addr::new(10, 43, 0, 20)]);
    // UDP port by its protocol; a wrong protocol or name does not exist.
    let m = ask(
        &z,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    assert_eq!(m.answers.len(), 1);
    let m = ask(
        &z,
        "_dns._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Headless: one record per endpoint, pointing at the endpoint's name.
    let m = ask(&z, "_pg._tcp.db.prod.svc.cluster.local.", RecordType::SRV).unwrap();
    let mut targets: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(format!("{}:{}", s.target, s.port)),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "10-42-1-8.db.prod.svc.cluster.local.:5432",
            "db-0.db.prod.svc.cluster.local.:5432"
        ]
    );
}

#[test]
fn pod_names_and_external_names() {
    let z = zone();
    let m = ask(&z, "10-42-0-5.default.pod.cluster.local.", RecordType::A).unwrap();
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 42, 0, 5)]);
    let m = ask(&z, "bad-ip.default.pod.cluster.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&z, "ext.default.svc.cluster.local.", RecordType::A).unwrap();
    let cname: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(cname, ["example.org."]);
}

#[test]
fn removing_a_service_makes_its_name_nxdomain() {
    let z = zone();
    z.set(&NsName::new("default", "web"), None);
    let m = ask(&z, "web.default.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

fn query_bytes(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut q = Message::new(0x1234, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    q.to_vec().unwrap()
}

#[tokio::test]
async fn the_server_answers_over_udp_and_tcp_and_refuses_other_domains() {
    let server = DnsServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let task = server.spawn(Arc::new(zone()), None);

    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(addr).await.unwrap();
    let mut buf = [0u8; 1500];
    let mut ask_udp = async |name: &str| {
        udp.send(&query_bytes(name, RecordType::A)).await.unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    };
    let m = ask_udp("web.default.svc.cluster.local.").await;
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(ips(&m), [Ipv4Addr::new(10, 43, 0, 20)]);
    let m = ask_udp("example.com.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        let q = query_bytes("db.prod.svc.cluster.local.", RecordType::A);
        tcp.write_u16(q.len() as u16).await.unwrap();
        tcp.write_all(&q).await.unwrap();
        let len = tcp.read_u16().await.unwrap();
        let mut reply = vec![0u8; len as usize];
        tcp.read_exact(&mut reply).await.unwrap();
        assert_eq!(ips(&Message::from_vec(&reply).unwrap()).len(), 2);
    }
    task.abort();
}

#[tokio::test]
async fn other_domains_are_relayed_when_an_upstream_is_configured() {
    // A fake upstream on loopback that answers every query with 192.0.2.1.
    let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let (n, peer) = upstream.recv_from(&mut buf).await.unwrap();
            let query = Message::from_vec(&buf[..n]).unwrap();
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.add_queries(query.queries.clone());
            let name = query.queries[0].name().clone();
            reply.add_answer(hickory_proto::rr::Record::from_rdata(
                name,
                60,
                RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            upstream
                .send_to(&reply.to_vec().unwrap(), peer)
                .await
                .unwrap();
        }
    });
    let server = DnsServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let task = server.spawn(Arc::new(zone()), Some(upstream_addr));
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(addr).await.unwrap();
    let mut buf = [0u8; 1500];
    for (name, want) in [
        ("example.com.", Ipv4Addr::new(192, 0, 2, 1)),
        (
            "web.default.svc.cluster.local.",
            Ipv4Addr::new(10, 43, 0, 20),
        ),
    ] {
        udp.send(&query_bytes(name, RecordType::A)).await.unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        assert_eq!(
            ips(&Message::from_vec(&buf[..n]).unwrap()),
            [want],
            "{name}"
        );
    }
    task.abort();
    fake.abort();
}

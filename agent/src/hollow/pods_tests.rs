//! Tests of the hollow node's fake runtime.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{FakeRuntime, Report};

fn pod(uid: &str, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": format!("p-{uid}"), "namespace": "default", "uid": uid},
        "spec": {"nodeName": "hollow-00000", "containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}
        ]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// JSON merge (objects merge, everything else replaces).
fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn running_ip(r: &Report) -> String {
    match r {
        Report::Running { status, .. } => {
            assert_eq!(status.phase.as_deref(), Some("Running"));
            assert_eq!(status.qos_class.as_deref(), Some("Burstable"));
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            assert!(ready, "a running hollow pod is Ready");
            let cs = status.container_statuses.as_ref().unwrap();
            assert_eq!(cs.len(), 1);
            assert!(cs[0].ready && cs[0].state.as_ref().unwrap().running.is_some());
            status.pod_ip.clone().unwrap()
        }
        other => panic!("expected Running, got {other:?}"),
    }
}

#[test]
fn new_pods_run_once_with_distinct_ips_and_deleted_ones_free_theirs() {
    let mut rt = FakeRuntime::new("10.42.7.0/24", "10.255.0.7".into());
    let a = running_ip(&rt.upsert(pod("a", json!({}))).unwrap());
    let b = running_ip(&rt.upsert(pod("b", json!({}))).unwrap());
    assert_eq!((a.as_str(), b.as_str()), ("10.42.7.2", "10.42.7.3"));
    // A later update of a running pod reports nothing new.
    assert_eq!(
        rt.upsert(pod("a", json!({"metadata": {"labels": {"x": "y"}}}))),
        None
    );

    let deleting = pod(
        "a",
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    assert!(matches!(rt.upsert(deleting), Some(Report::Terminated { uid, .. }) if uid == "a"));
    assert_eq!(rt.len(), 1);
    // a's address is reused.
    assert_eq!(
        running_ip(&rt.upsert(pod("c", json!({}))).unwrap()),
        "10.42.7.2"
    );
}

#[test]
fn a_snapshot_adopts_reported_pods_and_forgets_vanished_ones() {
    let mut rt = FakeRuntime::new("10.42.7.0/24", "10.255.0.7".into());
    rt.upsert(pod("gone", json!({}))).unwrap();
    let adopted = pod(
        "old",
        json!({"status": {"phase": "Running", "podIP": "10.42.7.2"}}),
    );
    let reports = rt.snapshot(vec![adopted, pod("new", json!({}))]);
    assert_eq!(
        reports.len(),
        1,
        "only the new pod is reported: {reports:?}"
    );
    // 10.42.7.2 belongs to the adopted pod, so the new one gets the next address.
    assert_eq!(running_ip(&reports[0]), "10.42.7.3");
    assert_eq!(rt.len(), 2);
}

#[test]
fn a_full_cidr_reports_nothing_rather_than_reusing_an_address() {
    let mut rt = FakeRuntime::new("10.42.7.0/30", "10.255.0.7".into());
    // A /30 has offsets 0..4: 2 is the only pod address (1 is the bridge, 3 broadcast).
    running_ip(&rt.upsert(pod("a", json!({}))).unwrap());
    assert_eq!(rt.upsert(pod("b", json!({}))), None);
}

//! Tests of the shared pod fan-out over the in-memory registry.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_proto::node::node_command::Command;
use tokio::sync::mpsc;

use super::PodFanout;
use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::registry::{DeleteParams, Registry};

async fn registry() -> Registry {
    Registry::new(Arc::new(MemStore::new())).await.unwrap()
}

async fn pod(r: &Registry, name: &str, node: Option<&str>) -> String {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let created = r.create(&p).await.unwrap();
    if let Some(node) = node {
        r.bind_pod("default", name, node).await.unwrap();
    }
    created.metadata.uid.unwrap()
}

async fn next(rx: &mut mpsc::Receiver<skiff_proto::node::NodeCommand>) -> Command {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a command in time")
        .expect("the stream is open")
        .command
        .unwrap()
}

fn name_of(json: &[u8]) -> String {
    let p: Pod = serde_json::from_slice(json).unwrap();
    p.metadata.name.unwrap()
}

#[tokio::test]
async fn a_node_gets_its_pods_and_nothing_else() {
    let r = registry().await;
    pod(&r, "early", Some("n1")).await;
    pod(&r, "elsewhere", Some("n2")).await;
    pod(&r, "pending", None).await;
    let fanout = PodFanout::start(r.clone());
    let (tx, mut rx) = mpsc::channel(64);
    let _cut = fanout.subscribe("n1", tx).await;
    match next(&mut rx).await {
        Command::Snapshot(s) => {
            let names: Vec<String> = s.pods_json.iter().map(|j| name_of(j)).collect();
            assert_eq!(names, vec!["early"]);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    // Binding a pending pod to n1 delivers it; a pod bound to n2 does not reach n1.
    r.bind_pod("default", "pending", "n1").await.unwrap();
    pod(&r, "later", Some("n2")).await;
    match next(&mut rx).await {
        Command::Pod(p) => assert_eq!(name_of(&p.pod_json), "pending"),
        other => panic!("expected pending, got {other:?}"),
    }
    let uid = r
        .get::<Pod>(Some("default"), "early")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    r.delete::<Pod>(
        Some("default"),
        "early",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A graceful delete first updates the pod (deletionTimestamp), then it goes.
    loop {
        match next(&mut rx).await {
            Command::Pod(p) => assert_eq!(name_of(&p.pod_json), "early"),
            Command::PodRemoved(removed) => {
                assert_eq!(removed.uid, uid);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rx.try_recv().is_err(), "nothing about n2's pods");
}

#[tokio::test]
async fn a_node_that_cannot_keep_up_is_cut_off() {
    let r = registry().await;
    let fanout = PodFanout::start(r.clone());
    let (tx, mut rx) = mpsc::channel(2);
    let cut = fanout.subscribe("n1", tx).await;
    // The snapshot takes one slot; three more pods overflow the channel.
    for i in 0..3 {
        pod(&r, &format!("p{i}"), Some("n1")).await;
    }
    tokio::time::timeout(Duration::from_secs(5), cut)
        .await
        .expect("cut off in time")
        .expect("the cut signal");
    assert!(matches!(next(&mut rx).await, Command::Snapshot(_)));
    // A reconnect gets everything in its snapshot.
    let (tx, mut rx) = mpsc::channel(64);
    let _cut = fanout.subscribe("n1", tx).await;
    match next(&mut rx).await {
        Command::Snapshot(s) => assert_eq!(s.pods_json.len(), 3),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

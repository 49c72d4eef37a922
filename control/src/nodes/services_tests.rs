//! Tests of the `Services` stream over the in-memory store: snapshot then changes, resumption
//! after the versions an agent names, and a fresh snapshot when that history is gone.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::apiserver::registry::DeleteParams;
use crate::apiserver::registry::memstore::MemStore;

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap()
}

fn slice(name: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "a"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.5"]}]
    }))
    .unwrap()
}

fn request(services_rv: &str, slices_rv: &str) -> ServicesRequest {
    ServicesRequest {
        node_name: "n1".into(),
        services_resource_version: services_rv.into(),
        endpoint_slices_resource_version: slices_rv.into(),
    }
}

async fn next(rx: &mut mpsc::Receiver<Result<ServiceUpdate, Status>>) -> Update {
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an update in time")
        .expect("stream open")
        .expect("not an error");
    msg.update.expect("an update")
}

fn upserted_name(u: &Update) -> (i32, String) {
    let Update::Upsert(u) = u else {
        panic!("expected an upsert, got {u:?}")
    };
    let v: serde_json::Value = serde_json::from_slice(&u.object_json).unwrap();
    (u.kind, v["metadata"]["name"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn snapshot_then_changes_then_resume_then_resnapshot_after_compaction() {
    let store = Arc::new(MemStore::new());
    let registry = Registry::new(store.clone()).await.unwrap();
    registry.create(&service("a")).await.unwrap();
    registry.create(&slice("a-1")).await.unwrap();

    let mut rx = follow(registry.clone(), request("", ""));
    let Update::Snapshot(snap) = next(&mut rx).await else {
        panic!("a fresh stream starts with a snapshot")
    };
    // `a` and the `kubernetes` service the registry creates.
    assert_eq!(
        (snap.services_json.len(), snap.endpoint_slices_json.len()),
        (2, 1)
    );
    let (svc_rv, slice_rv) = (
        snap.services_resource_version.clone(),
        snap.endpoint_slices_resource_version.clone(),
    );

    registry.create(&service("b")).await.unwrap();
    let u = next(&mut rx).await;
    assert_eq!(
        upserted_name(&u),
        (ServiceObjectKind::Service as i32, "b".into())
    );
    registry
        .delete::<EndpointSlice>(Some("default"), "a-1", &DeleteParams::default())
        .await
        .unwrap();
    let Update::Removed(r) = next(&mut rx).await else {
        panic!("expected a removal")
    };
    assert_eq!(
        (r.kind, r.namespace.as_str(), r.name.as_str()),
        (ServiceObjectKind::EndpointSlice as i32, "default", "a-1")
    );
    assert!(!r.resource_version.is_empty());
    drop(rx);

    // An agent that reconnects with the snapshot's versions gets exactly what it missed.
    let mut rx = follow(registry.clone(), request(&svc_rv, &slice_rv));
    let mut got = [next(&mut rx).await, next(&mut rx).await];
    got.sort_by_key(|u| matches!(u, Update::Removed(_)));
    assert_eq!(upserted_name(&got[0]).1, "b");
    assert!(matches!(&got[1], Update::Removed(r) if r.name == "a-1"));
    drop(rx);

    // Once that history is compacted, the reconnecting agent gets a full snapshot instead.
    let latest: u64 = r.resource_version.parse().unwrap();
    store.compact(latest);
    let mut rx = follow(registry.clone(), request(&svc_rv, &slice_rv));
    let Update::Snapshot(snap) = next(&mut rx).await else {
        panic!("expected a new snapshot after compaction")
    };
    assert_eq!(
        (snap.services_json.len(), snap.endpoint_slices_json.len()),
        (3, 0)
    );
}

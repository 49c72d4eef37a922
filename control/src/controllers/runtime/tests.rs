//! Runtime tests: owner mapping, the runner's one-at-a-time guarantee and its retry policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::apiserver::registry::memstore::MemStore;

fn owned(kind: &str, controller: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some("p".into()),
        namespace: Some("ns".into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: "rs".into(),
            uid: "u".into(),
            controller: Some(controller),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn owner_key_needs_a_controller_ref_of_the_kind() {
    assert_eq!(
        owner_key(&owned("ReplicaSet", true), "ReplicaSet"),
        Some(ObjectKey::new(Some("ns"), "rs"))
    );
    assert_eq!(owner_key(&owned("ReplicaSet", false), "ReplicaSet"), None);
    assert_eq!(owner_key(&owned("Job", true), "ReplicaSet"), None);
    assert_eq!(ObjectKey::new(Some("ns"), "x").to_string(), "ns/x");
}

async fn registry() -> Registry {
    Registry::new(Arc::new(MemStore::new())).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn runner_never_runs_a_key_twice_at_once_and_retries_errors() {
    let c = Controller::new("test", registry().await);
    let queue = c.queue();
    let running: Arc<Mutex<HashMap<ObjectKey, usize>>> = Arc::default();
    let max_seen = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, m, n) = (running.clone(), max_seen.clone(), calls.clone());
    tokio::spawn(c.run(4, move |key: ObjectKey| {
        let (r, m, n) = (r.clone(), m.clone(), n.clone());
        async move {
            let now = {
                let mut map = r.lock().unwrap();
                let e = map.entry(key.clone()).or_default();
                *e += 1;
                *e
            };
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            *r.lock().unwrap().get_mut(&key).unwrap() -= 1;
            // The first two calls fail: the key comes back after its back-off.
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("boom")
            } else {
                Ok(Action::AwaitChange)
            }
        }
    }));
    let key = ObjectKey::new(Some("ns"), "a");
    for _ in 0..5 {
        queue.add(key.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        1,
        "same key ran concurrently"
    );
    // 2 failures, then a success; the adds during the first run collapse into one re-run.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(queue.failures(&key), 0);
}

#[tokio::test]
async fn watches_feed_cache_and_queue_from_the_registry() {
    let r = registry().await;
    let c = Controller::new("test", r.clone());
    let queue = c.queue();
    let pods = c.watches::<Pod, _>(|p| owner_key(&p.metadata, "ReplicaSet").into_iter().collect());
    pods.wait_ready().await;
    let mut pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pod.metadata.owner_references = owned("ReplicaSet", true).owner_references;
    r.create(&pod).await.unwrap();
    let key = tokio::time::timeout(Duration::from_secs(5), queue.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key, ObjectKey::new(Some("default"), "rs"));
    assert!(pods.get(&ObjectKey::new(Some("default"), "p")).is_some());
}

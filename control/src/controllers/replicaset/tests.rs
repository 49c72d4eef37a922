//! ReplicaSet reconcile against the registry over the in-memory store.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::json;

use super::*;
use crate::controllers::testutil::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("default"), name)
}

async fn get_rs(r: &Registry, name: &str) -> ReplicaSet {
    r.get::<ReplicaSet>(Some("default"), name).await.unwrap()
}

fn live(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test]
async fn scales_up_with_owned_pods_from_the_template_and_reports_status() {
    let r = registry().await;
    let rs = create_rs(&r, "web", 3).await;
    reconcile(&r, &key("web")).await.unwrap();
    let pods = pods(&r).await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "web");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, rs.metadata.uid.clone().unwrap());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(owner.kind, "ReplicaSet");
    }
    // Created pods count on the next pass (the watch brings the controller back).
    reconcile(&r, &key("web")).await.unwrap();
    let s = get_rs(&r, "web").await.status.unwrap();
    assert_eq!(
        (s.replicas, s.ready_replicas, s.available_replicas),
        (3, Some(0), Some(0))
    );
    assert_eq!(s.fully_labeled_replicas, Some(3));
    assert_eq!(s.observed_generation, Some(1));

    all_ready(&r).await;
    reconcile(&r, &key("web")).await.unwrap();
    let s = get_rs(&r, "web").await.status.unwrap();
    assert_eq!((s.ready_replicas, s.available_replicas), (Some(3), Some(3)));

    let events = r
        .list::<Event>(Some("default"), &Default::default())
        .await
        .unwrap()
        .items;
    let created = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
        .count();
    assert_eq!(created, 3);
    assert!(
        events
            .iter()
            .all(|e| e.involved_object.kind.as_deref() == Some("ReplicaSet")
                || e.reason.as_deref() != Some("SuccessfulCreate"))
    );
}

#[tokio::test]
async fn scales_down_preferring_unready_then_newer_pods() {
    let r = registry().await;
    create_rs(&r, "web", 4).await;
    reconcile(&r, &key("web")).await.unwrap();
    let all = pods(&r).await;
    // Two ready (bound, running), one bound but not ready, one unscheduled.
    make_ready(&r, &all[0]).await;
    make_ready(&r, &all[1]).await;
    r.bind_pod("default", all[2].metadata.name.as_ref().unwrap(), "n1")
        .await
        .unwrap();
    r.patch::<ReplicaSet>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 2}}),
    )
    .await
    .unwrap();
    reconcile(&r, &key("web")).await.unwrap();
    let left: Vec<String> = pods(&r)
        .await
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let mut kept = left.clone();
    kept.sort();
    let mut want = vec![
        all[0].metadata.name.clone().unwrap(),
        all[1].metadata.name.clone().unwrap(),
    ];
    want.sort();
    // The bound unready pod is terminating (graceful) or gone; the unscheduled one is gone.
    let remaining = pods(&r).await;
    let names: Vec<_> = live(&remaining)
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, want, "all pods now: {kept:?}");
}

#[test]
fn deletion_order_matches_upstream() {
    let pod = |node: Option<&str>, phase: &str, ready: bool, restarts: i32, created: &str| -> Pod {
        let mut conds = vec![];
        if ready {
            conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": created}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": created},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready, "restartCount": restarts}]}
        }))
        .unwrap()
    };
    let t1 = "2024-01-01T00:00:00Z";
    let t2 = "2024-01-02T00:00:00Z";
    let unscheduled = pod(None, "Pending", false, 0, t1);
    let pending = pod(Some("n"), "Pending", false, 0, t1);
    let running_unready = pod(Some("n"), "Running", false, 0, t1);
    let ready_new = pod(Some("n"), "Running", true, 0, t2);
    let ready_old = pod(Some("n"), "Running", true, 0, t1);
    let ready_old_restarts = pod(Some("n"), "Running", true, 5, t1);
    let mut v = vec![
        &ready_old,
        &ready_old_restarts,
        &ready_new,
        &running_unready,
        &pending,
        &unscheduled,
    ];
    v.sort_by(|a, b| deletion_order(a, b));
    let order: Vec<*const Pod> = v.into_iter().map(|p| p as *const Pod).collect();
    let want: Vec<*const Pod> = [
        &unscheduled,
        &pending,
        &running_unready,
        &ready_new,
        &ready_old_restarts,
        &ready_old,
    ]
    .into_iter()
    .map(|p| p as *const Pod)
    .collect();
    assert_eq!(order, want);
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let r = registry().await;
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    r.create(&orphan).await.unwrap();
    let rs = create_rs(&r, "web", 2).await;
    reconcile(&r, &key("web")).await.unwrap();
    let pods_now = pods(&r).await;
    assert_eq!(pods_now.len(), 2, "one adopted, one created");
    let stray = r.get::<Pod>(Some("default"), "stray").await.unwrap();
    assert_eq!(
        stray.metadata.owner_references.unwrap()[0].uid,
        rs.metadata.uid.clone().unwrap()
    );
    // Relabel the stray pod: it is released and replaced.
    r.patch::<Pod>(
        Some("default"),
        "stray",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await
    .unwrap();
    reconcile(&r, &key("web")).await.unwrap();
    let stray = r.get::<Pod>(Some("default"), "stray").await.unwrap();
    assert!(
        stray
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    let owned = pods(&r)
        .await
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty())
        })
        .count();
    assert_eq!(owned, 2);
}

#[tokio::test]
async fn slow_start_creates_in_growing_batches_and_fails_loudly() {
    let r = registry().await;
    let rs = create_rs(&r, "web", 0).await;
    create_slow_start(&r, &rs, 5).await.unwrap();
    assert_eq!(pods(&r).await.len(), 5);
    // Pods for a namespace that does not exist cannot be created: the error comes back.
    let mut elsewhere = rs.clone();
    elsewhere.metadata.namespace = Some("nowhere".into());
    assert!(create_slow_start(&r, &elsewhere, 3).await.is_err());
    let stray = r
        .list::<Pod>(Some("nowhere"), &Default::default())
        .await
        .unwrap();
    assert!(stray.items.is_empty());
}

#[tokio::test]
async fn min_ready_seconds_holds_back_availability() {
    let r = registry().await;
    create_rs(&r, "web", 1).await;
    r.patch::<ReplicaSet>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"minReadySeconds": 3600}}),
    )
    .await
    .unwrap();
    reconcile(&r, &key("web")).await.unwrap();
    let p = &pods(&r).await[0];
    let name = p.metadata.name.clone().unwrap();
    r.bind_pod("default", &name, "n1").await.unwrap();
    let now = jiff::Timestamp::now().to_string();
    r.patch_status::<Pod>(
        Some("default"),
        &name,
        PatchType::Merge,
        &json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}}),
    )
    .await
    .unwrap();
    let action = reconcile(&r, &key("web")).await.unwrap();
    assert_eq!(action, Action::Requeue(Duration::from_secs(3600)));
    let s = get_rs(&r, "web").await.status.unwrap();
    assert_eq!((s.ready_replicas, s.available_replicas), (Some(1), Some(0)));
}

//! StatefulSet controller tests over the in-memory registry: ordered creation and scale down,
//! Parallel, partitioned rolling update, failed pods recreated under their name, status, and
//! the refusal of volumeClaimTemplates.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{Value, json};

use super::reconcile;
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use crate::controllers::common::is_terminating;
use crate::controllers::runtime::ObjectKey;
use crate::controllers::testutil::{make_ready, pods, registry};

async fn statefulset(r: &Registry, replicas: i32, extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": "web-svc",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    r.create(&serde_json::from_value::<StatefulSet>(v).unwrap())
        .await
        .unwrap()
}

async fn sync(r: &Registry) {
    reconcile(r, &ObjectKey::new(Some("default"), "web"))
        .await
        .unwrap();
}

async fn get(r: &Registry) -> StatefulSet {
    r.get::<StatefulSet>(Some("default"), "web").await.unwrap()
}

/// Names of the pods that are not terminating, sorted.
async fn names(r: &Registry) -> Vec<String> {
    let mut v: Vec<String> = pods(r)
        .await
        .into_iter()
        .filter(|p| !is_terminating(&p.metadata))
        .filter_map(|p| p.metadata.name)
        .collect();
    v.sort();
    v
}

async fn terminating(r: &Registry) -> Vec<String> {
    pods(r)
        .await
        .into_iter()
        .filter(|p| is_terminating(&p.metadata))
        .filter_map(|p| p.metadata.name)
        .collect()
}

async fn ready_all(r: &Registry) {
    for p in pods(r).await {
        if !is_terminating(&p.metadata) {
            make_ready(r, &p).await;
        }
    }
}

async fn finish_deletions(r: &Registry) {
    for name in terminating(r).await {
        r.finalize_pod_deletion("default", &name, None)
            .await
            .unwrap();
    }
}

/// Syncs, readies, finishes deletions until nothing changes (at most `n` rounds).
async fn settle(r: &Registry, n: usize) {
    for _ in 0..n {
        sync(r).await;
        ready_all(r).await;
        finish_deletions(r).await;
    }
    sync(r).await;
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn ordered_ready_creates_one_at_a_time() {
    let r = registry().await;
    statefulset(&r, 3, json!({})).await;
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0"]);
    let p = r.get::<Pod>(Some("default"), "web-0").await.unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["spec"]["hostname"], "web-0");
    assert_eq!(v["spec"]["subdomain"], "web-svc");
    assert_eq!(
        v["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-0"
    );
    assert_eq!(v["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "0");
    assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    let rev = v["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(rev.starts_with("web-"), "{rev}");
    // web-1 waits for web-0 to be Running and Ready.
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0"]);
    make_ready(&r, &p).await;
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0", "web-1"]);
    settle(&r, 3).await;
    assert_eq!(names(&r).await, ["web-0", "web-1", "web-2"]);
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.current_revision.as_deref(), Some(rev.as_str()));
    assert_eq!(st.update_revision.as_deref(), Some(rev.as_str()));
}

#[tokio::test]
async fn scale_down_removes_the_highest_first() {
    let r = registry().await;
    statefulset(&r, 3, json!({})).await;
    settle(&r, 4).await;
    assert_eq!(names(&r).await, ["web-0", "web-1", "web-2"]);
    r.patch::<StatefulSet>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 1}}),
    )
    .await
    .unwrap();
    sync(&r).await;
    assert_eq!(terminating(&r).await, ["web-2"]);
    // While web-2 terminates, web-1 stays.
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0", "web-1"]);
    finish_deletions(&r).await;
    sync(&r).await;
    assert_eq!(terminating(&r).await, ["web-1"]);
    finish_deletions(&r).await;
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0"]);
    assert_eq!(get(&r).await.status.unwrap().replicas, 1);
}

#[tokio::test]
async fn parallel_creates_and_deletes_together() {
    let r = registry().await;
    statefulset(&r, 3, json!({"podManagementPolicy": "Parallel"})).await;
    sync(&r).await;
    assert_eq!(names(&r).await, ["web-0", "web-1", "web-2"]);
    r.patch::<StatefulSet>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 0}}),
    )
    .await
    .unwrap();
    sync(&r).await;
    assert!(names(&r).await.is_empty(), "unbound pods go at once");
}

#[tokio::test]
async fn partitioned_rolling_update_from_the_highest_ordinal() {
    let r = registry().await;
    statefulset(
        &r,
        3,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}),
    )
    .await;
    settle(&r, 4).await;
    let old_rev = get(&r).await.status.unwrap().current_revision.unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    r.patch::<StatefulSet>(Some("default"), "web", PatchType::StrategicMerge, &patch)
        .await
        .unwrap();
    sync(&r).await;
    assert_eq!(terminating(&r).await, ["web-2"], "highest ordinal first");
    finish_deletions(&r).await;
    sync(&r).await;
    let web2 = r.get::<Pod>(Some("default"), "web-2").await.unwrap();
    assert_eq!(image(&web2), "busybox:2");
    // web-1 waits for the new web-2 to be ready.
    sync(&r).await;
    assert!(terminating(&r).await.is_empty());
    settle(&r, 4).await;
    let by_name = |n: &str| {
        let r = r.clone();
        let n = n.to_string();
        async move { image(&r.get::<Pod>(Some("default"), &n).await.unwrap()) }
    };
    assert_eq!(by_name("web-0").await, "busybox", "below the partition");
    assert_eq!(by_name("web-1").await, "busybox:2");
    assert_eq!(by_name("web-2").await, "busybox:2");
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.current_revision.as_deref(), Some(old_rev.as_str()));
    assert_ne!(st.update_revision.as_deref(), Some(old_rev.as_str()));
    // Dropping the partition finishes the rollout and the update revision becomes current.
    r.patch::<StatefulSet>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
    )
    .await
    .unwrap();
    settle(&r, 4).await;
    assert_eq!(by_name("web-0").await, "busybox:2");
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(st.current_replicas, Some(3));
}

#[tokio::test]
async fn failed_pods_come_back_under_the_same_name() {
    let r = registry().await;
    statefulset(&r, 1, json!({})).await;
    settle(&r, 2).await;
    let before = r.get::<Pod>(Some("default"), "web-0").await.unwrap();
    r.patch_status::<Pod>(
        Some("default"),
        "web-0",
        PatchType::Merge,
        &json!({"status": {"phase": "Failed", "conditions": []}}),
    )
    .await
    .unwrap();
    sync(&r).await;
    sync(&r).await;
    let after = r.get::<Pod>(Some("default"), "web-0").await.unwrap();
    assert_ne!(after.metadata.uid, before.metadata.uid);
}

#[tokio::test]
async fn volume_claim_templates_are_refused_with_an_event() {
    let r = registry().await;
    let claim = json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}}]);
    statefulset(&r, 1, json!({"volumeClaimTemplates": claim})).await;
    sync(&r).await;
    sync(&r).await;
    assert!(pods(&r).await.is_empty());
    let events = r
        .list::<Event>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items;
    let warnings: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning per generation");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    assert!(
        warnings[0]
            .message
            .as_deref()
            .unwrap()
            .contains("persistent volume claims are not supported")
    );
}

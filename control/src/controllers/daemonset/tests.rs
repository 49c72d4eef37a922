//! DaemonSet controller tests over the in-memory registry: placement by nodeSelector and
//! taints, the pod shape (node-name affinity, default tolerations, revision label), new nodes,
//! NoExecute eviction, rolling update within maxUnavailable, status and revision history.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::nodes::target_node;
use super::reconcile;
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use crate::controllers::common::{is_available, is_terminating};
use crate::controllers::runtime::ObjectKey;
use crate::controllers::testutil::{pods, registry};

async fn node(r: &Registry, name: &str, labels: Value, taints: Value) {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    r.create(&n).await.unwrap();
}

async fn daemonset(r: &Registry, spec_extra: Value) -> DaemonSet {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }
    });
    merge(&mut spec, spec_extra);
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": spec
    }))
    .unwrap();
    r.create(&ds).await.unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

async fn sync(r: &Registry) {
    reconcile(r, &ObjectKey::new(Some("default"), "agent"))
        .await
        .unwrap();
}

async fn get(r: &Registry) -> DaemonSet {
    r.get::<DaemonSet>(Some("default"), "agent").await.unwrap()
}

fn nodes_of(pods: &[Pod]) -> Vec<String> {
    let mut v: Vec<String> = pods.iter().filter_map(target_node).collect();
    v.sort();
    v
}

fn live(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter()
        .filter(|p| !is_terminating(&p.metadata))
        .collect()
}

/// Binds every unbound pod to the node it is pinned to and marks it Running and Ready
/// (standing in for the scheduler and the agent).
async fn run_pods(r: &Registry) {
    for p in live(pods(r).await) {
        let name = p.metadata.name.clone().unwrap();
        if p.spec.as_ref().unwrap().node_name.is_none() {
            r.bind_pod("default", &name, &target_node(&p).unwrap())
                .await
                .unwrap();
        }
        let ready = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
        ]}});
        r.patch_status::<Pod>(Some("default"), &name, PatchType::Merge, &ready)
            .await
            .unwrap();
    }
}

/// Removes terminating pods for good (the agent confirming they stopped).
async fn finish_deletions(r: &Registry) {
    for p in pods(r).await {
        if is_terminating(&p.metadata) {
            let name = p.metadata.name.unwrap();
            r.finalize_pod_deletion("default", &name, None)
                .await
                .unwrap();
        }
    }
}

async fn three_nodes_and_two_ineligible(r: &Registry) {
    for n in ["n1", "n2", "n3"] {
        node(r, n, json!({"role": "edge"}), json!([])).await;
    }
    node(
        r,
        "tainted",
        json!({"role": "edge"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    node(r, "core", json!({"role": "core"}), json!([])).await;
}

#[tokio::test]
async fn one_pod_per_eligible_node() {
    let r = registry().await;
    three_nodes_and_two_ineligible(&r).await;
    daemonset(
        &r,
        json!({"template": {"spec": {"nodeSelector": {"role": "edge"}}}}),
    )
    .await;
    sync(&r).await;
    let all = pods(&r).await;
    assert_eq!(nodes_of(&all), ["n1", "n2", "n3"]);
    let revisions = r
        .list::<ControllerRevision>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].revision, 1);
    let hash = revisions[0].metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    assert_eq!(
        revisions[0].metadata.name.as_deref(),
        Some(format!("agent-{hash}").as_str())
    );
    let data = &revisions[0].data.as_ref().unwrap().0;
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    for p in &all {
        let v = serde_json::to_value(p).unwrap();
        assert!(p.metadata.name.as_ref().unwrap().starts_with("agent-"));
        assert_eq!(
            v["metadata"]["labels"]["controller-revision-hash"],
            json!(hash)
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert!(v["spec"]["nodeName"].is_null(), "left for the scheduler");
        let terms = &v["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(terms.as_array().unwrap().len(), 1);
        assert_eq!(terms[0]["matchFields"][0]["key"], "metadata.name");
        let keys: Vec<String> = v["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect();
        for want in [
            "node.kubernetes.io/not-ready:NoExecute",
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/disk-pressure:NoSchedule",
            "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/pid-pressure:NoSchedule",
            "node.kubernetes.io/unschedulable:NoSchedule",
        ] {
            assert!(
                keys.contains(&want.to_string()),
                "{want} missing in {keys:?}"
            );
        }
        assert!(!keys.iter().any(|k| k.contains("network-unavailable")));
    }
    // Status before the pods run, then once they do.
    sync(&r).await;
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.desired_number_scheduled, 3);
    assert_eq!(st.current_number_scheduled, 3);
    assert_eq!(st.number_ready, 0);
    run_pods(&r).await;
    sync(&r).await;
    let ds = get(&r).await;
    let st = ds.status.unwrap();
    assert_eq!(st.number_ready, 3);
    assert_eq!(st.number_available, Some(3));
    assert_eq!(st.updated_number_scheduled, Some(3));
    assert_eq!(st.number_misscheduled, 0);
    assert_eq!(st.observed_generation, ds.metadata.generation);
}

#[tokio::test]
async fn new_nodes_get_a_pod_and_no_execute_taints_evict() {
    let r = registry().await;
    three_nodes_and_two_ineligible(&r).await;
    daemonset(
        &r,
        json!({"template": {"spec": {"nodeSelector": {"role": "edge"}}}}),
    )
    .await;
    sync(&r).await;
    node(&r, "n4", json!({"role": "edge"}), json!([])).await;
    sync(&r).await;
    assert_eq!(nodes_of(&pods(&r).await), ["n1", "n2", "n3", "n4"]);
    // A NoSchedule taint keeps the running pod; a NoExecute one evicts it.
    run_pods(&r).await;
    let taint =
        |effect: &str| json!({"spec": {"taints": [{"key": "maintenance", "effect": effect}]}});
    r.patch::<Node>(None, "n2", PatchType::Merge, &taint("NoSchedule"))
        .await
        .unwrap();
    sync(&r).await;
    assert_eq!(nodes_of(&live(pods(&r).await)).len(), 4);
    r.patch::<Node>(None, "n2", PatchType::Merge, &taint("NoExecute"))
        .await
        .unwrap();
    sync(&r).await;
    assert_eq!(nodes_of(&live(pods(&r).await)), ["n1", "n3", "n4"]);
    finish_deletions(&r).await;
    sync(&r).await;
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.desired_number_scheduled, 3);
}

#[tokio::test]
async fn rolling_update_respects_max_unavailable() {
    let r = registry().await;
    for n in ["n1", "n2", "n3", "n4"] {
        node(&r, n, json!({}), json!([])).await;
    }
    daemonset(
        &r,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}),
    )
    .await;
    sync(&r).await;
    run_pods(&r).await;
    sync(&r).await;
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    r.patch::<DaemonSet>(Some("default"), "agent", PatchType::StrategicMerge, &image)
        .await
        .unwrap();
    let mut rounds = 0;
    loop {
        sync(&r).await;
        let now = jiff::Timestamp::now();
        let all = pods(&r).await;
        let available = all
            .iter()
            .filter(|p| !is_terminating(&p.metadata) && is_available(p, 0, now))
            .count();
        assert!(
            available >= 2,
            "round {rounds}: only {available} of 4 available"
        );
        let ds = get(&r).await;
        let st = ds.status.clone().unwrap();
        if st.updated_number_scheduled == Some(4) && st.number_available == Some(4) {
            break;
        }
        rounds += 1;
        assert!(rounds < 20, "rollout did not finish: {st:?}");
        finish_deletions(&r).await;
        sync(&r).await;
        run_pods(&r).await;
    }
    let images: Vec<String> = pods(&r)
        .await
        .iter()
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    assert_eq!(images, vec!["busybox:2"; 4]);
    let revisions = r
        .list::<ControllerRevision>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items;
    let mut numbers: Vec<i64> = revisions.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn on_delete_waits_for_deletions() {
    let r = registry().await;
    node(&r, "n1", json!({}), json!([])).await;
    daemonset(&r, json!({"updateStrategy": {"type": "OnDelete"}})).await;
    sync(&r).await;
    run_pods(&r).await;
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    r.patch::<DaemonSet>(Some("default"), "agent", PatchType::StrategicMerge, &image)
        .await
        .unwrap();
    sync(&r).await;
    let all = pods(&r).await;
    assert_eq!(all.len(), 1);
    assert!(!is_terminating(&all[0].metadata), "OnDelete never deletes");
    let st = get(&r).await.status.unwrap();
    assert_eq!(st.updated_number_scheduled, Some(0));
    let name = all[0].metadata.name.clone().unwrap();
    r.finalize_pod_deletion("default", &name, None)
        .await
        .unwrap();
    sync(&r).await;
    let all = pods(&r).await;
    assert_eq!(
        all[0].spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("busybox:2")
    );
}

/// Pods per node that are live and available.
async fn available_per_node(r: &Registry) -> std::collections::BTreeMap<String, usize> {
    let now = jiff::Timestamp::now();
    let mut m = std::collections::BTreeMap::new();
    for p in live(pods(r).await) {
        let n = m.entry(target_node(&p).unwrap()).or_insert(0);
        if is_available(&p, 0, now) {
            *n += 1;
        }
    }
    m
}

async fn set_image(r: &Registry, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    r.patch::<DaemonSet>(Some("default"), "agent", PatchType::StrategicMerge, &patch)
        .await
        .unwrap();
}

#[tokio::test]
async fn max_surge_starts_the_new_pod_before_the_old_one_goes() {
    let r = registry().await;
    for n in ["n1", "n2"] {
        node(&r, n, json!({}), json!([])).await;
    }
    daemonset(
        &r,
        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}),
    )
    .await;
    sync(&r).await;
    run_pods(&r).await;
    set_image(&r, "busybox:2").await;
    sync(&r).await;
    let all = pods(&r).await;
    assert_eq!(all.len(), 3, "one surge pod");
    assert!(all.iter().all(|p| !is_terminating(&p.metadata)));
    for round in 0..10 {
        let per_node = available_per_node(&r).await;
        assert!(
            per_node.values().all(|n| *n >= 1),
            "round {round}: a node without an available pod: {per_node:?}"
        );
        let st = get(&r).await.status.unwrap();
        if st.updated_number_scheduled == Some(2) && pods(&r).await.len() == 2 {
            break;
        }
        run_pods(&r).await;
        sync(&r).await;
        finish_deletions(&r).await;
        sync(&r).await;
    }
    let images: Vec<String> = pods(&r)
        .await
        .iter()
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    assert_eq!(images, ["busybox:2", "busybox:2"]);
}

#[tokio::test]
async fn rollback_renumbers_the_old_revision_and_history_is_trimmed() {
    let r = registry().await;
    node(&r, "n1", json!({}), json!([])).await;
    daemonset(&r, json!({"revisionHistoryLimit": 1})).await;
    let revisions = |r: Registry| async move {
        let mut v: Vec<(i64, String)> = r
            .list::<ControllerRevision>(Some("default"), &ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| {
                let img = super::history::template_of(&c)
                    .unwrap()
                    .spec
                    .unwrap()
                    .containers[0]
                    .image
                    .clone()
                    .unwrap();
                (c.revision, img)
            })
            .collect();
        v.sort();
        v
    };
    sync(&r).await;
    for image in ["busybox:2", "busybox:3"] {
        set_image(&r, image).await;
        for _ in 0..3 {
            sync(&r).await;
            run_pods(&r).await;
            finish_deletions(&r).await;
        }
        sync(&r).await;
    }
    // The first revision is unused and beyond the limit of one old revision.
    assert_eq!(
        revisions(r.clone()).await,
        [(2, "busybox:2".to_string()), (3, "busybox:3".to_string())]
    );
    set_image(&r, "busybox:2").await;
    sync(&r).await;
    assert_eq!(
        revisions(r.clone()).await,
        [(3, "busybox:3".to_string()), (4, "busybox:2".to_string())],
        "the old revision is reused as the newest"
    );
}

#[tokio::test]
async fn failed_pods_are_replaced_with_back_off() {
    let r = registry().await;
    node(&r, "n1", json!({}), json!([])).await;
    daemonset(&r, json!({})).await;
    let key = ObjectKey::new(Some("default"), "agent");
    let fail = |r: Registry| async move {
        let p = live(pods(&r).await).pop().unwrap();
        let name = p.metadata.name.clone().unwrap();
        r.patch_status::<Pod>(
            Some("default"),
            &name,
            PatchType::Merge,
            &json!({"status": {"phase": "Failed"}}),
        )
        .await
        .unwrap();
        p.metadata.uid.unwrap()
    };
    sync(&r).await;
    run_pods(&r).await;
    let first = fail(r.clone()).await;
    sync(&r).await;
    sync(&r).await;
    let now = live(pods(&r).await);
    assert_eq!(now.len(), 1);
    assert_ne!(
        now[0].metadata.uid.as_deref(),
        Some(first.as_str()),
        "replaced"
    );
    let events = r
        .list::<k8s_openapi::api::core::v1::Event>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedDaemonPod"))
    );
    // Failing again at once: the replacement waits for the back-off.
    let second = fail(r.clone()).await;
    let action = reconcile(&r, &key).await.unwrap();
    assert!(
        matches!(action, crate::controllers::runtime::Action::Requeue(d) if d <= std::time::Duration::from_secs(1)),
        "{action:?}"
    );
    let now = pods(&r).await;
    assert_eq!(now[0].metadata.uid.as_deref(), Some(second.as_str()));
}

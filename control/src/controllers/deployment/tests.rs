//! Deployment reconcile against the registry over the in-memory store, with the ReplicaSet
//! controller and hand-made pod readiness standing in for the rest of the cluster.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::hash::HASH_LABEL;
use super::*;
use crate::controllers::replicaset;
use crate::controllers::testutil::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("default"), name)
}

async fn rss(r: &Registry) -> Vec<ReplicaSet> {
    r.list::<ReplicaSet>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
}

async fn deploy(r: &Registry) -> Deployment {
    r.get::<Deployment>(Some("default"), "web").await.unwrap()
}

/// Counts of live pods: (total, ready).
async fn pod_counts(r: &Registry) -> (usize, usize) {
    let pods: Vec<Pod> = pods(r)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let ready = pods
        .iter()
        .filter(|p| crate::controllers::common::is_ready(p))
        .count();
    (pods.len(), ready)
}

/// One round: the deployment, then every ReplicaSet, reconciled once.
async fn round(r: &Registry) {
    reconcile(r, &key("web")).await.unwrap();
    for rs in rss(r).await {
        replicaset::reconcile(r, &key(rs.metadata.name.as_deref().unwrap()))
            .await
            .unwrap();
    }
    // Status of the sets feeds the deployment's status.
    for rs in rss(r).await {
        replicaset::reconcile(r, &key(rs.metadata.name.as_deref().unwrap()))
            .await
            .unwrap();
    }
}

/// The nodes stop terminating pods.
async fn finish_terminating(r: &Registry) {
    for p in pods(r).await {
        if p.metadata.deletion_timestamp.is_some() {
            r.finalize_pod_deletion("default", p.metadata.name.as_deref().unwrap(), None)
                .await
                .unwrap();
        }
    }
}

async fn converge(r: &Registry) {
    for _ in 0..20 {
        round(r).await;
        all_ready(r).await;
        finish_terminating(r).await;
    }
    round(r).await;
}

fn cond<'a>(d: &'a Deployment, t: &str) -> (&'a str, &'a str) {
    let c = status::condition(d.status.as_ref().unwrap(), t).unwrap();
    (c.status.as_str(), c.reason.as_deref().unwrap())
}

#[tokio::test]
async fn creates_a_hashed_replica_set_and_becomes_available() {
    let r = registry().await;
    create_deployment(&r, "web", 2, json!({})).await;
    converge(&r).await;
    let sets = rss(&r).await;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs.metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()[HASH_LABEL],
        hash
    );
    for p in pods(&r).await {
        assert_eq!(p.metadata.labels.as_ref().unwrap()[HASH_LABEL], hash);
    }
    let d = deploy(&r).await;
    let s = d.status.clone().unwrap();
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2))
    );
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(cond(&d, "Available"), ("True", "MinimumReplicasAvailable"));
    assert_eq!(cond(&d, "Progressing"), ("True", "NewReplicaSetAvailable"));
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "1");
}

async fn set_image(r: &Registry, image: &str) {
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::StrategicMerge,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn rolling_update_respects_max_surge_and_max_unavailable_at_every_step() {
    let r = registry().await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    create_deployment(&r, "web", 4, strategy).await;
    converge(&r).await;
    set_image(&r, "busybox:1.35").await;
    let mut steps = 0;
    loop {
        round(&r).await;
        let (total, ready) = pod_counts(&r).await;
        assert!(total <= 5, "more than replicas + maxSurge pods: {total}");
        assert!(
            ready >= 3,
            "fewer than replicas - maxUnavailable ready: {ready}"
        );
        // Bring up one new pod at a time, then let the nodes finish the deletions.
        if let Some(p) = pods(&r).await.into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none() && !crate::controllers::common::is_ready(p)
        }) {
            make_ready(&r, &p).await;
        }
        let (_, ready) = pod_counts(&r).await;
        assert!(ready >= 3);
        finish_terminating(&r).await;
        let d = deploy(&r).await;
        if d.status
            .as_ref()
            .is_some_and(|s| status::is_complete(&d, s))
        {
            break;
        }
        steps += 1;
        assert!(steps < 40, "rollout did not finish: {:?}", d.status);
    }
    let sets = rss(&r).await;
    assert_eq!(sets.len(), 2);
    let new = sets
        .iter()
        .find(|rs| rs.metadata.annotations.as_ref().unwrap()[REVISION] == "2")
        .unwrap();
    assert_eq!(rolling::spec_replicas(new), 4);
    let old = sets
        .iter()
        .find(|rs| rs.metadata.annotations.as_ref().unwrap()[REVISION] == "1")
        .unwrap();
    assert_eq!(rolling::spec_replicas(old), 0);
    for p in pods(&r).await {
        assert_eq!(
            p.spec.unwrap().containers[0].image.as_deref(),
            Some("busybox:1.35")
        );
    }
    assert_eq!(
        cond(&deploy(&r).await, "Progressing"),
        ("True", "NewReplicaSetAvailable")
    );
}

#[tokio::test]
async fn recreate_removes_old_pods_before_creating_new_ones() {
    let r = registry().await;
    create_deployment(&r, "web", 2, json!({"type": "Recreate"})).await;
    converge(&r).await;
    set_image(&r, "busybox:1.35").await;
    round(&r).await;
    assert_eq!(rss(&r).await.len(), 1, "no new set while old pods exist");
    // Old pods are terminating but not gone yet: still no new set.
    round(&r).await;
    assert_eq!(rss(&r).await.len(), 1);
    finish_terminating(&r).await;
    converge(&r).await;
    let sets = rss(&r).await;
    assert_eq!(sets.len(), 2);
    let images: Vec<String> = pods(&r)
        .await
        .into_iter()
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect();
    assert_eq!(images, ["busybox:1.35", "busybox:1.35"]);
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional_and_plain_scaling_is_direct() {
    let r = registry().await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}});
    create_deployment(&r, "web", 4, strategy).await;
    converge(&r).await;
    set_image(&r, "busybox:1.35").await;
    round(&r).await;
    // The new set got the surge (2); the old still has 4 (nothing new is available).
    let sizes = |sets: &[ReplicaSet]| {
        let mut v: Vec<(String, i32)> = sets
            .iter()
            .map(|rs| {
                (
                    rs.metadata.annotations.as_ref().unwrap()[REVISION].clone(),
                    rolling::spec_replicas(rs),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sizes(&rss(&r).await),
        [("1".to_string(), 4), ("2".to_string(), 2)]
    );
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 8}}),
    )
    .await
    .unwrap();
    reconcile(&r, &key("web")).await.unwrap();
    // 8 + 2 surge = 10 spread 4:2 -> 4 + 4 and 2 + 2... leftover to the biggest.
    let after = sizes(&rss(&r).await);
    assert_eq!(after.iter().map(|(_, n)| n).sum::<i32>(), 10);
    assert!(after[0].1 > after[1].1, "{after:?}");
    converge(&r).await;
    assert_eq!(
        sizes(&rss(&r).await),
        [("1".to_string(), 0), ("2".to_string(), 8)]
    );
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 3}}),
    )
    .await
    .unwrap();
    reconcile(&r, &key("web")).await.unwrap();
    assert_eq!(
        sizes(&rss(&r).await),
        [("1".to_string(), 0), ("2".to_string(), 3)]
    );
}

#[tokio::test]
async fn history_beyond_the_limit_is_cleaned_up_and_undo_reuses_a_set() {
    let r = registry().await;
    create_deployment(&r, "web", 1, json!({})).await;
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"revisionHistoryLimit": 1}}),
    )
    .await
    .unwrap();
    converge(&r).await;
    for image in ["busybox:1.35", "busybox:1.36"] {
        set_image(&r, image).await;
        converge(&r).await;
    }
    let revs = |sets: Vec<ReplicaSet>| {
        let mut v: Vec<String> = sets
            .iter()
            .map(|rs| rs.metadata.annotations.as_ref().unwrap()[REVISION].clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(revs(rss(&r).await), ["2", "3"]);
    // Going back to revision 2's template reuses its set as revision 4.
    set_image(&r, "busybox:1.35").await;
    converge(&r).await;
    assert_eq!(revs(rss(&r).await), ["3", "4"]);
    assert_eq!(
        deploy(&r).await.metadata.annotations.unwrap()[REVISION],
        "4"
    );
}

#[tokio::test]
async fn paused_deployment_scales_but_does_not_roll() {
    let r = registry().await;
    create_deployment(&r, "web", 2, json!({})).await;
    converge(&r).await;
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"paused": true}}),
    )
    .await
    .unwrap();
    set_image(&r, "busybox:1.35").await;
    converge(&r).await;
    assert_eq!(rss(&r).await.len(), 1);
    assert_eq!(
        cond(&deploy(&r).await, "Progressing"),
        ("Unknown", "DeploymentPaused")
    );
    r.patch::<Deployment>(
        Some("default"),
        "web",
        PatchType::Merge,
        &json!({"spec": {"paused": false}}),
    )
    .await
    .unwrap();
    converge(&r).await;
    assert_eq!(rss(&r).await.len(), 2);
    assert_eq!(
        cond(&deploy(&r).await, "Progressing"),
        ("True", "NewReplicaSetAvailable")
    );
}

//! The ReplicaSet controller: keeps `spec.replicas` pods from the template (slow-start
//! creation, preferred deletion), adopts orphans matching the selector, releases pods that stop
//! matching, and reports status and Events as kube-controller-manager does.

use std::cmp::Ordering;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::common::{self, controller_ref_to, is_active, is_available, is_ready};
use super::runtime::{Action, Controller, ObjectKey, owner_key};
use super::{ControllerError, claim, not_found_ok};
use crate::apiserver::registry::{ListParams, PatchType, Registry};

/// The most pods created or deleted in one reconcile (upstream's burstReplicas).
const BURST: usize = 500;
const COMPONENT: &str = "replicaset-controller";

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("replicaset", registry.clone());
    c.watches::<ReplicaSet, _>(|rs| vec![ObjectKey::of(rs)]);
    c.watches::<Pod, _>(|p| owner_key(&p.metadata, "ReplicaSet").into_iter().collect());
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key).await }
    })
    .await;
}

/// Brings one ReplicaSet's pods and status in line with its spec.
pub async fn reconcile(registry: &Registry, key: &ObjectKey) -> Result<Action, ControllerError> {
    let Some(rs) = not_found_ok(registry.get::<ReplicaSet>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    let pods = registry
        .list::<Pod>(key.ns(), &ListParams::default())
        .await?
        .items;
    let selector = rs
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let owned = claim::claim(registry, &rs, &selector, pods).await?;
    let active: Vec<Pod> = owned.into_iter().filter(is_active).collect();
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let result = if common::is_terminating(&rs.metadata) {
        Ok(())
    } else {
        manage(registry, &rs, &active).await
    };
    update_status(registry, &rs, &active).await?;
    result?;
    // Pods that are ready but not yet available become available by the clock alone.
    let now = jiff::Timestamp::now();
    if min_ready > 0
        && active
            .iter()
            .any(|p| is_ready(p) && !is_available(p, min_ready, now))
    {
        return Ok(Action::Requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::AwaitChange)
}

fn desired(rs: &ReplicaSet) -> usize {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize
}

async fn manage(
    registry: &Registry,
    rs: &ReplicaSet,
    active: &[Pod],
) -> Result<(), ControllerError> {
    let want = desired(rs);
    if active.len() < want {
        let missing = (want - active.len()).min(BURST);
        create_slow_start(registry, rs, missing).await
    } else if active.len() > want {
        let mut victims: Vec<&Pod> = active.iter().collect();
        victims.sort_by(|a, b| deletion_order(a, b));
        let victims = &victims[..(active.len() - want).min(BURST)];
        let results = join_all(victims.iter().map(|p| delete_pod(registry, rs, p))).await;
        results.into_iter().collect()
    } else {
        Ok(())
    }
}

/// Creates `count` pods in batches of 1, 2, 4, …; stops at the first batch with a failure.
async fn create_slow_start(
    registry: &Registry,
    rs: &ReplicaSet,
    count: usize,
) -> Result<(), ControllerError> {
    let mut done = 0;
    let mut batch = 1;
    while done < count {
        let n = batch.min(count - done);
        let results = join_all((0..n).map(|_| create_pod(registry, rs))).await;
        done += n;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            tracing::info!(
                skipped = count - done,
                "slow start stopped after a failed create"
            );
            return Err(e);
        }
        batch *= 2;
    }
    Ok(())
}

/// A pod from the ReplicaSet's template.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn create_pod(registry: &Registry, rs: &ReplicaSet) -> Result<(), ControllerError> {
    common::create_owned_pod(registry, rs, COMPONENT, &pod_from_template(rs))
        .await
        .map(drop)
}

async fn delete_pod(
    registry: &Registry,
    rs: &ReplicaSet,
    pod: &Pod,
) -> Result<(), ControllerError> {
    common::delete_owned_pod(registry, rs, COMPONENT, pod, None).await
}

fn phase_rank(pod: &Pod) -> u8 {
    match common::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// Upstream's order of deletion preference: `Less` deletes `a` first. Unscheduled before
/// scheduled, pending before unknown before running, not ready before ready, ready for less
/// time before longer, more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (common::ready_since(a), common::ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| common::restarts(b).cmp(&common::restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// The status the pods give (upstream's calculateStatus, without conditions).
pub fn compute_status(rs: &ReplicaSet, active: &[Pod], now: jiff::Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled as i32),
        ready_replicas: Some(active.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            active
                .iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
        terminating_replicas: old.terminating_replicas,
    }
}

async fn update_status(
    registry: &Registry,
    rs: &ReplicaSet,
    active: &[Pod],
) -> Result<(), ControllerError> {
    let status = compute_status(rs, active, jiff::Timestamp::now());
    if rs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let name = rs.metadata.name.clone().unwrap_or_default();
    not_found_ok(
        registry
            .patch_status::<ReplicaSet>(
                rs.metadata.namespace.as_deref(),
                &name,
                PatchType::Merge,
                &json!({"status": status}),
            )
            .await,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;

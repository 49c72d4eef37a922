//! The DaemonSet controller: one pod per eligible node (created unbound, pinned by a
//! `metadata.name` node affinity for the scheduler to bind), rolling update within
//! maxUnavailable/maxSurge or OnDelete, revision history in ControllerRevisions, status and
//! Events as kube-controller-manager reports them.

pub mod history;
pub mod nodes;
pub mod plan;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::common::{is_available, is_ready, is_terminating, phase, record};
use super::runtime::{Action, Controller, ObjectKey, owner_key};
use super::{ControllerError, claim, not_found_ok};
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use plan::Changes;

const COMPONENT: &str = "daemonset-controller";
/// The most pods created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 250;

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("daemonset", registry.clone());
    let sets = c.watches::<DaemonSet, _>(|ds| vec![ObjectKey::of(ds)]);
    c.watches::<Pod, _>(|p| owner_key(&p.metadata, "DaemonSet").into_iter().collect());
    c.watches::<ControllerRevision, _>(|r| {
        owner_key(&r.metadata, "DaemonSet").into_iter().collect()
    });
    // Node heartbeats do not matter; labels, taints and the set of nodes do.
    let seen: Mutex<BTreeMap<String, String>> = Mutex::default();
    c.watches_events::<Node, _>(move |ev| {
        let changed = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            node_changes(&mut seen, ev)
        };
        if changed {
            sets.list().iter().map(|ds| ObjectKey::of(&**ds)).collect()
        } else {
            Vec::new()
        }
    });
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key).await }
    })
    .await;
}

/// What of a node the controller looks at.
fn node_fingerprint(n: &Node) -> String {
    json!([
        n.metadata.labels,
        n.spec.as_ref().and_then(|s| s.taints.clone())
    ])
    .to_string()
}

/// Records the nodes in `ev`; true when one appeared, vanished or changed labels or taints.
fn node_changes(seen: &mut BTreeMap<String, String>, ev: &super::runtime::Event<Node>) -> bool {
    use super::runtime::Event;
    let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
    match ev {
        Event::Apply(n) => seen.insert(name(n), node_fingerprint(n)) != Some(node_fingerprint(n)),
        Event::Delete(n) => seen.remove(&name(n)).is_some(),
        Event::Restarted(all) => {
            let fresh: BTreeMap<String, String> =
                all.iter().map(|n| (name(n), node_fingerprint(n))).collect();
            let changed = fresh != *seen;
            *seen = fresh;
            changed
        }
    }
}

/// Brings one DaemonSet's pods, revisions and status in line with its spec.
pub async fn reconcile(registry: &Registry, key: &ObjectKey) -> Result<Action, ControllerError> {
    let Some(ds) = not_found_ok(registry.get::<DaemonSet>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if is_terminating(&ds.metadata) {
        return Ok(Action::AwaitChange);
    }
    let spec = ds.spec.clone().unwrap_or_default();
    let nodes = registry
        .list::<Node>(None, &ListParams::default())
        .await?
        .items;
    let pods = registry
        .list::<Pod>(key.ns(), &ListParams::default())
        .await?
        .items;
    let pods = claim::claim(registry, &ds, &spec.selector, pods).await?;
    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let history = history::sync(registry, &ds, &spec.selector, &spec.template, collisions).await?;
    let hash = history::revision_hash(&history.current);
    let pod_spec = nodes::daemon_spec(&ds);
    let now = jiff::Timestamp::now();
    let mut changes = plan::manage(&ds, &pod_spec, &nodes, &pods, &hash, now);
    if changes.is_empty() && plan::is_rolling(&ds) {
        changes = plan::rolling_update(&ds, &pod_spec, &nodes, &pods, &hash, now);
    }
    let wait = backoff_failed(&ds, &mut changes);
    let result = apply(registry, &ds, &changes, &hash).await;
    let live: HashSet<String> = history
        .revisions
        .iter()
        .filter(|r| {
            let h = history::revision_hash(r);
            pods.iter().any(|p| plan::pod_hash(p) == Some(h.as_str()))
        })
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    let limit = spec.revision_history_limit.unwrap_or(10);
    history::cleanup(registry, &history, &live, limit).await?;
    let status = status::compute(
        &ds,
        &pod_spec,
        &nodes,
        &pods,
        &hash,
        history.collision_count,
        now,
    );
    if ds.status.as_ref() != Some(&status) {
        not_found_ok(
            registry
                .patch_status::<DaemonSet>(
                    key.ns(),
                    &key.name,
                    PatchType::Merge,
                    &json!({"status": status}),
                )
                .await,
        )?;
    }
    result?;
    if let Some(wait) = wait {
        return Ok(Action::Requeue(wait));
    }
    let min_ready = plan::min_ready(&ds);
    if min_ready > 0
        && pods
            .iter()
            .any(|p| is_ready(p) && !is_available(p, min_ready, now))
    {
        return Ok(Action::Requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::AwaitChange)
}

/// Per DaemonSet and node: the current back-off and when the last failed pod was deleted.
static FAILED_BACKOFF: LazyLock<Mutex<HashMap<String, (Duration, Instant)>>> =
    LazyLock::new(Mutex::default);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Holds back the deletion of failed pods on nodes still in back-off (1 s doubling up to
/// 15 min, as upstream), so a pod the node keeps failing is not replaced in a hot loop; returns
/// when to come back.
fn backoff_failed(ds: &DaemonSet, changes: &mut Changes) -> Option<Duration> {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let now = Instant::now();
    let mut map = FAILED_BACKOFF.lock().unwrap_or_else(|e| e.into_inner());
    let mut wait: Option<Duration> = None;
    let mut held = Vec::new();
    changes.failed.retain(|(pod, node)| {
        let key = format!("{uid}/{node}");
        match map.get(&key).copied() {
            Some((delay, last)) if now < last + delay => {
                let left = last + delay - now;
                wait = Some(wait.map_or(left, |w| w.min(left)));
                held.push(pod.clone());
                false
            }
            Some((delay, last)) => {
                // A quiet spell longer than the back-off starts it over.
                let next = if now > last + delay * 2 {
                    BACKOFF_START
                } else {
                    (delay * 2).min(BACKOFF_MAX)
                };
                map.insert(key, (next, now));
                true
            }
            None => {
                map.insert(key, (BACKOFF_START, now));
                true
            }
        }
    });
    changes
        .delete
        .retain(|p| !held.contains(&p.metadata.name.clone().unwrap_or_default()));
    wait
}

/// Deletes, then creates (in slow-start batches of 1, 2, 4, …), with Events.
async fn apply(
    registry: &Registry,
    ds: &DaemonSet,
    changes: &Changes,
    hash: &str,
) -> Result<(), ControllerError> {
    for (pod, node) in &changes.failed {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("default");
        record(
            registry,
            ds,
            COMPONENT,
            "Warning",
            "FailedDaemonPod",
            format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"),
        )
        .await;
    }
    let deletes = changes.delete.iter().take(BURST);
    let results = join_all(deletes.map(|p| delete_pod(registry, ds, p))).await;
    results.into_iter().collect::<Result<(), _>>()?;
    let nodes: Vec<&String> = changes.create.iter().take(BURST).collect();
    let mut done = 0;
    let mut batch = 1;
    while done < nodes.len() {
        let chunk = &nodes[done..(done + batch).min(nodes.len())];
        let results = join_all(chunk.iter().map(|n| create_pod(registry, ds, n, hash))).await;
        done += chunk.len();
        results.into_iter().collect::<Result<(), _>>()?;
        batch *= 2;
    }
    Ok(())
}

async fn create_pod(
    registry: &Registry,
    ds: &DaemonSet,
    node: &str,
    hash: &str,
) -> Result<(), ControllerError> {
    let pod = nodes::new_pod(ds, node, hash);
    crate::controllers::common::create_owned_pod(registry, ds, COMPONENT, &pod)
        .await
        .map(drop)
}

async fn delete_pod(registry: &Registry, ds: &DaemonSet, pod: &Pod) -> Result<(), ControllerError> {
    // A finished pod has nothing left to stop (the API server's rule upstream).
    let grace = matches!(phase(pod), "Failed" | "Succeeded").then_some(0);
    crate::controllers::common::delete_owned_pod(registry, ds, COMPONENT, pod, grace).await
}

#[cfg(test)]
mod tests;

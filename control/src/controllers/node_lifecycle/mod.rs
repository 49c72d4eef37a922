//! The node lifecycle controller: marks nodes whose Lease and status heartbeats went stale as
//! Unknown, keeps the `not-ready` / `unreachable` taints in step with the Ready condition, and
//! evicts pods from NoExecute-tainted nodes once their tolerationSeconds have passed.

mod taints;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::common::{self, record};
use super::runtime::{Action, Controller, ObjectKey};
use super::{ControllerError, not_found_ok};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, ListParams, Registry};
pub use taints::{NOT_READY_TAINT, UNREACHABLE_TAINT};

const COMPONENT: &str = "node-controller";
/// Where agents renew their Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The conditions upstream's node lifecycle controller marks Unknown.
const MONITORED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Tuning of the controller (upstream's kube-controller-manager flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without renewing its Lease or posting status before its
    /// conditions become Unknown (`--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// How often a tainted node is looked at again to evict pods (`--node-monitor-period`).
    pub monitor_period: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(40),
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// Runs the controller forever.
pub async fn run(registry: Registry, config: NodeLifecycleConfig) {
    let c = Controller::new("node-lifecycle", registry.clone());
    // Leases are not watched: each node is looked at again when its grace period would end.
    c.watches::<Node, _>(|n| vec![ObjectKey::of(n)]);
    let started = Timestamp::now();
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &config, &key, started, Timestamp::now()).await }
    })
    .await;
}

/// Looks at node `key.name` at time `now`: marks it Unknown when stale, sets its taints and
/// evicts pods whose tolerations ran out; returns when to look again. Silence is counted from
/// `started` at the earliest (when the controller started), so a control plane that was down
/// longer than the grace period gives its nodes a full period to report again.
pub async fn reconcile(
    registry: &Registry,
    config: &NodeLifecycleConfig,
    key: &ObjectKey,
    started: Timestamp,
    now: Timestamp,
) -> Result<Action, ControllerError> {
    let Some(mut node) = not_found_ok(registry.get::<Node>(None, &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if common::is_terminating(&node.metadata) {
        return Ok(Action::AwaitChange);
    }
    let grace = SignedDuration::try_from(config.grace_period).unwrap_or(SignedDuration::MAX);
    let last = last_heartbeat(registry, &node).await?;
    let deadline = last.map(|t| t.max(started) + grace);
    let stale = deadline.is_none_or(|d| d <= now);
    if stale && mark_unknown(&mut node, now) {
        node = registry.replace_status::<Node>(&node).await?;
        tracing::info!(node = %key.name, "node stopped posting status; marked Unknown");
        mark_pods_not_ready(registry, &key.name, now).await?;
        record(
            registry,
            &node,
            COMPONENT,
            "Normal",
            "NodeNotReady",
            format!("Node {} status is now: NodeNotReady", key.name),
        )
        .await;
    }
    if let Some(updated) = taints::desired(&node, now) {
        node = registry.replace::<Node>(&updated).await?;
    }
    let next_eviction = evict_pods(registry, &node, now).await?;
    let mut wait = match deadline {
        Some(d) if d > now => duration_between(now, d),
        _ => config.monitor_period,
    };
    if taints::no_execute(&node).next().is_some() {
        wait = wait.min(config.monitor_period);
    }
    if let Some(at) = next_eviction {
        wait = wait.min(duration_between(now, at));
    }
    Ok(Action::Requeue(wait.max(Duration::from_millis(50))))
}

fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// The newest sign of life: the Lease's renewTime or the Ready condition's heartbeat (the
/// node's creation when there is neither).
async fn last_heartbeat(registry: &Registry, node: &Node) -> Result<Option<Timestamp>, ApiError> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let lease = match registry.get::<Lease>(Some(LEASE_NAMESPACE), name).await {
        Ok(l) => l.spec.and_then(|s| s.renew_time).map(|t| t.0),
        Err(ApiError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let heartbeat = ready_condition(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    Ok(lease.max(heartbeat).or(created))
}

pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Sets every monitored condition the node reports to Unknown (adding an Unknown Ready when
/// it never reported one); false when nothing changed.
pub fn mark_unknown(node: &mut Node, now: Timestamp) -> bool {
    let status = node.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusNeverUpdated".into()),
            message: Some("Kubelet never posted node status.".into()),
            last_transition_time: Some(Time(now)),
            last_heartbeat_time: None,
        });
        changed = true;
    }
    for c in conditions.iter_mut() {
        if MONITORED.contains(&c.type_.as_str()) && c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(Time(now));
            changed = true;
        }
    }
    changed
}

/// Deletes (gracefully) the node's pods whose tolerations of its NoExecute taints have run
/// out; returns the next time another pod's toleration runs out.
async fn evict_pods(
    registry: &Registry,
    node: &Node,
    now: Timestamp,
) -> Result<Option<Timestamp>, ControllerError> {
    if taints::no_execute(node).next().is_none() {
        return Ok(None);
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let params = ListParams {
        field_selector: Some(format!("spec.nodeName={name}")),
        ..Default::default()
    };
    let pods = registry.list::<Pod>(None, &params).await?.items;
    let mut next: Option<Timestamp> = None;
    for pod in pods.iter().filter(|p| common::is_active(p)) {
        match taints::eviction_time(node, pod, now) {
            Some(at) if at <= now => evict(registry, pod).await?,
            Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
            None => {}
        }
    }
    Ok(next)
}

/// Sets the Ready condition of every pod on a node that went silent to False (upstream's
/// MarkPodsNotReady), so endpoints stop sending them traffic; the agent, once back, posts the
/// truth again.
async fn mark_pods_not_ready(
    registry: &Registry,
    node: &str,
    now: Timestamp,
) -> Result<(), ControllerError> {
    let params = ListParams {
        field_selector: Some(format!("spec.nodeName={node}")),
        ..Default::default()
    };
    for pod in registry.list::<Pod>(None, &params).await?.items {
        let mut pod = Some(pod);
        // A pod that changed meanwhile is read again; one that went needs nothing.
        for _ in 0..3 {
            let Some(mut current) = pod.take() else { break };
            let Some(ready) = current
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|c| c.iter_mut().find(|c| c.type_ == "Ready"))
                .filter(|c| c.status == "True")
            else {
                break;
            };
            ready.status = "False".into();
            ready.reason = Some("NodeNotReady".into());
            ready.message = Some(format!("node {node} stopped reporting"));
            ready.last_transition_time = Some(Time(now));
            match registry.replace_status::<Pod>(&current).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => break,
                Err(ApiError::Conflict { .. }) => {
                    let ns = current.metadata.namespace.as_deref();
                    let name = current.metadata.name.as_deref().unwrap_or_default();
                    pod = not_found_ok(registry.get::<Pod>(ns, name).await)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn evict(registry: &Registry, pod: &Pod) -> Result<(), ControllerError> {
    let ns = pod.metadata.namespace.as_deref();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    tracing::info!(pod = name, namespace = ?ns, "evicting pod from a NoExecute-tainted node");
    record(
        registry,
        pod,
        "taint-eviction-controller",
        "Normal",
        "TaintManagerEviction",
        format!("Marking for deletion Pod {}/{name}", ns.unwrap_or_default()),
    )
    .await;
    match registry
        .delete::<Pod>(ns, name, &DeleteParams::default())
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

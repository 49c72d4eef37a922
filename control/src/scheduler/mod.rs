//! The scheduler, shaped like kube-scheduler: watches pods, nodes, namespaces and
//! PodDisruptionBudgets into a cache; a priority queue of pending pods; per pod one cycle of
//! filter and score plugins over the cache (in parallel over nodes); the pod is assumed on the
//! chosen node and bound in the background; a pod that fits nowhere gets a `FailedScheduling`
//! Event and a `PodScheduled=False` condition, and may preempt lower-priority pods.

pub mod algorithm;
pub mod cache;
pub mod engine;
pub mod framework;
pub mod index;
pub mod labels;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod resources;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;
use skiff_proto::events::Reporter;
use tokio::sync::mpsc;

use crate::apiserver::registry::{DeleteParams, PatchType, Registry};
use crate::controllers::runtime::watcher::{Event as WatchEvent, watcher};
use algorithm::Profile;
use engine::{Core, Decision, Preemption};

/// The scheduler's name in `spec.schedulerName`.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Cycles run back to back before the loop looks at new events again.
const BATCH: usize = 64;
/// Longest sleep when nothing is due.
const IDLE: Duration = Duration::from_secs(30);

fn event(pod: &Pod, type_: &str, reason: &str, message: String) -> Event {
    let reporter = Reporter {
        component: SCHEDULER_NAME,
        host: None,
    };
    skiff_proto::events::pod_event(pod, reporter, None, type_, reason, message)
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

async fn record(registry: &Registry, event: Event) {
    if let Err(e) = registry.create::<Event>(&event).await {
        tracing::debug!(error = %e, "recording scheduler event failed");
    }
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Binds a pod and records `Scheduled`; returns whether the binding held.
async fn bind(registry: &Registry, pod: &Pod, node: &str) -> bool {
    let (ns, name) = ns_name(pod);
    match registry.bind_pod(&ns, &name, node).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{ns}/{name}"), node, "scheduled");
            let msg = format!("Successfully assigned {ns}/{name} to {node}");
            record(registry, event(pod, "Normal", "Scheduled", msg)).await;
            true
        }
        Err(e) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "binding failed");
            false
        }
    }
}

/// Records why a pod fits nowhere: the Event (when the message changed) and the pod's
/// `PodScheduled=False` condition, with `nominatedNodeName` when preemption made room.
async fn report_unschedulable(
    registry: &Registry,
    pod: &Pod,
    message: &str,
    new_message: bool,
    nominated: Option<&str>,
) {
    let (ns, name) = ns_name(pod);
    if new_message {
        tracing::info!(pod = %format!("{ns}/{name}"), %message, "unschedulable");
        record(
            registry,
            event(pod, "Warning", "FailedScheduling", message.to_string()),
        )
        .await;
    }
    if !new_message && nominated.is_none() {
        return;
    }
    let mut status = json!({"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now_rfc3339(),
    }]});
    if let Some(n) = nominated {
        status["nominatedNodeName"] = json!(n);
    }
    let patch = json!({ "status": status });
    if let Err(e) = registry
        .patch_status::<Pod>(Some(&ns), &name, PatchType::StrategicMerge, &patch)
        .await
    {
        tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "updating PodScheduled failed");
    }
}

/// Evicts the victims: a `DisruptionTarget` condition, a `Preempted` Event, then deletion.
async fn evict_victims(registry: &Registry, preemptor: &Pod, p: &Preemption) {
    let uid = preemptor.metadata.uid.clone().unwrap_or_default();
    for victim in &p.victims {
        let (ns, name) = ns_name(victim);
        let patch = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": now_rfc3339(),
        }]}});
        if let Err(e) = registry
            .patch_status::<Pod>(Some(&ns), &name, PatchType::StrategicMerge, &patch)
            .await
        {
            tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "marking victim failed");
        }
        let msg = format!("Preempted by pod {uid} on node {}", p.node);
        record(registry, event(victim, "Normal", "Preempted", msg)).await;
        match registry
            .delete::<Pod>(Some(&ns), &name, &DeleteParams::default())
            .await
        {
            Ok(_) => tracing::info!(victim = %format!("{ns}/{name}"), node = %p.node, "preempted"),
            Err(e) => {
                tracing::warn!(victim = %format!("{ns}/{name}"), error = %e, "preemption delete failed")
            }
        }
    }
}

/// The scheduler's state between cycles.
pub struct Scheduler {
    registry: Registry,
    core: Core,
    /// The last FailedScheduling message per pod uid (one Event per change, as upstream's
    /// event de-duplication gives).
    last_message: HashMap<String, String>,
}

/// Which watches have delivered their first full list.
#[derive(Default)]
struct Synced {
    pods: bool,
    nodes: bool,
    namespaces: bool,
    pdbs: bool,
}

impl Synced {
    fn all(&self) -> bool {
        self.pods && self.nodes && self.namespaces && self.pdbs
    }
}

enum Input {
    Pod(Box<WatchEvent<Pod>>),
    Node(Box<WatchEvent<Node>>),
    Namespace(Box<WatchEvent<Namespace>>),
    Pdb(Box<WatchEvent<PodDisruptionBudget>>),
    Bound(String, bool),
}

impl Scheduler {
    pub fn new(registry: Registry) -> Scheduler {
        Scheduler::with_profile(registry, Profile::default())
    }

    pub fn with_profile(registry: Registry, profile: Profile) -> Scheduler {
        Scheduler {
            registry,
            core: Core::new(profile),
            last_message: HashMap::new(),
        }
    }

    fn apply(&mut self, input: Input, synced: &mut Synced) {
        let now = Instant::now();
        let core = &mut self.core;
        match input {
            Input::Pod(e) => match *e {
                WatchEvent::Apply(p) => core.pod_applied(p, now),
                WatchEvent::Delete(p) => {
                    self.last_message
                        .remove(p.metadata.uid.as_deref().unwrap_or_default());
                    core.pod_deleted(&p, now)
                }
                WatchEvent::Restarted(all) => {
                    synced.pods = true;
                    core.pods_reset(all, now)
                }
            },
            Input::Node(e) => match *e {
                WatchEvent::Apply(n) => core.node_applied(n, now),
                WatchEvent::Delete(n) => {
                    core.node_deleted(n.metadata.name.as_deref().unwrap_or_default())
                }
                WatchEvent::Restarted(all) => {
                    synced.nodes = true;
                    core.nodes_reset(all, now)
                }
            },
            Input::Namespace(e) => match *e {
                WatchEvent::Apply(ns) => core.namespace_applied(&ns),
                WatchEvent::Delete(ns) => core.namespace_deleted(&ns),
                WatchEvent::Restarted(all) => {
                    synced.namespaces = true;
                    all.iter().for_each(|ns| core.namespace_applied(ns));
                }
            },
            Input::Pdb(e) => match *e {
                WatchEvent::Apply(p) => core.pdb_applied(p),
                WatchEvent::Delete(p) => core.pdb_deleted(&p),
                WatchEvent::Restarted(all) => {
                    synced.pdbs = true;
                    core.cache.reset_pdbs(all);
                }
            },
            Input::Bound(uid, ok) => core.bind_done(&uid, ok, now),
        }
    }

    /// Carries out a decision in the background.
    fn act(&mut self, decision: Decision, bound: &mpsc::UnboundedSender<(String, bool)>) {
        let registry = self.registry.clone();
        match decision {
            Decision::Bind { pod, node } => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.last_message.remove(&uid);
                let tx = bound.clone();
                tokio::spawn(async move {
                    let ok = bind(&registry, &pod, &node).await;
                    let _ = tx.send((uid, ok));
                });
            }
            Decision::Unschedulable {
                pod,
                message,
                preemption,
            } => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let new_message = self.last_message.get(&uid) != Some(&message);
                if new_message {
                    self.last_message.insert(uid, message.clone());
                }
                tokio::spawn(async move {
                    let nominated = preemption.as_ref().map(|p| p.node.as_str());
                    report_unschedulable(&registry, &pod, &message, new_message, nominated).await;
                    if let Some(p) = &preemption {
                        evict_victims(&registry, &pod, p).await;
                    }
                });
            }
        }
    }

    /// Runs until the task is dropped: waits for the first full lists, then schedules
    /// whenever a pod is ready, between batches taking in watch events and binding results.
    pub async fn run(mut self) {
        let mut pods = watcher::<Pod>(self.registry.clone()).into_inner();
        let mut nodes = watcher::<Node>(self.registry.clone()).into_inner();
        let mut namespaces = watcher::<Namespace>(self.registry.clone()).into_inner();
        let mut pdbs = watcher::<PodDisruptionBudget>(self.registry.clone()).into_inner();
        let (bound_tx, mut bound_rx) = mpsc::unbounded_channel();
        let mut synced = Synced::default();
        loop {
            let ready = synced.all() && self.core.has_work(Instant::now());
            if !ready {
                let wake = self
                    .core
                    .next_wakeup()
                    .unwrap_or_else(|| Instant::now() + IDLE)
                    .min(Instant::now() + IDLE);
                let input = tokio::select! {
                    Some(e) = pods.recv() => Input::Pod(Box::new(e)),
                    Some(e) = nodes.recv() => Input::Node(Box::new(e)),
                    Some(e) = namespaces.recv() => Input::Namespace(Box::new(e)),
                    Some(e) = pdbs.recv() => Input::Pdb(Box::new(e)),
                    Some((uid, ok)) = bound_rx.recv() => Input::Bound(uid, ok),
                    _ = tokio::time::sleep_until(wake.into()) => {
                        continue;
                    }
                };
                self.apply(input, &mut synced);
            }
            // Take in everything already waiting.
            loop {
                let input = if let Ok(e) = pods.try_recv() {
                    Input::Pod(Box::new(e))
                } else if let Ok(e) = nodes.try_recv() {
                    Input::Node(Box::new(e))
                } else if let Ok(e) = namespaces.try_recv() {
                    Input::Namespace(Box::new(e))
                } else if let Ok(e) = pdbs.try_recv() {
                    Input::Pdb(Box::new(e))
                } else if let Ok((uid, ok)) = bound_rx.try_recv() {
                    Input::Bound(uid, ok)
                } else {
                    break;
                };
                self.apply(input, &mut synced);
            }
            if !synced.all() {
                continue;
            }
            for _ in 0..BATCH {
                match self.core.schedule_one(Instant::now()) {
                    Some(d) => self.act(d, &bound_tx),
                    None => break,
                }
            }
            tokio::task::yield_now().await;
        }
    }
}

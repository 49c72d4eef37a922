//! The scheduler: binds pending pods to Ready, schedulable nodes that fit them, and records a
//! `Scheduled` or `FailedScheduling` Event, as kube-scheduler does.

pub mod fit;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use skiff_proto::events::Reporter;

use crate::apiserver::registry::Registry;
use fit::Requests;

/// The scheduler's name in `spec.schedulerName`.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// How soon an unschedulable pod is tried again without a cluster change.
const RETRY: Duration = Duration::from_secs(5);

fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let scheduler = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(SCHEDULER_NAME);
    spec.and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && scheduler == SCHEDULER_NAME
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn is_active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn event(pod: &Pod, type_: &str, reason: &str, message: String) -> Event {
    let reporter = Reporter {
        component: SCHEDULER_NAME,
        host: None,
    };
    skiff_proto::events::pod_event(pod, reporter, None, type_, reason, message)
}

/// The scheduler's state between passes.
pub struct Scheduler {
    registry: Registry,
    /// Pods that did not fit, with when they were last tried and the message given.
    failed: HashMap<String, (Instant, String)>,
}

impl Scheduler {
    pub fn new(registry: Registry) -> Scheduler {
        Scheduler {
            registry,
            failed: HashMap::new(),
        }
    }

    /// One pass: tries every pending pod once. Returns how many were bound.
    pub async fn schedule_pending(&mut self) -> usize {
        let (Ok(pods), Ok(nodes)) = (
            self.registry.list::<Pod>(None, &Default::default()).await,
            self.registry.list::<Node>(None, &Default::default()).await,
        ) else {
            return 0;
        };
        let mut used: BTreeMap<String, Requests> = BTreeMap::new();
        for pod in pods.items.iter().filter(|p| is_active(p)) {
            if let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
            {
                *used.entry(node).or_default() += fit::pod_requests(pod);
            }
        }
        let mut bound = 0;
        let pending: Vec<&Pod> = pods.items.iter().filter(|p| wants_scheduling(p)).collect();
        self.failed.retain(|uid, _| {
            pending
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
        });
        for pod in pending {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            match fit::choose(pod, &nodes.items, &used) {
                Ok(node) => {
                    let node_name = node.metadata.name.clone().unwrap_or_default();
                    match self.registry.bind_pod(&ns, &name, &node_name).await {
                        Ok(_) => {
                            *used.entry(node_name.clone()).or_default() += fit::pod_requests(pod);
                            self.failed.remove(&uid);
                            bound += 1;
                            tracing::info!(pod = %format!("{ns}/{name}"), node = %node_name, "scheduled");
                            self.record(event(
                                pod,
                                "Normal",
                                "Scheduled",
                                format!("Successfully assigned {ns}/{name} to {node_name}"),
                            ))
                            .await;
                        }
                        Err(e) => {
                            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "binding failed")
                        }
                    }
                }
                Err(message) => {
                    // One FailedScheduling event per change of reason (kube-scheduler de-duplicates too).
                    let repeat = self.failed.get(&uid).is_some_and(|(_, m)| *m == message);
                    if !repeat {
                        tracing::info!(pod = %format!("{ns}/{name}"), %message, "unschedulable");
                        self.record(event(pod, "Warning", "FailedScheduling", message.clone()))
                            .await;
                    }
                    self.failed.insert(uid, (Instant::now(), message));
                }
            }
        }
        bound
    }

    async fn record(&self, event: Event) {
        if let Err(e) = self.registry.create::<Event>(&event).await {
            tracing::debug!(error = %e, "recording scheduler event failed");
        }
    }

    /// Runs forever: a pass after every pod or node change (coalesced), and every few seconds
    /// while some pod is waiting.
    pub async fn run(mut self) {
        loop {
            let mut pods = match self
                .registry
                .watch::<Pod>(None, &Default::default(), None)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot watch pods");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut nodes = match self
                .registry
                .watch::<Node>(None, &Default::default(), None)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot watch nodes");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                self.schedule_pending().await;
                let retry = if self.failed.is_empty() {
                    Duration::from_secs(60)
                } else {
                    RETRY
                };
                tokio::select! {
                    e = pods.next() => if e.is_none() { break },
                    e = nodes.next() => if e.is_none() { break },
                    _ = tokio::time::sleep(retry) => {}
                }
                // Coalesce a burst of changes into one pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while let Some(Some(_)) = futures::FutureExt::now_or_never(pods.next()) {}
                while let Some(Some(_)) = futures::FutureExt::now_or_never(nodes.next()) {}
            }
        }
    }
}

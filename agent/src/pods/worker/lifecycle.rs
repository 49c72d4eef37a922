//! The pod worker's side of lifecycle hooks: postStart right after a start (killing the
//! container when it fails) and preStop before the containers of a deleted pod are stopped.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::Worker;
use crate::pods::hooks::{self, Hook};
use crate::pods::probes::handlers::Target;
use crate::runtime::ContainerState;

/// After a preStop hook the kubelet still gives SIGTERM at least this long.
const MIN_GRACE_AFTER_PRE_STOP: Duration = Duration::from_secs(2);

impl Worker {
    fn hook_target(&self, c: &Container, id: &str) -> Target {
        Target {
            runtime: self.deps.runtime.clone(),
            container_id: id.to_string(),
            host: self
                .record
                .pod_ip
                .clone()
                .unwrap_or_else(|| self.deps.host_ip.clone()),
            ports: c.ports.clone().unwrap_or_default(),
        }
    }

    /// Runs `c`'s postStart hook on the just-started attempt `id`. On failure reports
    /// `FailedPostStartHook`, kills the container (the restart policy then decides) and returns
    /// the message.
    pub(super) async fn post_start(&self, pod: &Pod, c: &Container, id: &str) -> Option<String> {
        let handler = hooks::handler(c, Hook::PostStart)?;
        let target = self.hook_target(c, id);
        let message = hooks::run(pod, &c.name, &handler, &target, hooks::POST_START_TIMEOUT)
            .await
            .err()?;
        self.event(
            pod,
            Some(&c.name),
            "Warning",
            Hook::PostStart.failure_reason(),
            message.clone(),
        )
        .await;
        self.event(
            pod,
            Some(&c.name),
            "Normal",
            "Killing",
            format!("FailedPostStartHook: Stopping container {}", c.name),
        )
        .await;
        if let Err(e) = self.deps.runtime.stop(id, super::grace_of(pod)).await {
            tracing::warn!(container = %c.name, error = %e, "killing after a failed postStart hook failed");
        }
        Some(message)
    }

    /// Runs the preStop hooks of the running containers (all at once) within `grace`; returns
    /// the grace left for SIGTERM.
    pub(super) async fn pre_stop(
        &self,
        pod: &Pod,
        ids: &[(String, String)],
        grace: Duration,
    ) -> Duration {
        let started = Instant::now();
        let containers: Vec<&Container> =
            pod.spec.iter().flat_map(|s| s.containers.iter()).collect();
        let runs = ids.iter().filter_map(|(name, id)| {
            let c = containers.iter().find(|c| &c.name == name)?;
            let handler = hooks::handler(c, Hook::PreStop)?;
            if !matches!(self.deps.runtime.state(id), ContainerState::Running { .. }) {
                return None;
            }
            let target = self.hook_target(c, id);
            Some(async move {
                if let Err(message) = hooks::run(pod, name, &handler, &target, grace).await {
                    self.event(
                        pod,
                        Some(name),
                        "Warning",
                        Hook::PreStop.failure_reason(),
                        message,
                    )
                    .await;
                }
            })
        });
        let runs: Vec<_> = runs.collect();
        if runs.is_empty() {
            return grace;
        }
        futures::future::join_all(runs).await;
        grace
            .saturating_sub(started.elapsed())
            .max(MIN_GRACE_AFTER_PRE_STOP)
    }
}

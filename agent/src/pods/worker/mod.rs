//! One pod's worker: brings the node to what the pod asks for (sandbox, init containers in order,
//! app containers with their restart policy and back-off), reports status, and tears it all down
//! when the pod is deleted.

mod backoff;
mod lifecycle;
mod prepare;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

use super::sandbox::{cleanup_sandbox, send_event};
use super::volumes::MountedVolume;
use super::{Deps, events};
use crate::images::{ImageError, ImageRef, PullPolicy};
use crate::pods::containers;
use crate::pods::objects::PodObjects;
use crate::pods::probes::{ContainerProbes, ProbeStatus, handlers};
use crate::pods::state::{ContainerRecord, PodDir, PodRecord, uid_of};
use crate::pods::status::{ContainerView, Observed, PodFacts, pod_status};
use crate::runtime::{ContainerState, ExitReason};

/// What the manager wants of a worker.
#[derive(Debug, Clone)]
pub struct Desired {
    pub pod: Pod,
    /// The object is gone from the control plane (no final report needed).
    pub removed: bool,
}

use backoff::{backoff, crash_delay, crash_streak};

struct Backoff {
    until: Instant,
    failures: u32,
}

/// A running pod worker's memory (the durable part lives in [`PodRecord`]).
pub struct Worker {
    deps: Arc<Deps>,
    dir: PodDir,
    record: PodRecord,
    image_backoff: HashMap<String, Backoff>,
    crash_backoff: HashMap<String, Instant>,
    last_reported: Option<serde_json::Value>,
    /// The API pod's resourceVersion when the status was last posted: a newer pod object that
    /// disagrees with what was posted (see [`super::status::api_disagrees`]) is corrected.
    posted_over: Option<String>,
    netns: Option<std::path::PathBuf>,
    pod_cgroup: Option<String>,
    /// The probes of each running app container (by name), for its current attempt.
    probes: HashMap<String, ContainerProbes>,
    /// Runtime ids of containers killed because a liveness/startup probe failed.
    probe_kills: HashSet<String>,
    /// The ConfigMaps/Secrets the pod references and its volumes, as of the last sync.
    objects: PodObjects,
    volumes: Option<HashMap<String, MountedVolume>>,
    /// The last volume failure reported as an event (reported again only when it changes).
    volume_error: Option<String>,
}

impl Worker {
    /// Whether this node has never acted on the pod (no state on disk, nothing started).
    fn is_new(&self) -> bool {
        self.record.start_time.is_none() && self.record.containers.is_empty()
    }

    fn new(deps: Arc<Deps>, pod: &Pod) -> Worker {
        let dir = PodDir::new(&deps.pods_root, &uid_of(pod));
        let record = dir.load().unwrap_or_else(|| PodRecord {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            ..Default::default()
        });
        Worker {
            deps,
            dir,
            record,
            image_backoff: HashMap::new(),
            crash_backoff: HashMap::new(),
            last_reported: None,
            posted_over: None,
            netns: None,
            pod_cgroup: None,
            probes: HashMap::new(),
            probe_kills: HashSet::new(),
            objects: PodObjects::default(),
            volumes: None,
            volume_error: None,
        }
    }

    fn save(&self) {
        if let Err(e) = self.dir.save(&self.record) {
            tracing::error!(error = %e, "saving pod record failed");
        }
    }

    async fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let event = events::pod_event(pod, &self.deps.node_name, container, type_, reason, message);
        send_event(&self.deps, &event).await;
    }

    /// The probes' verdict on the running app container `c` (attempt `id`), starting its
    /// probes on first sight of the attempt; kills it (once, in the background) when a
    /// liveness or startup probe has failed.
    async fn probe_status(
        &mut self,
        pod: &Pod,
        c: &Container,
        id: &str,
        started_at: jiff::Timestamp,
    ) -> ProbeStatus {
        let is_app = pod
            .spec
            .as_ref()
            .is_some_and(|s| s.containers.iter().any(|x| x.name == c.name));
        let has_probes =
            c.startup_probe.is_some() || c.readiness_probe.is_some() || c.liveness_probe.is_some();
        if !is_app || !has_probes {
            return ProbeStatus::initial(c);
        }
        if self.probes.get(&c.name).map(|p| p.container_id.as_str()) != Some(id) {
            let age = jiff::Timestamp::now()
                .duration_since(started_at)
                .try_into()
                .unwrap_or(Duration::ZERO);
            let now = tokio::time::Instant::now();
            let target = handlers::Target {
                runtime: self.deps.runtime.clone(),
                container_id: id.to_string(),
                host: self
                    .record
                    .pod_ip
                    .clone()
                    .unwrap_or_else(|| self.deps.host_ip.clone()),
                ports: c.ports.clone().unwrap_or_default(),
            };
            let (deps, event_pod, name) = (self.deps.clone(), pod.clone(), c.name.clone());
            let on_failure: super::probes::EventFn = Arc::new(move |kind, message| {
                let event = events::pod_event(
                    &event_pod,
                    &deps.node_name,
                    Some(&name),
                    "Warning",
                    "Unhealthy",
                    format!("{} probe failed: {message}", kind.title()),
                );
                let deps = deps.clone();
                tokio::spawn(async move { send_event(&deps, &event).await });
            });
            // What was last reported for this very container (an agent restart re-adopts it).
            let container_id = format!("skiff://{id}");
            let reported = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|s| s.name == c.name))
                .filter(|s| s.container_id.as_deref() == Some(container_id.as_str()))
                .map(|s| (s.started.unwrap_or(false), s.ready));
            let probes = ContainerProbes::resume(
                c,
                id.to_string(),
                now.checked_sub(age).unwrap_or(now),
                |p| handlers::check_for(p, &target),
                on_failure,
                reported,
            );
            self.probes.insert(c.name.clone(), probes);
        }
        let status = self.probes[&c.name].status();
        if let Some(failure) = &status.failed
            && self.probe_kills.insert(id.to_string())
        {
            let restart = policy(pod) != "Never";
            let message = format!(
                "Container {} failed {} probe{}",
                c.name,
                failure.kind.lower(),
                if restart { ", will be restarted" } else { "" }
            );
            self.event(pod, Some(&c.name), "Normal", "Killing", message)
                .await;
            let grace = failure.grace.unwrap_or_else(|| {
                let secs = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30);
                Duration::from_secs(secs.max(0) as u64)
            });
            let (runtime, id) = (self.deps.runtime.clone(), id.to_string());
            tokio::spawn(async move {
                if let Err(e) = runtime.stop(&id, grace).await {
                    tracing::warn!(container = %id, error = %e, "killing an unhealthy container failed");
                }
            });
        }
        status
    }

    /// Moves one container one step; returns how it looks and when to look again.
    async fn step(
        &mut self,
        pod: &Pod,
        c: &Container,
        restart: bool,
    ) -> (ContainerView, Option<Duration>) {
        let rec = self
            .record
            .containers
            .entry(c.name.clone())
            .or_default()
            .clone();
        let mut view = ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: rec.image_id.clone(),
            container_id: rec.id.as_ref().map(|id| format!("skiff://{id}")),
            restart_count: rec.restart_count,
            observed: Observed::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_terminated: rec.last_terminated.clone(),
            started: false,
            ready: false,
        };
        if let Some(id) = &rec.id {
            let state = self.deps.runtime.state(id);
            if !matches!(state, ContainerState::Running { .. }) {
                self.probes.remove(&c.name);
            }
            let terminated = match (&rec.start_failure, state) {
                (Some(failure), _) => failure.clone(),
                (None, ContainerState::Running { started_at, .. }) => {
                    let probes = self.probe_status(pod, c, id, started_at).await;
                    view.started = probes.started;
                    view.ready = probes.ready;
                    view.observed = Observed::Running { started_at };
                    return (view, Some(Duration::from_secs(1)));
                }
                (
                    None,
                    ContainerState::Exited {
                        exit_code,
                        started_at,
                        finished_at,
                        reason,
                        message,
                    },
                ) => ContainerStateTerminated {
                    exit_code,
                    reason: Some(exit_reason(reason).into()),
                    message,
                    started_at: started_at.map(Time),
                    finished_at: Some(Time(finished_at)),
                    container_id: view.container_id.clone(),
                    ..Default::default()
                },
                (None, ContainerState::Unknown) => ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("Error".into()),
                    message: Some("container state was lost".into()),
                    container_id: view.container_id.clone(),
                    ..Default::default()
                },
            };
            // A container killed for a failed probe restarts unless the policy is Never.
            let killed_by_probe = self.probe_kills.contains(id) && policy(pod) != "Never";
            let wants_restart = restart
                && (policy(pod) == "Always"
                    || killed_by_probe
                    || (policy(pod) == "OnFailure" && terminated.exit_code != 0));
            if !wants_restart {
                view.observed = Observed::Terminated(terminated);
                return (view, None);
            }
            let streak = crash_streak(&rec, &terminated);
            let until = *self
                .crash_backoff
                .entry(c.name.clone())
                .or_insert_with(|| Instant::now() + crash_delay(streak));
            if Instant::now() < until {
                let pod_name = format!(
                    "{}_{}({})",
                    self.record.name,
                    self.record.namespace,
                    uid_of(pod)
                );
                let secs = backoff(streak.saturating_sub(1)).as_secs();
                view.observed = Observed::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {secs}s restarting failed container={} pod={pod_name}",
                        c.name
                    )),
                };
                view.last_terminated = Some(terminated);
                return (view, Some(until - Instant::now()));
            }
            self.crash_backoff.remove(&c.name);
            self.probe_kills.remove(id);
            if let Err(e) = self.deps.runtime.remove(id).await {
                tracing::warn!(container = %c.name, error = %e, "removing exited container failed");
            }
            let next = ContainerRecord {
                attempt: rec.attempt + 1,
                id: None,
                restart_count: rec.restart_count + 1,
                last_terminated: Some(terminated),
                image_id: rec.image_id.clone(),
                start_failure: None,
                crash_streak: Some(streak + 1),
            };
            self.record.containers.insert(c.name.clone(), next.clone());
            self.save();
            // Only the last terminated attempt's log is kept (for `kubectl logs --previous`).
            if let Some(older) = rec.attempt.checked_sub(1) {
                crate::pods::logs::remove_all(&self.dir.log_path(&c.name, older));
            }
            view.restart_count = next.restart_count;
            view.last_terminated = next.last_terminated.clone();
            view.container_id = None;
        }
        self.start(pod, c, view).await
    }

    /// Pulls the image and starts the next attempt of `c`.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        mut view: ContainerView,
    ) -> (ContainerView, Option<Duration>) {
        let image_name = c.image.clone().unwrap_or_default();
        if let Some(b) = self.image_backoff.get(&c.name)
            && Instant::now() < b.until
        {
            view.observed = Observed::Waiting {
                reason: "ImagePullBackOff".into(),
                message: Some(format!("Back-off pulling image \"{image_name}\"")),
            };
            return (view, Some(b.until - Instant::now()));
        }
        let pull_policy = match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        };
        self.event(
            pod,
            Some(&c.name),
            "Normal",
            "Pulling",
            format!("Pulling image \"{image_name}\""),
        )
        .await;
        let started = Instant::now();
        let creds = self.objects.pull_credentials(pod);
        let image = match self
            .deps
            .images
            .ensure_with(&image_name, pull_policy, &creds)
            .await
        {
            Ok(image) => image,
            Err(e) => {
                let failures = self
                    .image_backoff
                    .get(&c.name)
                    .map_or(0, |b| b.failures + 1);
                self.image_backoff.insert(
                    c.name.clone(),
                    Backoff {
                        until: Instant::now() + backoff(failures),
                        failures,
                    },
                );
                let message = e.to_string();
                let reason = match e {
                    ImageError::InvalidReference { .. } => "InvalidImageName",
                    ImageError::NotPresent { .. } => "ErrImageNeverPull",
                    _ => "ErrImagePull",
                };
                self.event(
                    pod,
                    Some(&c.name),
                    "Warning",
                    "Failed",
                    format!("Failed to pull image \"{image_name}\": {message}"),
                )
                .await;
                view.observed = Observed::Waiting {
                    reason: reason.into(),
                    message: Some(message),
                };
                return (view, Some(Duration::from_secs(1)));
            }
        };
        self.image_backoff.remove(&c.name);
        self.event(
            pod,
            Some(&c.name),
            "Normal",
            "Pulled",
            format!(
                "Successfully pulled image \"{image_name}\" in {:.3}s. Image size: {} bytes.",
                started.elapsed().as_secs_f64(),
                image.size
            ),
        )
        .await;
        let repository =
            ImageRef::parse(&image.name).map_or_else(|_| image.name.clone(), |r| r.repository());
        let image_id = format!("{repository}@{}", image.digest);
        let mut rec = self
            .record
            .containers
            .get(&c.name)
            .cloned()
            .unwrap_or_default();
        rec.image_id = Some(image_id.clone());
        view.image_id = Some(image_id);
        let uid = uid_of(pod);
        let id = format!("{}-{}-{}", uid, c.name, rec.attempt);
        let log_path = self.dir.log_path(&c.name, rec.attempt);
        if let Some(parent) = log_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let etc_dir = self.dir.dir.join("etc");
        let ctx = self.context(pod, &etc_dir);
        let spec = match containers::spec(&ctx, c, &image, id.clone(), log_path) {
            Ok(spec) => spec,
            Err(e) => {
                self.record.containers.insert(c.name.clone(), rec);
                self.save();
                self.event(
                    pod,
                    Some(&c.name),
                    "Warning",
                    "Failed",
                    format!("Error: {e}"),
                )
                .await;
                view.observed = Observed::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.to_string()),
                };
                return (view, Some(Duration::from_secs(10)));
            }
        };
        rec.id = Some(id.clone());
        view.container_id = Some(format!("skiff://{id}"));
        match self.deps.runtime.start(&spec).await {
            Ok(()) => {
                self.record.containers.insert(c.name.clone(), rec);
                self.save();
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Created",
                    format!("Created container {}", c.name),
                )
                .await;
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Started",
                    format!("Started container {}", c.name),
                )
                .await;
                if let Some(message) = self.post_start(pod, c, &id).await {
                    view.observed = Observed::Waiting {
                        reason: "PostStartHookError".into(),
                        message: Some(message),
                    };
                    return (view, Some(Duration::ZERO));
                }
                view.observed = Observed::Running {
                    started_at: jiff::Timestamp::now(),
                };
                let probes = ProbeStatus::initial(c);
                view.started = probes.started;
                view.ready = probes.ready;
                (view, Some(Duration::from_millis(500)))
            }
            Err(e) => {
                let now = Time(jiff::Timestamp::now());
                let failure = ContainerStateTerminated {
                    exit_code: 128,
                    reason: Some("ContainerCannotRun".into()),
                    message: Some(e.to_string()),
                    started_at: Some(now.clone()),
                    finished_at: Some(now),
                    container_id: view.container_id.clone(),
                    ..Default::default()
                };
                rec.start_failure = Some(failure.clone());
                self.record.containers.insert(c.name.clone(), rec);
                self.save();
                self.event(
                    pod,
                    Some(&c.name),
                    "Warning",
                    "Failed",
                    format!("Error: {e}"),
                )
                .await;
                view.observed = Observed::Terminated(failure);
                (view, Some(Duration::ZERO))
            }
        }
    }

    /// One pass over the pod; returns when to look again.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        let mut facts = PodFacts {
            host_ip: Some(self.deps.host_ip.clone()),
            qos_class: Some(format!("{:?}", crate::cgroups::qos_class(pod))),
            ..Default::default()
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let mut wake = Duration::from_secs(5);
        let waiting = |c: &Container, reason: &str, message: Option<String>| ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: None,
            container_id: None,
            restart_count: 0,
            observed: Observed::Waiting {
                reason: reason.into(),
                message,
            },
            last_terminated: None,
            started: false,
            ready: false,
        };
        let mut init_views = Vec::new();
        let mut views = Vec::new();
        let ready = match self.ensure_sandbox(pod).await {
            Err(message) => {
                tracing::warn!(%message, "creating pod sandbox failed");
                self.event(
                    pod,
                    None,
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {message}"),
                )
                .await;
                false
            }
            Ok(()) => self.prepare_volumes(pod).await,
        };
        match ready {
            false => {
                views = spec
                    .containers
                    .iter()
                    .map(|c| waiting(c, "ContainerCreating", None))
                    .collect();
            }
            true => {
                facts.sandbox_ready = true;
                facts.pod_ip = self.record.pod_ip.clone();
                facts.start_time = self
                    .record
                    .start_time
                    .as_deref()
                    .and_then(|t| t.parse().ok());
                facts.initialized = true;
                for c in spec.init_containers.iter().flatten() {
                    if !facts.initialized {
                        init_views.push(waiting(c, "PodInitializing", None));
                        continue;
                    }
                    let (view, next) = self.step(pod, c, policy(pod) != "Never").await;
                    if let Some(next) = next {
                        wake = wake.min(next);
                    }
                    match &view.observed {
                        Observed::Terminated(t) if t.exit_code == 0 => {}
                        Observed::Terminated(_) => {
                            facts.initialized = false;
                            facts.init_failed = true;
                        }
                        _ => facts.initialized = false,
                    }
                    init_views.push(view);
                }
                for c in &spec.containers {
                    if !facts.initialized {
                        views.push(waiting(c, "PodInitializing", None));
                        continue;
                    }
                    let (view, next) = self.step(pod, c, true).await;
                    if let Some(next) = next {
                        wake = wake.min(next);
                    }
                    views.push(view);
                }
            }
        }
        let status = pod_status(pod, &facts, &init_views, &views);
        self.report(pod, &status).await;
        wake.max(Duration::from_millis(100))
    }

    async fn report(&mut self, pod: &Pod, status: &k8s_openapi::api::core::v1::PodStatus) {
        // Compare without the volatile transition times, so an unchanged pod is not re-posted.
        let mut comparable = serde_json::to_value(status).unwrap_or_default();
        if let Some(conds) = comparable
            .get_mut("conditions")
            .and_then(|c| c.as_array_mut())
        {
            for c in conds {
                c.as_object_mut().map(|o| o.remove("lastTransitionTime"));
            }
        }
        let overwritten = pod.metadata.resource_version != self.posted_over
            && super::status::api_disagrees(pod.status.as_ref(), status);
        if self.last_reported.as_ref() == Some(&comparable) && !overwritten {
            return;
        }
        let update = skiff_proto::node::PodStatusUpdate {
            namespace: self.record.namespace.clone(),
            name: self.record.name.clone(),
            uid: uid_of(pod),
            status_json: skiff_proto::to_json(status),
        };
        match self.deps.client.clone().update_pod_status(update).await {
            Ok(_) => {
                self.last_reported = Some(comparable);
                self.posted_over = pod.metadata.resource_version.clone();
            }
            Err(status) => tracing::warn!(%status, "reporting pod status failed"),
        }
    }

    /// Stops every container (SIGTERM, grace, SIGKILL) and removes all the pod had on the node.
    pub async fn terminate(&mut self, pod: &Pod, grace: Duration) {
        self.probes.clear();
        let ids: Vec<(String, String)> = self
            .record
            .containers
            .iter()
            .filter_map(|(name, r)| r.id.clone().map(|id| (name.clone(), id)))
            .collect();
        for (name, _) in &ids {
            self.event(
                pod,
                Some(name),
                "Normal",
                "Killing",
                format!("Stopping container {name}"),
            )
            .await;
        }
        let grace = self.pre_stop(pod, &ids, grace).await;
        let runtime = &self.deps.runtime;
        futures::future::join_all(ids.iter().map(|(_, id)| async move {
            if let Err(e) = runtime.stop(id, grace).await {
                tracing::warn!(container = %id, error = %e, "stopping container failed");
            }
            if let Err(e) = runtime.remove(id).await {
                tracing::warn!(container = %id, error = %e, "removing container failed");
            }
        }))
        .await;
        cleanup_sandbox(&self.deps, &uid_of(pod), &self.record).await;
        if let Err(e) = self.dir.remove() {
            tracing::warn!(error = %e, "removing pod directory failed");
        }
    }
}

fn policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn exit_reason(reason: ExitReason) -> &'static str {
    match reason {
        ExitReason::Completed => "Completed",
        ExitReason::Error => "Error",
        ExitReason::OomKilled => "OOMKilled",
        ExitReason::ContainerCannotRun => "ContainerCannotRun",
    }
}

/// The grace period to stop a deleted pod with.
fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs one pod until it is deleted and cleaned up.
pub async fn run(deps: Arc<Deps>, mut desired: watch::Receiver<Desired>) {
    let first = desired.borrow().pod.clone();
    let mut worker = Worker::new(deps.clone(), &first);
    loop {
        let Desired { pod, removed } = desired.borrow_and_update().clone();
        let span = tracing::info_span!("pod", namespace = %worker.record.namespace, name = %worker.record.name);
        if removed || pod.metadata.deletion_timestamp.is_some() {
            let grace = if removed {
                Duration::from_secs(2)
            } else {
                grace_of(&pod)
            };
            tracing::Instrument::instrument(worker.terminate(&pod, grace), span).await;
            if !removed {
                let r = skiff_proto::node::PodRef {
                    namespace: worker.record.namespace.clone(),
                    name: worker.record.name.clone(),
                    uid: uid_of(&pod),
                };
                for _ in 0..30 {
                    match deps.client.clone().pod_terminated(r.clone()).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::NotFound => break,
                        Err(status) => {
                            tracing::warn!(%status, "reporting pod termination failed; retrying")
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            tracing::info!(namespace = %worker.record.namespace, name = %worker.record.name, "pod removed from node");
            return;
        }
        // A pod that finished before this node (or agent state) was lost stays finished: the
        // kubelet never runs a Succeeded or Failed pod again.
        let wake = if worker.is_new() && is_terminal(&pod) {
            Duration::from_secs(3600)
        } else {
            tracing::Instrument::instrument(worker.sync(&pod), span).await
        };
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    // The manager dropped us: treat as removed.
                    let pod = desired.borrow().pod.clone();
                    worker.terminate(&pod, Duration::from_secs(2)).await;
                    return;
                }
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

//! Container probes (startup, readiness, liveness) like the kubelet's prober: one timer task per
//! probe and container attempt, thresholds counted as upstream does, results published on a
//! watch channel the pod worker reads without waiting ([`ContainerProbes::status`]).
//!
//! Semantics (upstream `pkg/kubelet/prober/worker.go`): a probe runs every `periodSeconds`,
//! skipped while the container is younger than `initialDelaySeconds`; a result only takes
//! effect after `successThreshold` / `failureThreshold` equal results in a row. The startup probe
//! gates the others; once it succeeds it stops. Readiness starts as not ready, liveness as
//! healthy; a liveness (or startup) failure is reported once and the probe then holds until the
//! container restarts (a new attempt gets a new [`ContainerProbes`]).

pub mod handlers;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    /// As the kubelet names it in events ("Liveness probe failed: …").
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        }
    }

    /// As the kubelet names it in the Killing event ("… failed liveness probe").
    pub fn lower(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// A probe that failed for good: the container must be killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub kind: ProbeKind,
    /// The last failure's output.
    pub message: String,
    /// The probe's own `terminationGracePeriodSeconds`, if it sets one.
    pub grace: Option<Duration>,
}

/// What the probes say about one running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// Started, and the readiness probe succeeds (or there is none).
    pub ready: bool,
    /// A liveness or startup probe failed `failureThreshold` times.
    pub failed: Option<ProbeFailure>,
}

impl ProbeStatus {
    /// The status of a container that has just started, before any probe ran.
    pub fn initial(c: &Container) -> ProbeStatus {
        let started = c.startup_probe.is_none();
        ProbeStatus {
            started,
            ready: started && c.readiness_probe.is_none(),
            failed: None,
        }
    }
}

/// The probe's timing with upstream defaults and minimums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe, kind: ProbeKind) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let success = probe.success_threshold.unwrap_or(1).max(1) as u32;
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            // Liveness and startup probes must use 1 (the API server enforces it upstream).
            success_threshold: if kind == ProbeKind::Readiness {
                success
            } else {
                1
            },
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Counts equal results in a row and settles a result once its threshold is reached.
#[derive(Debug, Clone)]
pub struct Thresholds {
    success: u32,
    failure: u32,
    last: Option<bool>,
    run: u32,
}

impl Thresholds {
    pub fn new(timing: &Timing) -> Thresholds {
        Thresholds {
            success: timing.success_threshold,
            failure: timing.failure_threshold,
            last: None,
            run: 0,
        }
    }

    /// Records one probe result; returns the result once it counts (threshold reached).
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok { self.success } else { self.failure };
        (self.run >= needed).then_some(ok)
    }
}

/// One probe attempt: `Ok` on success, `Err(output)` on failure. Gets the probe's timeout.
pub type CheckFn = Arc<dyn Fn(Duration) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;
/// Records an `Unhealthy` event: (kind, message) — the caller formats and sends it.
pub type EventFn = Arc<dyn Fn(ProbeKind, String) + Send + Sync>;

/// The probe tasks of one container attempt; dropping this stops them.
pub struct ContainerProbes {
    /// The runtime id of the attempt the probes watch.
    pub container_id: String,
    status: watch::Receiver<ProbeStatus>,
    tasks: Vec<JoinHandle<()>>,
}

impl ContainerProbes {
    /// Starts one task per probe of `c`; `started` is when the container started (the
    /// initial delays count from it); `check` builds the check for a probe.
    pub fn start(
        c: &Container,
        container_id: String,
        started: Instant,
        check: impl Fn(&Probe) -> CheckFn,
        on_failure: EventFn,
    ) -> ContainerProbes {
        Self::resume(c, container_id, started, check, on_failure, None)
    }

    /// Like [`ContainerProbes::start`] for a container an earlier agent already probed:
    /// `reported` is the (started, ready) it last reported for this very container, so an
    /// agent restart neither re-runs a passed startup probe nor flips a ready container to
    /// not ready until its probes say so (which would drop it from its Services' endpoints).
    pub fn resume(
        c: &Container,
        container_id: String,
        started: Instant,
        check: impl Fn(&Probe) -> CheckFn,
        on_failure: EventFn,
        reported: Option<(bool, bool)>,
    ) -> ContainerProbes {
        let mut initial = ProbeStatus::initial(c);
        let resumed_started = reported.is_some_and(|(started, _)| started);
        if let Some((true, ready)) = reported {
            initial.started = true;
            initial.ready = ready;
        }
        let (tx, rx) = watch::channel(initial);
        let tx = Arc::new(tx);
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Startup, &c.startup_probe),
            (ProbeKind::Readiness, &c.readiness_probe),
            (ProbeKind::Liveness, &c.liveness_probe),
        ] {
            if kind == ProbeKind::Startup && resumed_started {
                continue;
            }
            if let Some(probe) = probe {
                let grace = probe
                    .termination_grace_period_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64));
                tasks.push(tokio::spawn(run(Runner {
                    kind,
                    timing: Timing::of(probe, kind),
                    grace,
                    started,
                    ready_on_start: c.readiness_probe.is_none(),
                    check: check(probe),
                    on_failure: on_failure.clone(),
                    status: tx.clone(),
                })));
            }
        }
        ContainerProbes {
            container_id,
            status: rx,
            tasks,
        }
    }

    /// The latest results (never waits).
    pub fn status(&self) -> ProbeStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change (for whoever wants to wake on one).
    pub fn subscribe(&self) -> watch::Receiver<ProbeStatus> {
        self.status.clone()
    }
}

impl Drop for ContainerProbes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Runner {
    kind: ProbeKind,
    timing: Timing,
    grace: Option<Duration>,
    started: Instant,
    /// No readiness probe: the container is ready once the startup probe succeeded.
    ready_on_start: bool,
    check: CheckFn,
    on_failure: EventFn,
    status: Arc<watch::Sender<ProbeStatus>>,
}

/// One probe's loop.
async fn run(r: Runner) {
    if r.kind != ProbeKind::Startup {
        // Wait for the startup probe (if any) to succeed.
        let mut rx = r.status.subscribe();
        if rx.wait_for(|s| s.started).await.is_err() {
            return;
        }
    }
    let mut thresholds = Thresholds::new(&r.timing);
    let mut ticker = tokio::time::interval(r.timing.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if Instant::now().saturating_duration_since(r.started) < r.timing.initial_delay {
            continue;
        }
        let result = (r.check)(r.timing.timeout).await;
        if let Err(message) = &result {
            tracing::debug!(probe = r.kind.lower(), %message, "probe failed");
            (r.on_failure)(r.kind, message.clone());
        }
        let Some(ok) = thresholds.observe(result.is_ok()) else {
            continue;
        };
        match (r.kind, ok) {
            (ProbeKind::Readiness, ready) => {
                r.status.send_if_modified(|s| {
                    let changed = s.ready != ready;
                    s.ready = ready;
                    changed
                });
            }
            (ProbeKind::Startup, true) => {
                r.status.send_modify(|s| {
                    s.started = true;
                    s.ready |= r.ready_on_start;
                });
                return;
            }
            (ProbeKind::Liveness, true) => {}
            (kind, false) => {
                let message = result.err().unwrap_or_default();
                r.status.send_modify(|s| {
                    s.ready = false;
                    s.failed.get_or_insert(ProbeFailure {
                        kind,
                        message,
                        grace: r.grace,
                    });
                });
                // Hold until the container restarts (then a new ContainerProbes runs).
                return;
            }
        }
    }
}

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;

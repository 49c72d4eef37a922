//! Probe timing and threshold logic on tokio's paused clock, with scripted checks.

use std::collections::VecDeque;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ExecAction;

use super::*;

/// A check that answers from a script (the last answer repeats) and logs when it ran.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<bool>>>,
    calls: Arc<Mutex<Vec<Duration>>>,
}

impl Script {
    fn new(answers: &[bool]) -> Script {
        Script {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            calls: Arc::default(),
        }
    }

    fn check(&self, t0: Instant) -> CheckFn {
        let me = self.clone();
        Arc::new(move |_timeout| {
            let me = me.clone();
            async move {
                let n = {
                    let mut calls = me.calls.lock().unwrap();
                    calls.push(t0.elapsed());
                    calls.len()
                };
                let mut answers = me.answers.lock().unwrap();
                let ok = if answers.len() > 1 {
                    answers.pop_front().unwrap()
                } else {
                    answers.front().copied().unwrap_or(true)
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("failure {n}"))
                }
            }
            .boxed()
        })
    }

    fn calls(&self) -> Vec<u64> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_secs())
            .collect()
    }
}

use futures::FutureExt;

fn probe(period: i32, success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        period_seconds: Some(period),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        ..Default::default()
    }
}

type Events = Arc<Mutex<Vec<(ProbeKind, String)>>>;

fn recorder() -> (EventFn, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (
        Arc::new(move |kind, msg| sink.lock().unwrap().push((kind, msg))),
        events,
    )
}

/// Starts the probes of `c` with one script per kind.
fn start(
    c: &Container,
    scripts: &[(ProbeKind, &Script)],
    t0: Instant,
) -> (ContainerProbes, Events) {
    resume(c, scripts, t0, None)
}

/// Like [`start`], for a container a previous agent reported as (started, ready).
fn resume(
    c: &Container,
    scripts: &[(ProbeKind, &Script)],
    t0: Instant,
    reported: Option<(bool, bool)>,
) -> (ContainerProbes, Events) {
    let (sink, events) = recorder();
    let by_kind: Vec<(ProbeKind, CheckFn)> =
        scripts.iter().map(|(k, s)| (*k, s.check(t0))).collect();
    let kinds = [
        (c.startup_probe.clone(), ProbeKind::Startup),
        (c.readiness_probe.clone(), ProbeKind::Readiness),
        (c.liveness_probe.clone(), ProbeKind::Liveness),
    ];
    let probes = ContainerProbes::resume(
        c,
        "id-0".into(),
        t0,
        |p| {
            let kind = kinds
                .iter()
                .find(|(probe, _)| probe.as_ref() == Some(p))
                .map(|(_, k)| *k)
                .unwrap();
            by_kind.iter().find(|(k, _)| *k == kind).unwrap().1.clone()
        },
        sink,
        reported,
    );
    (probes, events)
}

async fn at(t0: Instant, secs: f64) {
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(secs)).await;
}

#[test]
fn thresholds_settle_after_runs_of_equal_results() {
    let timing = Timing::of(&probe(10, 2, 3), ProbeKind::Readiness);
    let mut t = Thresholds::new(&timing);
    assert_eq!(t.observe(true), None);
    assert_eq!(t.observe(true), Some(true));
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(true), None, "a success breaks the failure run");
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), Some(false));
    assert_eq!(t.observe(false), Some(false));
}

#[test]
fn timing_has_upstream_defaults_and_minimums() {
    let t = Timing::of(&Probe::default(), ProbeKind::Liveness);
    assert_eq!(
        t,
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    let odd = Probe {
        period_seconds: Some(0),
        timeout_seconds: Some(-1),
        success_threshold: Some(4),
        ..Default::default()
    };
    let t = Timing::of(&odd, ProbeKind::Liveness);
    assert_eq!(
        (t.period, t.timeout, t.success_threshold),
        (Duration::from_secs(1), Duration::from_secs(1), 1)
    );
    assert_eq!(Timing::of(&odd, ProbeKind::Readiness).success_threshold, 4);
}

#[test]
fn initial_status_follows_which_probes_exist() {
    let mut c = Container::default();
    assert_eq!(
        ProbeStatus::initial(&c),
        ProbeStatus {
            started: true,
            ready: true,
            failed: None
        }
    );
    c.readiness_probe = Some(probe(1, 1, 1));
    assert!(ProbeStatus::initial(&c).started && !ProbeStatus::initial(&c).ready);
    c.readiness_probe = None;
    c.startup_probe = Some(probe(1, 1, 1));
    assert!(!ProbeStatus::initial(&c).started && !ProbeStatus::initial(&c).ready);
}

#[tokio::test(start_paused = true)]
async fn readiness_needs_its_success_threshold_and_drops_after_failures() {
    let t0 = Instant::now();
    let c = Container {
        readiness_probe: Some(probe(10, 2, 2)),
        ..Default::default()
    };
    // t=0 fail, 10 ok, 20 ok (ready), 30 fail, 40 fail (not ready), 50 ok …
    let script = Script::new(&[false, true, true, false, false, true]);
    let (probes, events) = start(&c, &[(ProbeKind::Readiness, &script)], t0);
    assert!(!probes.status().ready);
    at(t0, 15.0).await;
    assert!(!probes.status().ready, "one success is not enough");
    at(t0, 25.0).await;
    assert!(probes.status().ready);
    at(t0, 35.0).await;
    assert!(probes.status().ready, "one failure is not enough");
    at(t0, 45.0).await;
    assert!(!probes.status().ready);
    assert_eq!(probes.status().failed, None, "readiness never kills");
    assert_eq!(script.calls(), vec![0, 10, 20, 30, 40]);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            (ProbeKind::Readiness, "failure 1".to_string()),
            (ProbeKind::Readiness, "failure 4".to_string()),
            (ProbeKind::Readiness, "failure 5".to_string()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn initial_delay_skips_early_periods() {
    let t0 = Instant::now();
    let mut p = probe(5, 1, 3);
    p.initial_delay_seconds = Some(12);
    let c = Container {
        readiness_probe: Some(p),
        ..Default::default()
    };
    let script = Script::new(&[true]);
    let (probes, _) = start(&c, &[(ProbeKind::Readiness, &script)], t0);
    at(t0, 14.0).await;
    assert!(!probes.status().ready);
    at(t0, 16.0).await;
    assert!(probes.status().ready);
    assert_eq!(script.calls(), vec![15]);
}

#[tokio::test(start_paused = true)]
async fn liveness_fails_after_its_threshold_and_then_holds() {
    let t0 = Instant::now();
    let mut p = probe(10, 1, 3);
    p.termination_grace_period_seconds = Some(7);
    let c = Container {
        liveness_probe: Some(p),
        ..Default::default()
    };
    let script = Script::new(&[true, false, false, true, false, false, false]);
    let (probes, events) = start(&c, &[(ProbeKind::Liveness, &script)], t0);
    assert!(
        probes.status().ready,
        "no readiness probe: ready while alive"
    );
    at(t0, 55.0).await;
    assert_eq!(
        probes.status().failed,
        None,
        "the run of failures was broken"
    );
    at(t0, 65.0).await;
    assert_eq!(
        probes.status().failed,
        Some(ProbeFailure {
            kind: ProbeKind::Liveness,
            message: "failure 7".into(),
            grace: Some(Duration::from_secs(7)),
        })
    );
    assert!(!probes.status().ready);
    at(t0, 200.0).await;
    assert_eq!(
        script.calls(),
        vec![0, 10, 20, 30, 40, 50, 60],
        "holds after failing"
    );
    assert_eq!(events.lock().unwrap().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn startup_gates_the_other_probes() {
    let t0 = Instant::now();
    let c = Container {
        startup_probe: Some(probe(2, 1, 10)),
        liveness_probe: Some(probe(10, 1, 1)),
        ..Default::default()
    };
    let startup = Script::new(&[false, false, true]);
    let liveness = Script::new(&[true]);
    let (probes, _) = start(
        &c,
        &[
            (ProbeKind::Startup, &startup),
            (ProbeKind::Liveness, &liveness),
        ],
        t0,
    );
    at(t0, 3.0).await;
    let s = probes.status();
    assert!(!s.started && !s.ready);
    assert!(liveness.calls().is_empty(), "liveness waits for startup");
    at(t0, 5.0).await;
    let s = probes.status();
    assert!(s.started && s.ready, "{s:?}");
    at(t0, 30.0).await;
    assert_eq!(
        startup.calls(),
        vec![0, 2, 4],
        "startup stops once it succeeded"
    );
    assert_eq!(liveness.calls(), vec![4, 14, 24]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_startup_probe_fails_the_container() {
    let t0 = Instant::now();
    let c = Container {
        startup_probe: Some(probe(1, 1, 3)),
        readiness_probe: Some(probe(1, 1, 1)),
        ..Default::default()
    };
    let startup = Script::new(&[false]);
    let readiness = Script::new(&[true]);
    let (probes, _) = start(
        &c,
        &[
            (ProbeKind::Startup, &startup),
            (ProbeKind::Readiness, &readiness),
        ],
        t0,
    );
    at(t0, 10.0).await;
    let s = probes.status();
    assert_eq!(s.failed.map(|f| f.kind), Some(ProbeKind::Startup));
    assert!(!s.started && !s.ready);
    assert_eq!(startup.calls(), vec![0, 1, 2]);
    assert!(readiness.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_probes_stops_them() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: Some(probe(1, 1, 100)),
        ..Default::default()
    };
    let script = Script::new(&[true]);
    let (probes, _) = start(&c, &[(ProbeKind::Liveness, &script)], t0);
    at(t0, 2.5).await;
    drop(probes);
    at(t0, 10.0).await;
    assert_eq!(script.calls(), vec![0, 1, 2]);
}

#[test]
fn named_ports_resolve_from_the_container() {
    use handlers::resolve_port;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let ports = vec![ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        ..Default::default()
    }];
    assert_eq!(resolve_port(&IntOrString::Int(81), &ports), Ok(81));
    assert_eq!(
        resolve_port(&IntOrString::String("http".into()), &ports),
        Ok(8080)
    );
    assert!(resolve_port(&IntOrString::String("nope".into()), &ports).is_err());
    assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
    assert!(resolve_port(&IntOrString::Int(70000), &ports).is_err());
}

use k8s_openapi::api::core::v1::ContainerPort;

#[tokio::test(start_paused = true)]
async fn a_resumed_ready_container_stays_ready_until_its_probes_say_otherwise() {
    let t0 = Instant::now();
    let c = Container {
        startup_probe: Some(probe(10, 1, 3)),
        readiness_probe: Some(probe(10, 1, 2)),
        ..Default::default()
    };
    // The agent restarted: the container was reported started and ready. The startup probe
    // is not run again, and readiness holds through one failure, dropping after two.
    let startup = Script::new(&[false, false, false, false]);
    let readiness = Script::new(&[false, false]);
    let (probes, _) = resume(
        &c,
        &[
            (ProbeKind::Startup, &startup),
            (ProbeKind::Readiness, &readiness),
        ],
        t0,
        Some((true, true)),
    );
    assert!(probes.status().started && probes.status().ready);
    at(t0, 5.0).await;
    assert!(probes.status().ready, "one failure is not enough");
    at(t0, 15.0).await;
    assert!(!probes.status().ready);
    assert_eq!(probes.status().failed, None);
    assert!(
        startup.calls().is_empty(),
        "the startup probe already passed"
    );
}

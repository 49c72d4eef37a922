//! Turns what the agent observed of a pod's containers into the PodStatus Kubernetes users read:
//! phase, conditions and container states, following the kubelet's rules.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the agent knows of one container right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    Terminated(ContainerStateTerminated),
}

/// One container as the status reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: Option<String>,
    pub container_id: Option<String>,
    pub restart_count: i32,
    pub observed: Observed,
    pub last_terminated: Option<ContainerStateTerminated>,
    /// The probes' verdict while running (see `probes::ProbeStatus`).
    pub started: bool,
    pub ready: bool,
}

impl ContainerView {
    fn status(&self) -> ContainerStatus {
        let state = match &self.observed {
            Observed::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            Observed::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            Observed::Terminated(t) => ContainerState {
                terminated: Some(t.clone()),
                ..Default::default()
            },
        };
        let running = matches!(self.observed, Observed::Running { .. });
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone().unwrap_or_default(),
            container_id: self.container_id.clone(),
            ready: running && self.ready,
            started: Some(running && self.started),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: self.last_terminated.clone().map(|t| ContainerState {
                terminated: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn has_run(&self) -> bool {
        self.last_terminated.is_some() || !matches!(self.observed, Observed::Waiting { .. })
    }
}

/// Everything [`pod_status`] needs besides the containers.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<jiff::Timestamp>,
    pub qos_class: Option<String>,
    /// Init containers have all completed successfully.
    pub initialized: bool,
    /// The sandbox (cgroup + network) exists.
    pub sandbox_ready: bool,
    /// An init container failed for good (restartPolicy Never).
    pub init_failed: bool,
}

/// The pod's phase, as the kubelet computes it.
pub fn phase(restart_policy: &str, facts: &PodFacts, containers: &[ContainerView]) -> &'static str {
    if facts.init_failed {
        return "Failed";
    }
    if !facts.initialized {
        return "Pending";
    }
    let (mut running, mut waiting_new, mut succeeded, mut failed) = (0, 0, 0, 0);
    for c in containers {
        match &c.observed {
            Observed::Running { .. } => running += 1,
            Observed::Waiting { .. } if !c.has_run() => waiting_new += 1,
            Observed::Waiting { .. } => running += 1, // restarting after a crash
            Observed::Terminated(t) if t.exit_code == 0 => succeeded += 1,
            Observed::Terminated(_) => failed += 1,
        }
    }
    if waiting_new > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed > 0 => "Running",
        "Never" if failed > 0 => "Failed",
        _ if succeeded + failed > 0 => "Succeeded",
        _ => "Pending",
    }
}

/// Builds the full status to report.
pub fn pod_status(
    pod: &Pod,
    facts: &PodFacts,
    init: &[ContainerView],
    containers: &[ContainerView],
) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let phase = phase(restart_policy, facts, containers);
    let now = Some(Time(jiff::Timestamp::now()));
    let all_ready = !containers.is_empty()
        && containers
            .iter()
            .all(|c| c.ready && matches!(c.observed, Observed::Running { .. }));
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        // Keep the transition time while the condition's value stays the same.
        let last = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status);
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            last_transition_time: last
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| now.clone()),
            ..Default::default()
        }
    };
    let not_ready_reason = if terminal {
        Some("PodCompleted")
    } else {
        Some("ContainersNotReady")
    };
    let conditions = vec![
        condition("PodReadyToStartContainers", facts.sandbox_ready, None),
        condition(
            "Initialized",
            facts.initialized,
            (!facts.initialized).then_some("ContainersNotInitialized"),
        ),
        condition(
            "Ready",
            all_ready,
            (!all_ready).then_some(not_ready_reason).flatten(),
        ),
        condition(
            "ContainersReady",
            all_ready,
            (!all_ready).then_some(not_ready_reason).flatten(),
        ),
        condition("PodScheduled", true, None),
    ];
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: facts.host_ip.clone(),
        host_ips: facts.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: facts.start_time.map(Time),
        qos_class: facts.qos_class.clone(),
        init_container_statuses: (!init.is_empty())
            .then(|| init.iter().map(ContainerView::status).collect()),
        container_statuses: Some(containers.iter().map(ContainerView::status).collect()),
        ..Default::default()
    }
}

/// Whether the API's copy of the status says something else than ours about what others act
/// on — the phase and the Ready condition (the node lifecycle controller marks the pods of a
/// silent node not ready; the agent, back, must say the truth again).
pub fn api_disagrees(api: Option<&PodStatus>, ours: &PodStatus) -> bool {
    let ready = |s: Option<&PodStatus>| {
        s.and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    api.and_then(|s| s.phase.as_deref()) != ours.phase.as_deref() || ready(api) != ready(Some(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(observed: Observed, restarts: i32) -> ContainerView {
        ContainerView {
            name: "c".into(),
            image: "busybox".into(),
            image_id: None,
            container_id: None,
            restart_count: restarts,
            observed,
            last_terminated: None,
            started: true,
            ready: true,
        }
    }

    fn exited(code: i32) -> Observed {
        Observed::Terminated(ContainerStateTerminated {
            exit_code: code,
            ..Default::default()
        })
    }

    fn ready() -> PodFacts {
        PodFacts {
            initialized: true,
            sandbox_ready: true,
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let waiting = Observed::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        assert_eq!(
            phase("Always", &ready(), &[view(waiting.clone(), 0)]),
            "Pending"
        );
        let running = Observed::Running {
            started_at: jiff::Timestamp::now(),
        };
        assert_eq!(phase("Always", &ready(), &[view(running, 0)]), "Running");
        assert_eq!(phase("Never", &ready(), &[view(exited(0), 0)]), "Succeeded");
        assert_eq!(phase("Never", &ready(), &[view(exited(1), 0)]), "Failed");
        assert_eq!(
            phase("OnFailure", &ready(), &[view(exited(1), 0)]),
            "Running"
        );
        assert_eq!(
            phase("OnFailure", &ready(), &[view(exited(0), 0)]),
            "Succeeded"
        );
        let mut crashed = view(
            Observed::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            },
            3,
        );
        crashed.last_terminated = Some(ContainerStateTerminated {
            exit_code: 1,
            ..Default::default()
        });
        assert_eq!(phase("Always", &ready(), &[crashed]), "Running");
        let pending_init = PodFacts {
            initialized: false,
            ..ready()
        };
        assert_eq!(
            phase("Always", &pending_init, &[view(waiting, 0)]),
            "Pending"
        );
    }

    #[test]
    fn probes_decide_readiness_of_running_containers() {
        let pod = Pod {
            spec: Some(Default::default()),
            ..Default::default()
        };
        let running = Observed::Running {
            started_at: jiff::Timestamp::now(),
        };
        let cond = |status: &PodStatus, type_: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.clone(), c.reason.clone()))
                .unwrap()
        };
        let mut unready = view(running.clone(), 0);
        unready.ready = false;
        let status = pod_status(&pod, &ready(), &[], &[unready.clone()]);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!((cs.ready, cs.started), (false, Some(true)));
        for type_ in ["Ready", "ContainersReady"] {
            assert_eq!(
                cond(&status, type_),
                ("False".into(), Some("ContainersNotReady".into()))
            );
        }
        unready.started = false;
        let status = pod_status(&pod, &ready(), &[], &[unready]);
        assert_eq!(
            status.container_statuses.unwrap()[0].started,
            Some(false),
            "the startup probe has not passed yet"
        );
        let status = pod_status(&pod, &ready(), &[], &[view(running, 0)]);
        assert!(status.container_statuses.as_ref().unwrap()[0].ready);
        assert_eq!(cond(&status, "Ready").0, "True");
    }

    #[test]
    fn completed_pod_reports_terminated_state_and_not_ready() {
        let pod = Pod {
            spec: Some(Default::default()),
            ..Default::default()
        };
        let mut t = ContainerStateTerminated {
            exit_code: 0,
            ..Default::default()
        };
        t.reason = Some("Completed".into());
        let status = pod_status(&pod, &ready(), &[], &[view(Observed::Terminated(t), 0)]);
        assert_eq!(
            status.phase.as_deref(),
            Some("Running"),
            "restartPolicy defaults to Always"
        );
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
        assert!(!cs.ready);
        let ready_cond = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready_cond.status, "False");
    }

    #[test]
    fn a_status_marked_not_ready_elsewhere_disagrees() {
        let status = |phase: &str, ready: &str| -> PodStatus {
            serde_json::from_value(serde_json::json!({"phase": phase, "conditions": [
                {"type": "Ready", "status": ready}, {"type": "PodScheduled", "status": "True"}
            ]}))
            .unwrap()
        };
        let ours = status("Running", "True");
        assert!(!api_disagrees(Some(&status("Running", "True")), &ours));
        assert!(api_disagrees(Some(&status("Running", "False")), &ours));
        assert!(api_disagrees(Some(&status("Pending", "True")), &ours));
        assert!(api_disagrees(None, &ours));
    }
}

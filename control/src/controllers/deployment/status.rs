//! Deployment status: counts from the ReplicaSets and the Available/Progressing conditions
//! with upstream's reasons, which `kubectl rollout status` reads.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rolling::{desired, spec_replicas, surge_and_unavailable};

pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

fn count(
    rs: &ReplicaSet,
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

/// Sets condition `type_`; keeps lastTransitionTime when the status did not change.
pub fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) {
    let old = conds.iter().position(|c| c.type_ == type_);
    if let Some(i) = old {
        let c = &conds[i];
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message.as_str())
        {
            return;
        }
    }
    let transition = old
        .map(|i| &conds[i])
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let cond = DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(transition),
    };
    match old {
        Some(i) => conds[i] = cond,
        None => conds.push(cond),
    }
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == type_)
}

/// The whole rollout is done: every replica updated and available, nothing old left.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = desired(d);
    s.updated_replicas == Some(n)
        && s.replicas == Some(n)
        && s.available_replicas == Some(n)
        && s.observed_generation >= d.metadata.generation
}

/// The new status (upstream's calculateStatus and syncRolloutStatus). `created` names a new
/// ReplicaSet created in this pass.
pub fn compute(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    created: bool,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available: i32 = all
        .iter()
        .map(|rs| count(rs, |s| s.available_replicas))
        .sum();
    let total_spec: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let mut s = DeploymentStatus {
        replicas: Some(all.iter().map(|rs| count(rs, |s| Some(s.replicas))).sum()),
        updated_replicas: Some(
            new_rs
                .map(|rs| count(rs, |s| Some(s.replicas)))
                .unwrap_or(0),
        ),
        ready_replicas: Some(all.iter().map(|rs| count(rs, |s| s.ready_replicas)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        observed_generation: d.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    let mut conds = s.conditions.take().unwrap_or_default();
    let (_, max_unavailable) = surge_and_unavailable(d);
    if available >= desired(d) - max_unavailable {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        );
    }
    let rs_name = new_rs
        .and_then(|rs| rs.metadata.name.clone())
        .unwrap_or_default();
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let progressing = condition(&old, "Progressing").cloned();
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    if paused {
        set_condition(
            &mut conds,
            "Progressing",
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        );
    } else if progressing.as_ref().and_then(|c| c.reason.as_deref()) == Some(PAUSED) {
        set_condition(
            &mut conds,
            "Progressing",
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        );
    } else if new_rs.is_some() && is_complete(d, &s) {
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            NEW_RS_AVAILABLE,
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            now,
        );
    } else if created {
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            NEW_RS_CREATED,
            format!("Created new replica set \"{rs_name}\""),
            now,
        );
    } else if new_rs.is_some() && made_progress(&old, &s) {
        // Progress pushes the deadline back even when the message stays the same.
        if let Some(c) = conds
            .iter_mut()
            .find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(RS_UPDATED))
        {
            c.last_update_time = Some(Time(now));
        }
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            RS_UPDATED,
            format!("ReplicaSet \"{rs_name}\" is progressing."),
            now,
        );
    } else if let (Some(c), Some(secs)) = (progressing.as_ref(), deadline)
        && c.status == "True"
        && c.reason.as_deref() != Some(NEW_RS_AVAILABLE)
        && c.last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(secs.into()) < now)
    {
        set_condition(
            &mut conds,
            "Progressing",
            "False",
            DEADLINE_EXCEEDED,
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            now,
        );
    }
    s.conditions = Some(conds);
    s
}

fn made_progress(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    new.updated_replicas > old.updated_replicas
        || new.replicas < old.replicas
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

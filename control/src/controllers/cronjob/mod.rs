//! The CronJob controller: creates a Job `<cronjob>-<scheduled minutes since epoch>` for the
//! most recent missed schedule time (within startingDeadlineSeconds), honouring
//! concurrencyPolicy (Allow / Forbid / Replace) and suspend; keeps status.active,
//! lastScheduleTime and lastSuccessfulTime, prunes finished Jobs past the history limits, and
//! records Events as upstream's cronjob controller (v2) does. The clock is a parameter.

pub mod schedule;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use self::schedule::Schedule;
use super::common::{self, controller_ref_to, record};
use super::job::status::{COMPLETE, FAILED, true_condition};
use super::runtime::{Action, Controller, ObjectKey, controller_ref, owner_key};
use super::{ControllerError, not_found_ok};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, ListParams, Preconditions, Registry};

const COMPONENT: &str = "cronjob-controller";
/// The annotation with the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("cronjob", registry.clone());
    c.watches::<CronJob, _>(|cj| vec![ObjectKey::of(cj)]);
    c.watches::<Job, _>(|j| owner_key(&j.metadata, "CronJob").into_iter().collect());
    c.run(2, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key, jiff::Timestamp::now()).await }
    })
    .await;
}

/// How a child Job ended, if it did.
fn finished(job: &Job) -> Option<&'static str> {
    let st = job.status.as_ref()?;
    if true_condition(st, COMPLETE).is_some() {
        Some(COMPLETE)
    } else if true_condition(st, FAILED).is_some() {
        Some(FAILED)
    } else {
        None
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The Job name for a schedule time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: jiff::Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

type Events = Vec<(&'static str, &'static str, String)>;

/// One pass over one CronJob at time `now`.
pub async fn reconcile(
    registry: &Registry,
    key: &ObjectKey,
    now: jiff::Timestamp,
) -> Result<Action, ControllerError> {
    let Some(cj) = not_found_ok(registry.get::<CronJob>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if common::is_terminating(&cj.metadata) {
        return Ok(Action::AwaitChange);
    }
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = registry
        .list::<Job>(key.ns(), &ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let spec = cj.spec.clone().unwrap_or_default();
    let old = cj.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let mut events: Events = Vec::new();

    // The active list follows the children; finished ones leave it.
    let was_active: BTreeSet<String> = old
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect();
    let mut active = Vec::new();
    for j in &jobs {
        let name = j.metadata.name.clone().unwrap_or_default();
        match finished(j) {
            // An entry keeps the reference it was added with (no churn on every Job update).
            None if !common::is_terminating(&j.metadata) => active.push(
                old.active
                    .iter()
                    .flatten()
                    .find(|r| r.uid.is_some() && r.uid == j.metadata.uid)
                    .cloned()
                    .unwrap_or_else(|| job_ref(j)),
            ),
            None => {}
            Some(how) => {
                if was_active.contains(&name) {
                    let msg = format!("Saw completed job: {name}, status: {how}");
                    events.push(("Normal", "SawCompletedJob", msg));
                }
                let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                if how == COMPLETE
                    && done.as_ref().map(|t| t.0) > st.last_successful_time.as_ref().map(|t| t.0)
                {
                    st.last_successful_time = done;
                }
            }
        }
    }
    prune_history(registry, &cj, &jobs, &mut events).await?;

    let mut requeue = None;
    if spec.suspend != Some(true) {
        match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
            Ok(schedule) => {
                run_due(
                    registry,
                    &cj,
                    &schedule,
                    &jobs,
                    &mut active,
                    &mut st,
                    &mut events,
                    now,
                )
                .await?;
                requeue = schedule.next_after(now).map(|next| {
                    // A little past the minute, so the next pass finds it due.
                    let ms = next.duration_since(now).as_millis().max(0) as u64 + 100;
                    Duration::from_millis(ms)
                });
            }
            Err(e) => {
                let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
                events.push(("Warning", "UnparseableSchedule", msg));
            }
        }
    }
    st.active = (!active.is_empty()).then_some(active);
    write_status(registry, &cj, &old, st).await?;
    for (type_, reason, message) in events {
        record(registry, &cj, COMPONENT, type_, reason, message).await;
    }
    Ok(requeue.map_or(Action::AwaitChange, Action::Requeue))
}

/// Starts the Job for the most recent due schedule time, if any and if the policy allows.
#[allow(
    clippy::too_many_arguments,
    reason = "one reconcile's working state, passed down once"
)]
async fn run_due(
    registry: &Registry,
    cj: &CronJob,
    schedule: &Schedule,
    jobs: &[Job],
    active: &mut Vec<ObjectReference>,
    st: &mut CronJobStatus,
    events: &mut Events,
    now: jiff::Timestamp,
) -> Result<(), ControllerError> {
    let spec = cj.spec.clone().unwrap_or_default();
    let name = cj.metadata.name.clone().unwrap_or_default();
    let mut earliest = st
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    if let Some(sds) = spec.starting_deadline_seconds {
        let window = now - jiff::SignedDuration::from_secs(sds);
        earliest = earliest.max(window);
    }
    let missed = schedule.missed(earliest, now);
    if missed.count > 100 {
        events.push((
            "Warning",
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    let Some(scheduled) = missed.most_recent else {
        return Ok(());
    };
    let job_name = job_name(&name, scheduled);
    if jobs
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(&job_name))
    {
        st.last_schedule_time = Some(Time(scheduled));
        return Ok(());
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            events.push((
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return Ok(());
        }
        Some("Replace") => {
            for r in active.drain(..) {
                let n = r.name.clone().unwrap_or_default();
                delete_job(registry, cj.metadata.namespace.as_deref(), &n, r.uid).await?;
                events.push(("Normal", "SuccessfulDelete", format!("Deleted job {n}")));
            }
        }
        _ => {}
    }
    let job = job_for(cj, schedule, &job_name, scheduled);
    match registry.create(&job).await {
        Ok(created) => {
            tracing::info!(job = %job_name, "created job");
            events.push((
                "Normal",
                "SuccessfulCreate",
                format!("Created job {job_name}"),
            ));
            active.push(job_ref(&created));
        }
        // Made by an earlier pass whose status write was lost.
        Err(ApiError::AlreadyExists { .. }) => {}
        Err(e) => {
            let msg = format!("Error creating job: {e}");
            record(registry, cj, COMPONENT, "Warning", "FailedCreate", msg).await;
            return Err(e.into());
        }
    }
    st.last_schedule_time = Some(Time(scheduled));
    Ok(())
}

/// The Job of one run: the template's metadata and spec, the scheduled-time annotation, and
/// the CronJob as controller.
fn job_for(cj: &CronJob, schedule: &Schedule, name: &str, scheduled: jiff::Timestamp) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), schedule.format(scheduled));
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref_to(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit, oldest
/// first.
async fn prune_history(
    registry: &Registry,
    cj: &CronJob,
    jobs: &[Job],
    events: &mut Events,
) -> Result<(), ControllerError> {
    let spec = cj.spec.clone().unwrap_or_default();
    for (how, limit) in [
        (COMPLETE, spec.successful_jobs_history_limit.unwrap_or(3)),
        (FAILED, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| finished(j) == Some(how) && !common::is_terminating(&j.metadata))
            .collect();
        let started = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(j.metadata.creation_timestamp.as_ref())
                .map(|t| t.0)
        };
        done.sort_by_key(|j| started(j));
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for j in &done[..extra] {
            let n = j.metadata.name.clone().unwrap_or_default();
            delete_job(
                registry,
                j.metadata.namespace.as_deref(),
                &n,
                j.metadata.uid.clone(),
            )
            .await?;
            events.push(("Normal", "SuccessfulDelete", format!("Deleted job {n}")));
        }
    }
    Ok(())
}

async fn delete_job(
    registry: &Registry,
    ns: Option<&str>,
    name: &str,
    uid: Option<String>,
) -> Result<(), ControllerError> {
    let params = DeleteParams {
        preconditions: Preconditions {
            uid,
            resource_version: None,
        },
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    not_found_ok(registry.delete::<Job>(ns, name, &params).await)?;
    Ok(())
}

async fn write_status(
    registry: &Registry,
    cj: &CronJob,
    old: &CronJobStatus,
    st: CronJobStatus,
) -> Result<(), ControllerError> {
    if &st == old {
        return Ok(());
    }
    let mut cj = cj.clone();
    cj.status = Some(st);
    not_found_ok(registry.replace_status(&cj).await)?;
    Ok(())
}

#[cfg(test)]
mod tests;

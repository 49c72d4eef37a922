//! The Job controller: runs pods until `completions` succeed (NonIndexed or Indexed) with at
//! most `parallelism` at once; backoffLimit with exponential back-off, activeDeadlineSeconds,
//! suspend, podFailurePolicy, ttlSecondsAfterFinished; status, conditions (SuccessCriteriaMet /
//! FailureTarget, then Complete / Failed once the pods are gone) and Events as upstream.

pub mod indexes;
pub mod pods;
pub mod policy;
pub mod status;
pub mod sync;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::pods::PodSets;
use self::policy::Verdict;
use self::status::{Ending, set_condition, true_condition};
use super::common::{self, record};
use super::runtime::{Action, Controller, ObjectKey, owner_key};
use super::{ControllerError, claim, not_found_ok};
use crate::apiserver::registry::{DeleteParams, ListParams, Preconditions, Registry};

const COMPONENT: &str = "job-controller";

/// Tunables of the Job controller.
#[derive(Debug, Clone, Copy)]
pub struct JobConfig {
    /// The first back-off before replacing a failed pod (upstream: 10 s); it doubles per
    /// failure in a row.
    pub backoff_base: Duration,
    /// The longest back-off (upstream: 6 min).
    pub backoff_max: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(360),
        }
    }
}

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    run_with(registry, JobConfig::default()).await;
}

/// Runs the controller forever with `cfg`.
pub async fn run_with(registry: Registry, cfg: JobConfig) {
    let c = Controller::new("job", registry.clone());
    c.watches::<Job, _>(|j| vec![ObjectKey::of(j)]);
    c.watches::<Pod, _>(|p| owner_key(&p.metadata, "Job").into_iter().collect());
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &cfg, &key, jiff::Timestamp::now()).await }
    })
    .await;
}

/// One pass over one Job at time `now`.
pub async fn reconcile(
    registry: &Registry,
    cfg: &JobConfig,
    key: &ObjectKey,
    now: jiff::Timestamp,
) -> Result<Action, ControllerError> {
    let Some(job) = not_found_ok(registry.get::<Job>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if common::is_terminating(&job.metadata) {
        return Ok(Action::AwaitChange);
    }
    if status::is_finished(&job) {
        return expire(registry, &job, now).await;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let pods = registry
        .list::<Pod>(key.ns(), &ListParams::default())
        .await?
        .items;
    let sets = PodSets::sort(claim::claim(registry, &job, &selector, pods).await?);
    let old = job.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let suspended = spec.suspend == Some(true);

    // What the pods have achieved. Counts never go down when finished pods are removed.
    let mut fail_job = None;
    let mut counted_failed = Vec::new();
    for p in &sets.failed {
        match policy::judge(spec.pod_failure_policy.as_ref(), p) {
            Verdict::Count => counted_failed.push(p),
            Verdict::Ignore => {}
            Verdict::FailJob(m) => {
                fail_job.get_or_insert(m);
                counted_failed.push(p);
            }
        }
    }
    let succeeded = (sets.succeeded.len() as i32).max(old.succeeded.unwrap_or(0));
    let failed = (counted_failed.len() as i32).max(old.failed.unwrap_or(0));
    let mut completed = BTreeSet::new();
    if indexed {
        let limit = spec.completions.unwrap_or(0).max(0) as u32;
        completed = indexes::parse(old.completed_indexes.as_deref().unwrap_or_default());
        completed.extend(sets.succeeded.iter().filter_map(indexes::pod_index));
        completed.retain(|i| *i < limit);
        st.completed_indexes = Some(indexes::format(&completed));
    }
    st.succeeded = Some(succeeded);
    st.failed = Some(failed);
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let restarts = if on_failure {
        sets.active_restarts()
    } else {
        0
    };
    let failures = failed.max(0) as u32 + restarts;

    // Suspension and the start time (reset on resume, as upstream).
    let mut events: Vec<(&str, &str, String)> = Vec::new();
    if suspended {
        if set_condition(
            &mut st,
            status::SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            events.push(("Normal", "Suspended", "Job suspended".into()));
        }
    } else {
        if true_condition(&old, status::SUSPENDED).is_some() {
            set_condition(
                &mut st,
                status::SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            events.push(("Normal", "Resumed", "Job resumed".into()));
            st.start_time = Some(Time(now));
        }
        st.start_time.get_or_insert(Time(now));
    }
    let deadline = match (spec.active_deadline_seconds, &st.start_time) {
        (Some(secs), Some(start)) if !suspended => {
            Some(start.0 + jiff::SignedDuration::from_secs(secs))
        }
        _ => None,
    };

    let complete = match (indexed, spec.completions) {
        (true, c) => completed.len() as i64 >= i64::from(c.unwrap_or(0)),
        (false, Some(c)) => succeeded >= c,
        (false, None) => succeeded > 0 && sets.active.is_empty(),
    };
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0) as u32;
    let ending = Ending::decided(&old).or_else(|| {
        if let Some(m) = fail_job {
            Some(Ending::failure(status::POD_FAILURE_POLICY, &m))
        } else if failures > backoff_limit {
            Some(Ending::failure(
                status::BACKOFF_LIMIT_EXCEEDED,
                status::BACKOFF_MESSAGE,
            ))
        } else if deadline.is_some_and(|d| d <= now) {
            Some(Ending::failure(
                status::DEADLINE_EXCEEDED,
                status::DEADLINE_MESSAGE,
            ))
        } else if complete {
            Some(Ending::Success)
        } else {
            None
        }
    });

    let mut active = sets.active.len();
    let mut terminating = sets.terminating.len();
    let mut requeue = None;
    if ending.is_some() || suspended {
        for p in &sets.active {
            sync::delete_pod(registry, &job, p).await?;
        }
        terminating += active;
        active = 0;
    }
    if let Some(end) = &ending {
        end.mark_target(&mut st, now);
        if sets.active.is_empty() && sets.terminating.is_empty() {
            end.mark_final(&mut st, now);
            events.push(match end {
                Ending::Success => ("Normal", "Completed", "Job completed".into()),
                Ending::Failure { reason, message } => ("Warning", reason, message.clone()),
            });
        }
    } else if !suspended {
        let progress = sync::Progress {
            sets: &sets,
            counted_failed: &counted_failed,
            succeeded,
            completed: &completed,
        };
        let out = sync::manage(registry, cfg, &job, &progress, now).await?;
        active = (active + out.created).saturating_sub(out.deleted);
        terminating += out.deleted;
        requeue = out.requeue;
        if let Some(d) = deadline {
            let left = d.duration_since(now).as_millis().max(1) as u64;
            requeue = Some(requeue.map_or(Duration::from_millis(left), |r| {
                r.min(Duration::from_millis(left))
            }));
        }
    }
    st.active = Some(active as i32);
    st.ready = Some(if ending.is_some() {
        0
    } else {
        sets.ready() as i32
    });
    st.terminating = Some(terminating as i32);
    st.uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);

    let job = write_status(registry, job, old, st).await?;
    for (type_, reason, message) in events {
        record(registry, &job, COMPONENT, type_, reason, message).await;
    }
    if status::is_finished(&job) {
        return expire(registry, &job, now).await;
    }
    Ok(requeue.map_or(Action::AwaitChange, Action::Requeue))
}

async fn write_status(
    registry: &Registry,
    mut job: Job,
    old: JobStatus,
    st: JobStatus,
) -> Result<Job, ControllerError> {
    if st == old {
        return Ok(job);
    }
    job.status = Some(st);
    match not_found_ok(registry.replace_status(&job).await)? {
        Some(j) => Ok(j),
        None => Ok(job),
    }
}

/// ttlSecondsAfterFinished: deletes a finished Job (and, through the garbage collector, its
/// pods) once the time is up.
async fn expire(
    registry: &Registry,
    job: &Job,
    now: jiff::Timestamp,
) -> Result<Action, ControllerError> {
    let ttl = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished);
    let (Some(ttl), Some(done)) = (ttl, status::finished_at(job)) else {
        return Ok(Action::AwaitChange);
    };
    let at = done + jiff::SignedDuration::from_secs(ttl.into());
    if at > now {
        let left = at.duration_since(now).as_millis().max(1) as u64;
        return Ok(Action::Requeue(Duration::from_millis(left)));
    }
    let name = job.metadata.name.clone().unwrap_or_default();
    tracing::info!(job = %name, "deleting finished job (ttlSecondsAfterFinished)");
    let params = DeleteParams {
        preconditions: Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        },
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    not_found_ok(
        registry
            .delete::<Job>(job.metadata.namespace.as_deref(), &name, &params)
            .await,
    )?;
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests;

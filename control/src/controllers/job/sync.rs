//! Bringing a running Job's pods to what it wants: how many to create (NonIndexed) or which
//! indexes still need a pod (Indexed), the back-off after failures, and the pods to delete;
//! every create and delete is recorded as an Event.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::indexes::pod_index;
use super::pods::{PodSets, new_pod};
use super::{COMPONENT, JobConfig, policy};
use crate::apiserver::registry::Registry;
use crate::controllers::ControllerError;
use crate::controllers::replicaset::deletion_order;

/// What one pass changed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub created: usize,
    pub deleted: usize,
    /// Come back after this long (the back-off ends).
    pub requeue: Option<Duration>,
}

/// What the Job has achieved so far, as counted by the reconcile.
pub struct Progress<'a> {
    pub sets: &'a PodSets,
    /// Failed pods that count (the failure policy did not ignore them).
    pub counted_failed: &'a [&'a Pod],
    pub succeeded: i32,
    pub completed: &'a BTreeSet<u32>,
}

/// How long the Job must still wait before replacing failed pods: failures since the last
/// success back off exponentially from the newest of them.
pub fn backoff_remaining(
    cfg: &JobConfig,
    progress: &Progress<'_>,
    now: jiff::Timestamp,
) -> Option<Duration> {
    let last_success = progress
        .sets
        .succeeded
        .iter()
        .filter_map(policy::finish_time)
        .max();
    let recent: Vec<jiff::Timestamp> = progress
        .counted_failed
        .iter()
        .filter_map(|p| policy::finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = recent.iter().max()?;
    let wait = policy::backoff(recent.len() as u32, cfg.backoff_base, cfg.backoff_max);
    let until = last.checked_add(wait).ok()?;
    (until > now).then(|| {
        let d = until.duration_since(now);
        Duration::from_millis(d.as_millis().max(1) as u64)
    })
}

/// Creates and deletes pods of a running (not suspended, not ending) Job.
pub async fn manage(
    registry: &Registry,
    cfg: &JobConfig,
    job: &Job,
    progress: &Progress<'_>,
    now: jiff::Timestamp,
) -> Result<Outcome, ControllerError> {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let sets = progress.sets;
    // With podReplacementPolicy=Failed a terminating pod still holds its place.
    let waits_for_terminating = spec.pod_replacement_policy.as_deref() == Some("Failed");
    let held = if waits_for_terminating {
        sets.terminating.len()
    } else {
        0
    };
    let backoff = backoff_remaining(cfg, progress, now);
    let mut out = Outcome {
        requeue: backoff,
        ..Default::default()
    };
    let (victims, to_create): (Vec<&Pod>, Vec<Option<u32>>) = if spec.completion_mode.as_deref()
        == Some("Indexed")
    {
        let completions = spec.completions.unwrap_or(0).max(0) as u32;
        let mut keep: Vec<(u32, &Pod)> = Vec::new();
        let mut victims = Vec::new();
        let mut seen = BTreeSet::new();
        let mut active: Vec<&Pod> = sets.active.iter().collect();
        // Of duplicates, keep the best pod (ready, older).
        active.sort_by(|a, b| deletion_order(b, a));
        for p in active {
            match pod_index(p) {
                Some(i)
                    if i < completions && !progress.completed.contains(&i) && seen.insert(i) =>
                {
                    keep.push((i, p))
                }
                _ => victims.push(p),
            }
        }
        keep.sort_by_key(|(i, _)| *i);
        if keep.len() > parallelism {
            victims.extend(keep.drain(parallelism..).map(|(_, p)| p));
        }
        let mut busy: BTreeSet<u32> = keep.iter().map(|(i, _)| *i).collect();
        if waits_for_terminating {
            busy.extend(sets.terminating.iter().filter_map(pod_index));
        }
        let room = parallelism.saturating_sub(keep.len() + held);
        let pending = (0..completions)
            .filter(|i| !progress.completed.contains(i) && !busy.contains(i))
            .take(room)
            .map(Some)
            .collect();
        (victims, pending)
    } else {
        let active = sets.active.len();
        let want = match spec.completions {
            Some(c) => parallelism.min((c - progress.succeeded).max(0) as usize),
            // A work queue: once one pod succeeded, no new pods start.
            None if progress.succeeded > 0 => active,
            None => parallelism,
        };
        let mut victims: Vec<&Pod> = sets.active.iter().collect();
        victims.sort_by(|a, b| deletion_order(a, b));
        victims.truncate(active.saturating_sub(want));
        let create = want.saturating_sub(active + held);
        (victims, vec![None; create])
    };
    for p in &victims {
        delete_pod(registry, job, p).await?;
        out.deleted += 1;
    }
    if backoff.is_none() && !to_create.is_empty() {
        out.created = create_slow_start(registry, job, &to_create).await?;
    }
    Ok(out)
}

/// Creates pods in batches of 1, 2, 4, …; stops at the first batch with a failure.
async fn create_slow_start(
    registry: &Registry,
    job: &Job,
    indexes: &[Option<u32>],
) -> Result<usize, ControllerError> {
    let mut done = 0;
    let mut batch = 1;
    while done < indexes.len() {
        let n = batch.min(indexes.len() - done);
        let results = join_all(
            indexes[done..done + n]
                .iter()
                .map(|i| create_pod(registry, job, *i)),
        )
        .await;
        done += n;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        batch *= 2;
    }
    Ok(done)
}

async fn create_pod(
    registry: &Registry,
    job: &Job,
    index: Option<u32>,
) -> Result<(), ControllerError> {
    crate::controllers::common::create_owned_pod(registry, job, COMPONENT, &new_pod(job, index))
        .await
        .map(drop)
}

/// Deletes a pod of the Job (by uid, so a same-named successor is safe) and records it.
pub async fn delete_pod(registry: &Registry, job: &Job, pod: &Pod) -> Result<(), ControllerError> {
    crate::controllers::common::delete_owned_pod(registry, job, COMPONENT, pod, None).await
}

//! The Deployment controller: one ReplicaSet per pod template (`<name>-<pod-template-hash>`),
//! RollingUpdate within maxSurge/maxUnavailable or Recreate, proportional scaling during a
//! rollout, revisions, pause, history cleanup, and status with Available/Progressing.

pub mod hash;
pub mod rolling;
mod sets;
pub mod status;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::json;

use super::common::is_terminating;
use super::runtime::{Action, Controller, ObjectKey, owner_key};
use super::{ControllerError, claim, not_found_ok};
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use hash::equal_ignoring_hash;
use rolling::{desired, is_recreate, spec_replicas};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const COMPONENT: &str = "deployment-controller";

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("deployment", registry.clone());
    c.watches::<Deployment, _>(|d| vec![ObjectKey::of(d)]);
    c.watches::<ReplicaSet, _>(|rs| owner_key(&rs.metadata, "Deployment").into_iter().collect());
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key).await }
    })
    .await;
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// One pass over one Deployment.
struct Sync<'a> {
    registry: &'a Registry,
    d: Deployment,
}

/// Brings one Deployment's ReplicaSets and status in line with its spec.
pub async fn reconcile(registry: &Registry, key: &ObjectKey) -> Result<Action, ControllerError> {
    let Some(d) = not_found_ok(registry.get::<Deployment>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if is_terminating(&d.metadata) {
        return Ok(Action::AwaitChange);
    }
    let selector = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let rss = registry
        .list::<ReplicaSet>(key.ns(), &ListParams::default())
        .await?
        .items;
    let mut rss = claim::claim(registry, &d, &selector, rss).await?;
    rss.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.metadata.name.clone(),
        )
    });
    Sync { registry, d }.run(rss).await
}

impl Sync<'_> {
    fn ns(&self) -> Option<&str> {
        self.d.metadata.namespace.as_deref()
    }

    fn name(&self) -> &str {
        self.d.metadata.name.as_deref().unwrap_or_default()
    }

    async fn run(&self, rss: Vec<ReplicaSet>) -> Result<Action, ControllerError> {
        let tmpl = template(&self.d);
        let new_idx = rss.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignoring_hash(t, &tmpl))
        });
        let mut new_rs = new_idx.map(|i| rss[i].clone());
        let old: Vec<ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, rs)| rs.clone())
            .collect();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let mut created = false;
        let changed = if paused {
            self.scale(new_rs.as_ref(), &old).await?
        } else if is_recreate(&self.d) {
            let old_active: Vec<&ReplicaSet> =
                old.iter().filter(|rs| spec_replicas(rs) > 0).collect();
            if !old_active.is_empty() {
                for rs in old_active {
                    self.scale_rs(rs, 0).await?;
                }
                true
            } else if self.old_pods_running(&old).await? {
                true
            } else {
                if new_rs.is_none() {
                    new_rs = Some(self.create_new_rs(&old, desired(&self.d)).await?);
                    created = true;
                }
                let rs = new_rs.as_ref().expect("new ReplicaSet");
                self.sync_revision(rs, &old).await?;
                if spec_replicas(rs) != desired(&self.d) {
                    self.scale_rs(rs, desired(&self.d)).await?;
                    true
                } else {
                    created
                }
            }
        } else {
            if new_rs.is_none() {
                let all: Vec<&ReplicaSet> = old.iter().collect();
                let want = rolling::new_rs_replicas(&self.d, &all, &ReplicaSet::default());
                new_rs = Some(self.create_new_rs(&old, want).await?);
                created = true;
            }
            let rs = new_rs.as_ref().expect("new ReplicaSet");
            self.sync_revision(rs, &old).await?;
            if created {
                true
            } else if self.is_scaling_event(rs, &old) {
                self.scale(Some(rs), &old).await?
            } else {
                self.roll(rs, &old).await?
            }
        };
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        let now = jiff::Timestamp::now();
        let status = status::compute(&self.d, &all, new_rs.as_ref(), created, now);
        if !changed && !paused && status::is_complete(&self.d, &status) {
            self.cleanup(&old).await?;
        }
        if self.d.status.as_ref() != Some(&status) {
            let patch = json!({"status": status});
            not_found_ok(
                self.registry
                    .patch_status::<Deployment>(self.ns(), self.name(), PatchType::Merge, &patch)
                    .await,
            )?;
        }
        // Come back to notice a missed progress deadline.
        let waiting = status::condition(&status, "Progressing").is_some_and(|c| {
            c.status == "True" && c.reason.as_deref() != Some(status::NEW_RS_AVAILABLE)
        });
        match self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
        {
            Some(secs) if waiting && !paused => {
                Ok(Action::Requeue(Duration::from_secs(secs.max(1) as u64)))
            }
            _ => Ok(Action::AwaitChange),
        }
    }

    /// Whether some active ReplicaSet was sized for another `spec.replicas`.
    fn is_scaling_event(&self, new_rs: &ReplicaSet, old: &[ReplicaSet]) -> bool {
        let want = desired(&self.d).to_string();
        old.iter()
            .chain(std::iter::once(new_rs))
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| {
                rs.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DESIRED_REPLICAS))
                    .is_some_and(|v| *v != want)
            })
    }

    /// A rolling-update step: grow the new set within maxSurge, else shrink old ones within
    /// maxUnavailable.
    async fn roll(&self, new_rs: &ReplicaSet, old: &[ReplicaSet]) -> Result<bool, ControllerError> {
        let want = desired(&self.d);
        let have = spec_replicas(new_rs);
        if have > want {
            self.scale_rs(new_rs, want).await?;
            return Ok(true);
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(new_rs)).collect();
        let grow = rolling::new_rs_replicas(&self.d, &all, new_rs);
        if grow != have {
            self.scale_rs(new_rs, grow).await?;
            return Ok(true);
        }
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        let counts = rolling::scale_down_old(&self.d, &old_refs, new_rs);
        let mut changed = false;
        for (rs, count) in old.iter().zip(counts) {
            if count != spec_replicas(rs) {
                self.scale_rs(rs, count).await?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Applies a change of `spec.replicas` to the active sets (all to the new set when it is
    /// the only one; proportionally during a rollout).
    async fn scale(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<bool, ControllerError> {
        let want = desired(&self.d);
        let active: Vec<&ReplicaSet> = old
            .iter()
            .chain(new_rs)
            .filter(|rs| spec_replicas(rs) > 0)
            .collect();
        let target: Vec<(&ReplicaSet, i32)> = match (active.len(), new_rs) {
            (0, Some(rs)) => vec![(rs, want)],
            (0, None) => Vec::new(),
            (1, _) => vec![(active[0], want)],
            _ => {
                let (surge, _) = rolling::surge_and_unavailable(&self.d);
                let sizes: Vec<i32> = active.iter().map(|rs| spec_replicas(rs)).collect();
                let counts = rolling::proportional(&sizes, want + surge);
                active.into_iter().zip(counts).collect()
            }
        };
        let mut changed = false;
        for (rs, count) in target {
            let stale = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                != Some(&want.to_string());
            if count != spec_replicas(rs) || stale {
                self.scale_rs(rs, count).await?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests;

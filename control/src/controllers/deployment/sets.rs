//! The Deployment controller's operations on its ReplicaSets: scaling, creating the new set,
//! revisions, waiting for old pods (Recreate) and history cleanup.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::hash::{HASH_LABEL, equal_ignoring_hash, template_hash};
use super::rolling::{self, desired, spec_replicas};
use super::{CHANGE_CAUSE, COMPONENT, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, Sync, revision};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, ListParams, PatchType};
use crate::controllers::common::{controller_ref_to, record};
use crate::controllers::runtime::controller_ref;
use crate::controllers::{ControllerError, not_found_ok};

impl Sync<'_> {
    /// Sets a set's replicas (and the desired/max annotations); records ScalingReplicaSet.
    pub(super) async fn scale_rs(
        &self,
        rs: &ReplicaSet,
        count: i32,
    ) -> Result<(), ControllerError> {
        let from = spec_replicas(rs);
        let (surge, _) = rolling::surge_and_unavailable(&self.d);
        let want = desired(&self.d);
        let patch = json!({
            "metadata": {"annotations": {
                DESIRED_REPLICAS: want.to_string(),
                MAX_REPLICAS: (want + surge).to_string(),
            }},
            "spec": {"replicas": count},
        });
        let name = rs.metadata.name.clone().unwrap_or_default();
        not_found_ok(
            self.registry
                .patch::<ReplicaSet>(self.ns(), &name, PatchType::Merge, &patch)
                .await,
        )?;
        if from != count {
            let verb = if count > from { "up" } else { "down" };
            tracing::info!(replicaset = %name, from, to = count, "scaled {verb}");
            record(
                self.registry,
                &self.d,
                COMPONENT,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {verb} replica set {name} from {from} to {count}"),
            )
            .await;
        }
        Ok(())
    }

    pub(super) fn next_revision(old: &[ReplicaSet]) -> i64 {
        old.iter().map(revision).max().unwrap_or(0) + 1
    }

    /// Gives the new set the newest revision (after an undo it is an old one) and mirrors it
    /// on the Deployment.
    pub(super) async fn sync_revision(
        &self,
        new_rs: &ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<(), ControllerError> {
        let current = revision(new_rs);
        let newest = old.iter().map(revision).max().unwrap_or(0);
        let rev = if current > newest {
            current
        } else {
            newest + 1
        };
        if rev != current {
            let name = new_rs.metadata.name.clone().unwrap_or_default();
            let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
            not_found_ok(
                self.registry
                    .patch::<ReplicaSet>(self.ns(), &name, PatchType::Merge, &patch)
                    .await,
            )?;
        }
        let on_d = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if on_d != Some(&rev.to_string()) {
            let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
            not_found_ok(
                self.registry
                    .patch::<Deployment>(self.ns(), self.name(), PatchType::Merge, &patch)
                    .await,
            )?;
        }
        Ok(())
    }

    /// Creates `<deployment>-<hash>` with `replicas`; on a name collision with a different
    /// template bumps `status.collisionCount` and fails (the retry picks a new name).
    pub(super) async fn create_new_rs(
        &self,
        old: &[ReplicaSet],
        replicas: i32,
    ) -> Result<ReplicaSet, ControllerError> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut tmpl = spec.template.clone();
        tmpl.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let (surge, _) = rolling::surge_and_unavailable(&self.d);
        let want = desired(&self.d);
        let mut annotations = std::collections::BTreeMap::from([
            (REVISION.to_string(), Self::next_revision(old).to_string()),
            (DESIRED_REPLICAS.to_string(), want.to_string()),
            (MAX_REPLICAS.to_string(), (want + surge).to_string()),
        ]);
        if let Some(cause) = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE))
        {
            annotations.insert(CHANGE_CAUSE.into(), cause.clone());
        }
        let name = format!("{}-{hash}", self.name());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: tmpl.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref_to(&self.d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(tmpl),
            }),
            status: None,
        };
        match self.registry.create(&rs).await {
            Ok(rs) => {
                tracing::info!(replicaset = %name, replicas, "created new replica set");
                record(
                    self.registry,
                    &self.d,
                    COMPONENT,
                    "Normal",
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name} from 0 to {replicas}"),
                )
                .await;
                Ok(rs)
            }
            Err(ApiError::AlreadyExists { .. }) => {
                let existing = self.registry.get::<ReplicaSet>(self.ns(), &name).await?;
                let ours = controller_ref(&existing.metadata).map(|r| r.uid.as_str())
                    == self.d.metadata.uid.as_deref();
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignoring_hash(t, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                let next = collisions.unwrap_or(0) + 1;
                let patch = json!({"status": {"collisionCount": next}});
                self.registry
                    .patch_status::<Deployment>(self.ns(), self.name(), PatchType::Merge, &patch)
                    .await?;
                Err(ControllerError::Invalid(format!(
                    "replica set {name} exists with another template; collisionCount is now {next}"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether pods of the old sets still exist (Recreate waits for them to be gone).
    pub(super) async fn old_pods_running(
        &self,
        old: &[ReplicaSet],
    ) -> Result<bool, ControllerError> {
        let uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let pods = self
            .registry
            .list::<Pod>(self.ns(), &ListParams::default())
            .await?
            .items;
        Ok(pods.iter().any(|p| {
            controller_ref(&p.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()))
                && !matches!(crate::controllers::common::phase(p), "Succeeded" | "Failed")
        }))
    }

    /// Deletes the oldest empty old sets beyond `revisionHistoryLimit`.
    pub(super) async fn cleanup(&self, old: &[ReplicaSet]) -> Result<(), ControllerError> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut empty: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| {
                spec_replicas(rs) == 0
                    && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                    && rs.status.as_ref().and_then(|s| s.observed_generation)
                        >= rs.metadata.generation
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if empty.len() <= limit {
            return Ok(());
        }
        empty.sort_by_key(|rs| revision(rs));
        for rs in &empty[..empty.len() - limit] {
            let name = rs.metadata.name.clone().unwrap_or_default();
            tracing::info!(replicaset = %name, "deleting old replica set beyond the history limit");
            let params = DeleteParams {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            };
            not_found_ok(
                self.registry
                    .delete::<ReplicaSet>(self.ns(), &name, &params)
                    .await,
            )?;
        }
        Ok(())
    }
}

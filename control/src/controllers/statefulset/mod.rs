//! The StatefulSet controller: stable pod names `<set>-<ordinal>` with hostname/subdomain,
//! OrderedReady or Parallel management, rolling update from the highest ordinal down to
//! `partition` or OnDelete, revision history in ControllerRevisions, failed pods recreated
//! under the same name, status and Events as kube-controller-manager reports them.
//! volumeClaimTemplates are refused at run time (skiff has no PersistentVolumeClaims yet).

pub mod plan;
pub mod pods;
pub mod status;

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde_json::json;

use super::common::{is_terminating, record};
use super::daemonset::history::{self, History};
use super::runtime::{Action, Controller, ObjectKey, owner_key};
use super::{ControllerError, claim, not_found_ok};
use crate::apiserver::registry::{DeleteParams, ListParams, PatchType, Preconditions, Registry};
use plan::{Shape, Step};
use pods::{POD_INDEX_LABEL, POD_NAME_LABEL, is_finished, ordinal, running_and_available};

const COMPONENT: &str = "statefulset-controller";

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("statefulset", registry.clone());
    c.watches::<StatefulSet, _>(|s| vec![ObjectKey::of(s)]);
    c.watches::<Pod, _>(|p| owner_key(&p.metadata, "StatefulSet").into_iter().collect());
    c.watches::<ControllerRevision, _>(|r| {
        owner_key(&r.metadata, "StatefulSet").into_iter().collect()
    });
    c.run(4, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key).await }
    })
    .await;
}

/// One pass over one StatefulSet.
struct Sync<'a> {
    registry: &'a Registry,
    set: StatefulSet,
    history: History,
    current: (String, PodTemplateSpec),
    update: (String, PodTemplateSpec),
}

/// Brings one StatefulSet's pods, revisions and status in line with its spec.
pub async fn reconcile(registry: &Registry, key: &ObjectKey) -> Result<Action, ControllerError> {
    let Some(set) = not_found_ok(registry.get::<StatefulSet>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if is_terminating(&set.metadata) {
        return Ok(Action::AwaitChange);
    }
    let spec = set.spec.clone().unwrap_or_default();
    let all = registry
        .list::<Pod>(key.ns(), &ListParams::default())
        .await?
        .items;
    let claimed = claim::claim(registry, &set, &spec.selector, all).await?;
    let members: Vec<Pod> = claimed
        .into_iter()
        .filter(|p| ordinal(&set, p).is_some())
        .collect();
    let collisions = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let history = history::sync(registry, &set, &spec.selector, &spec.template, collisions).await?;
    let update_name = history.current.metadata.name.clone().unwrap_or_default();
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|name| history.by_name(name))
        .and_then(|r| Some((r.metadata.name.clone()?, history::template_of(r)?)))
        .unwrap_or_else(|| (update_name.clone(), spec.template.clone()));
    let sync = Sync {
        registry,
        set,
        current,
        update: (update_name, spec.template.clone()),
        history,
    };
    sync.run(members).await
}

impl Sync<'_> {
    fn name(&self) -> &str {
        pods::set_name(&self.set)
    }

    async fn run(&self, members: Vec<Pod>) -> Result<Action, ControllerError> {
        let now = jiff::Timestamp::now();
        let spec = self.set.spec.clone().unwrap_or_default();
        let claims = spec.volume_claim_templates.unwrap_or_default();
        let result = if !claims.is_empty() {
            self.refuse_claims().await;
            Ok(())
        } else {
            let steps = plan::plan(&self.set, &members, &self.update.0, now);
            self.apply(steps).await
        };
        let mut live: HashSet<String> = members
            .iter()
            .filter_map(|p| pods::revision(p).map(str::to_string))
            .collect();
        live.insert(self.current.0.clone());
        live.insert(self.update.0.clone());
        let limit = spec.revision_history_limit.unwrap_or(10);
        history::cleanup(self.registry, &self.history, &live, limit).await?;
        let status = status::compute(
            &self.set,
            &members,
            &self.current.0,
            &self.update.0,
            self.history.collision_count,
            now,
        );
        if self.set.status.as_ref() != Some(&status) {
            not_found_ok(
                self.registry
                    .patch_status::<StatefulSet>(
                        self.set.metadata.namespace.as_deref(),
                        self.name(),
                        PatchType::Merge,
                        &json!({"status": status}),
                    )
                    .await,
            )?;
        }
        result?;
        let min_ready = Shape::of(&self.set).min_ready;
        if min_ready > 0
            && members
                .iter()
                .any(|p| pods::running_and_ready(p) && !running_and_available(p, min_ready, now))
        {
            return Ok(Action::Requeue(Duration::from_secs(min_ready as u64)));
        }
        Ok(Action::AwaitChange)
    }

    /// One Warning per generation: the pods would run without their storage.
    async fn refuse_claims(&self) {
        let observed = self.set.status.as_ref().and_then(|s| s.observed_generation);
        if observed.is_some() && observed == self.set.metadata.generation {
            return;
        }
        let pod = pods::pod_name(&self.set, Shape::of(&self.set).start);
        record(
            self.registry,
            &self.set,
            COMPONENT,
            "Warning",
            "FailedCreate",
            format!(
                "create Pod {pod} in StatefulSet {} failed error: volumeClaimTemplates: \
                 persistent volume claims are not supported",
                self.name()
            ),
        )
        .await;
    }

    /// Applies the steps, creations in slow-start batches of 1, 2, 4, …
    async fn apply(&self, steps: Vec<Step>) -> Result<(), ControllerError> {
        let mut done = 0;
        let mut batch = 1;
        while done < steps.len() {
            let chunk = &steps[done..(done + batch).min(steps.len())];
            let results = join_all(chunk.iter().map(|s| self.step(s))).await;
            done += chunk.len();
            results.into_iter().collect::<Result<(), _>>()?;
            batch *= 2;
        }
        Ok(())
    }

    async fn step(&self, step: &Step) -> Result<(), ControllerError> {
        match step {
            Step::Create { ordinal, update } => {
                let (rev, template) = if *update { &self.update } else { &self.current };
                let pod = pods::new_pod(&self.set, template, *ordinal, rev);
                let name = pod.metadata.name.clone().unwrap_or_default();
                let result = self.registry.create(&pod).await;
                self.event("create", &name, result.as_ref().err()).await;
                result?;
                tracing::info!(pod = %name, revision = %rev, "created pod");
            }
            Step::Delete { pod, why } => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                tracing::info!(pod = %name, ?why, "deleting pod");
                let params = DeleteParams {
                    preconditions: Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    },
                    // A finished pod has nothing left to stop (the API server's rule upstream).
                    grace_period_seconds: is_finished(pod).then_some(0),
                    ..Default::default()
                };
                let ns = pod.metadata.namespace.as_deref();
                let result = not_found_ok(self.registry.delete::<Pod>(ns, &name, &params).await);
                let err = result.as_ref().err().map(ToString::to_string);
                self.event_msg("delete", &name, err).await;
                result?;
            }
            Step::Relabel(pod) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let index = ordinal(&self.set, pod).unwrap_or_default().to_string();
                let patch = json!({"metadata": {"labels": {
                    POD_NAME_LABEL: name,
                    POD_INDEX_LABEL: index,
                }}});
                let ns = pod.metadata.namespace.as_deref();
                let result = not_found_ok(
                    self.registry
                        .patch::<Pod>(ns, &name, PatchType::Merge, &patch)
                        .await,
                );
                let err = result.as_ref().err().map(ToString::to_string);
                self.event_msg("update", &name, err).await;
                result?;
            }
        }
        Ok(())
    }

    async fn event(&self, verb: &str, pod: &str, err: Option<&crate::apiserver::error::ApiError>) {
        self.event_msg(verb, pod, err.map(ToString::to_string))
            .await;
    }

    /// Upstream's recordPodEvent: `create Pod web-0 in StatefulSet web successful`.
    async fn event_msg(&self, verb: &str, pod: &str, err: Option<String>) {
        let mut cap = verb.to_string();
        cap[..1].make_ascii_uppercase();
        let (type_, reason, message) = match err {
            None => (
                "Normal",
                format!("Successful{cap}"),
                format!("{verb} Pod {pod} in StatefulSet {} successful", self.name()),
            ),
            Some(e) => (
                "Warning",
                format!("Failed{cap}"),
                format!(
                    "{verb} Pod {pod} in StatefulSet {} failed error: {e}",
                    self.name()
                ),
            ),
        };
        record(self.registry, &self.set, COMPONENT, type_, &reason, message).await;
    }
}

#[cfg(test)]
mod tests;

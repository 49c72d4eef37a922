//! The garbage collector (basics): a dependent whose owners are all gone is deleted
//! (background propagation); one with some owners gone loses those references; an owner being
//! deleted with `propagationPolicy=Orphan` (the registry gives it the `orphan` finalizer) has
//! its references removed from its dependents, then the finalizer.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use super::runtime::{Action, Controller, Event, Object, ObjectKey, Reader};
use super::{ControllerError, not_found_ok};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, PatchType, Preconditions, Registry};
use crate::apiserver::resources::{self, ResourceDef};

/// The finalizer that asks for dependents to be orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Runs the collector forever. Dependents: pods (of ReplicaSets, Jobs, DaemonSets and
/// StatefulSets), ReplicaSets (of Deployments), Jobs (of CronJobs), ControllerRevisions (of
/// DaemonSets and StatefulSets); each owner kind orphans its dependents on request.
pub async fn run(registry: Registry) {
    tokio::spawn(run_dependents::<Pod>(
        registry.clone(),
        &["ReplicaSet", "Job", "DaemonSet", "StatefulSet"],
    ));
    tokio::spawn(run_dependents::<ControllerRevision>(
        registry.clone(),
        &["DaemonSet", "StatefulSet"],
    ));
    tokio::spawn(run_orphaner::<DaemonSet>(registry.clone(), |c| {
        vec![releaser::<Pod>(c), releaser::<ControllerRevision>(c)]
    }));
    tokio::spawn(run_orphaner::<StatefulSet>(registry.clone(), |c| {
        vec![releaser::<Pod>(c), releaser::<ControllerRevision>(c)]
    }));
    tokio::spawn(run_dependents::<ReplicaSet>(
        registry.clone(),
        &["Deployment"],
    ));
    tokio::spawn(run_dependents::<Job>(registry.clone(), &["CronJob"]));
    tokio::spawn(run_orphaner::<ReplicaSet>(registry.clone(), |c| {
        vec![releaser::<Pod>(c)]
    }));
    tokio::spawn(run_orphaner::<Job>(registry.clone(), |c| {
        vec![releaser::<Pod>(c)]
    }));
    tokio::spawn(run_orphaner::<CronJob>(registry.clone(), |c| {
        vec![releaser::<Job>(c)]
    }));
    run_orphaner::<Deployment>(registry, |c| vec![releaser::<ReplicaSet>(c)]).await;
}

fn has_refs(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|r| !r.is_empty())
}

fn dependents_of<K: Object>(deps: &Reader<K>, owner_uid: &str) -> Vec<ObjectKey> {
    deps.list()
        .iter()
        .filter(|d| {
            d.metadata()
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|r| r.uid == owner_uid)
        })
        .map(|d| ObjectKey::of(d.as_ref()))
        .collect()
}

/// Watches dependents of kind `K`; an owner's deletion wakes its dependents.
async fn run_dependents<K: Object>(registry: Registry, owner_kinds: &'static [&'static str]) {
    let c = Controller::new("garbagecollector", registry.clone());
    let deps = c.watches::<K, _>(|k| {
        has_refs(k.metadata())
            .then(|| ObjectKey::of(k))
            .into_iter()
            .collect()
    });
    for kind in owner_kinds {
        match *kind {
            "ReplicaSet" => wake_on_delete::<ReplicaSet, K>(&c, deps.clone()),
            "Deployment" => wake_on_delete::<Deployment, K>(&c, deps.clone()),
            "Job" => wake_on_delete::<Job, K>(&c, deps.clone()),
            "DaemonSet" => wake_on_delete::<DaemonSet, K>(&c, deps.clone()),
            "StatefulSet" => wake_on_delete::<StatefulSet, K>(&c, deps.clone()),
            "CronJob" => wake_on_delete::<CronJob, K>(&c, deps.clone()),
            _ => {}
        }
    }
    c.run(2, move |key| {
        let registry = registry.clone();
        async move { reconcile_dependent::<K>(&registry, &key).await }
    })
    .await;
}

fn wake_on_delete<O: Object, K: Object>(c: &Controller, deps: Reader<K>) {
    c.watches_events::<O, _>(move |ev| match ev {
        Event::Delete(o) => dependents_of(&deps, o.metadata().uid.as_deref().unwrap_or_default()),
        _ => Vec::new(),
    });
}

/// The stored definition of the kind an ownerReference names.
fn owner_def(r: &OwnerReference) -> Option<&'static ResourceDef> {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    resources::all()
        .into_iter()
        .find(|d| d.group == group && d.version == version && d.kind == r.kind)
}

/// Whether the owner `r` names still exists (same uid).
async fn owner_exists(
    registry: &Registry,
    namespace: Option<&str>,
    r: &OwnerReference,
) -> Result<bool, ControllerError> {
    let Some(def) = owner_def(r) else {
        // An unknown kind: never collect on its account.
        return Ok(true);
    };
    let ns = if def.namespaced { namespace } else { None };
    match registry.get_json(def, ns, &r.name).await {
        Ok(owner) => Ok(owner["metadata"]["uid"].as_str() == Some(r.uid.as_str())),
        Err(ApiError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes dependent `key` when all its owners are gone; drops references to gone owners.
pub async fn reconcile_dependent<K: Object>(
    registry: &Registry,
    key: &ObjectKey,
) -> Result<Action, ControllerError> {
    let Some(dep) = not_found_ok(registry.get::<K>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    let meta = dep.metadata();
    if meta.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let refs = meta.owner_references.clone().unwrap_or_default();
    if refs.is_empty() {
        return Ok(Action::AwaitChange);
    }
    let mut dangling = HashSet::new();
    for r in &refs {
        if !owner_exists(registry, key.ns(), r).await? {
            dangling.insert(r.uid.clone());
        }
    }
    if dangling.is_empty() {
        return Ok(Action::AwaitChange);
    }
    if dangling.len() == refs.len() {
        tracing::info!(kind = K::KIND, "owners gone; deleting dependent");
        let params = DeleteParams {
            preconditions: Preconditions {
                uid: meta.uid.clone(),
                resource_version: None,
            },
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        not_found_ok(registry.delete::<K>(key.ns(), &key.name, &params).await)?;
    } else {
        let keep: Vec<&OwnerReference> =
            refs.iter().filter(|r| !dangling.contains(&r.uid)).collect();
        let patch = json!({"metadata": {"ownerReferences": keep, "resourceVersion": meta.resource_version}});
        not_found_ok(
            registry
                .patch::<K>(key.ns(), &key.name, PatchType::Merge, &patch)
                .await,
        )?;
    }
    Ok(Action::AwaitChange)
}

/// Releases an owner's dependents of one kind (removes the owner's references from them).
type Release =
    Arc<dyn Fn(Registry, String) -> BoxFuture<'static, Result<(), ControllerError>> + Send + Sync>;

/// A [`Release`] for dependents of kind `K`, over a cache of them kept by `c`.
fn releaser<K: Object>(c: &Controller) -> Release {
    let deps = c.watches::<K, _>(|_| Vec::new());
    Arc::new(move |registry, uid| {
        let deps = deps.clone();
        Box::pin(async move { release::<K>(&registry, &deps, &uid).await })
    })
}

/// Watches owners of kind `O`; one deleted with the orphan finalizer has its dependents (of
/// every kind `dependents` names) released, then the finalizer removed.
async fn run_orphaner<O: Object>(registry: Registry, dependents: fn(&Controller) -> Vec<Release>) {
    let c = Controller::new("garbagecollector-orphan", registry.clone());
    let releases = Arc::new(dependents(&c));
    c.watches::<O, _>(|o| {
        let m = o.metadata();
        (m.deletion_timestamp.is_some()
            && m.finalizers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|f| f == ORPHAN_FINALIZER))
        .then(|| ObjectKey::of(o))
        .into_iter()
        .collect()
    });
    c.run(2, move |key| {
        let (registry, releases) = (registry.clone(), releases.clone());
        async move { orphan::<O>(&registry, &releases, &key).await }
    })
    .await;
}

async fn orphan<O: Object>(
    registry: &Registry,
    releases: &[Release],
    key: &ObjectKey,
) -> Result<Action, ControllerError> {
    let Some(owner) = not_found_ok(registry.get::<O>(key.ns(), &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    let meta = owner.metadata();
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    if meta.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        return Ok(Action::AwaitChange);
    }
    let uid = meta.uid.clone().unwrap_or_default();
    for release in releases {
        release(registry.clone(), uid.clone()).await?;
    }
    let rest: Vec<Value> = finalizers
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER)
        .map(|f| json!(f))
        .collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": meta.resource_version}});
    not_found_ok(
        registry
            .patch::<O>(key.ns(), &key.name, PatchType::Merge, &patch)
            .await,
    )?;
    Ok(Action::AwaitChange)
}

/// Removes references to owner `uid` from its dependents of kind `K`.
async fn release<K: Object>(
    registry: &Registry,
    deps: &Reader<K>,
    uid: &str,
) -> Result<(), ControllerError> {
    deps.wait_ready().await;
    for dep_key in dependents_of(deps, uid) {
        let Some(dep) = not_found_ok(registry.get::<K>(dep_key.ns(), &dep_key.name).await)? else {
            continue;
        };
        let d = dep.metadata();
        let keep: Vec<OwnerReference> = d
            .owner_references
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.uid != uid)
            .collect();
        let patch =
            json!({"metadata": {"ownerReferences": keep, "resourceVersion": d.resource_version}});
        not_found_ok(
            registry
                .patch::<K>(dep_key.ns(), &dep_key.name, PatchType::Merge, &patch)
                .await,
        )?;
        tracing::info!(dependent = %dep_key, "orphaned");
    }
    Ok(())
}

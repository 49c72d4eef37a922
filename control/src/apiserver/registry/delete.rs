//! Deletion: preconditions, finalizers, graceful pod deletion (a bound pod is marked with
//! `deletionTimestamp` and removed once its node has stopped it), namespaces and collections.

use serde_json::{Value, json};

use super::{
    ListParams, RETRIES, Registry, SYSTEM_NAMESPACES, map_store, object, resource, resources,
};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;
use crate::store::{Revision, StoreError};

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Options of a delete (from query parameters or a `DeleteOptions` body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    pub preconditions: Preconditions,
    /// `Orphan` gives the object the `orphan` finalizer (the garbage collector removes the
    /// dependents' references, then the finalizer); `Background` (and, for now, `Foreground`)
    /// removes the object and leaves its dependents to the garbage collector.
    pub propagation_policy: Option<String>,
    pub dry_run: bool,
}

fn check_preconditions(
    def: &ResourceDef,
    obj: &Value,
    pre: &Preconditions,
) -> Result<(), ApiError> {
    let name = object::name(obj);
    if let Some(uid) = pre.uid.as_deref()
        && uid != object::uid(obj)
    {
        return Err(ApiError::conflict_with(
            def.group,
            def.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::uid(obj)
            ),
        ));
    }
    if let Some(rv) = pre.resource_version.as_deref() {
        let actual = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if rv != actual {
            return Err(ApiError::conflict_with(
                def.group,
                def.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

enum Plan {
    /// Remove the key now.
    Remove,
    /// Store this (marked) object instead.
    Mark(Value),
    /// Nothing to change (already terminating).
    Keep,
}

fn plan(def: &ResourceDef, obj: &Value, params: &DeleteParams) -> Plan {
    let now = jiff::Timestamp::now();
    let terminating = object::is_terminating(obj);
    if def.plural == "pods" {
        let bound = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let grace = params
            .grace_period_seconds
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        if grace == 0 || !bound {
            return if object::has_finalizers(obj) {
                mark(obj, now, 0)
            } else {
                Plan::Remove
            };
        }
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if terminating && current.is_some_and(|c| c <= grace) {
            return Plan::Keep;
        }
        return mark(obj, now, grace);
    }
    // Only for the owner kinds the garbage collector orphans for (else the finalizer would stay).
    if params.propagation_policy.as_deref() == Some("Orphan")
        && !terminating
        && def.group == "apps"
        && matches!(def.plural, "deployments" | "replicasets")
    {
        let mut o = obj.clone();
        let finalizers = o["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == "orphan") {
            let mut f = finalizers;
            f.push(json!("orphan"));
            o["metadata"]["finalizers"] = json!(f);
        }
        return mark(&o, now, 0);
    }
    if object::has_finalizers(obj) {
        if terminating {
            Plan::Keep
        } else {
            mark(obj, now, 0)
        }
    } else {
        Plan::Remove
    }
}

fn mark(obj: &Value, now: jiff::Timestamp, grace: i64) -> Plan {
    let mut o = obj.clone();
    let at = now + jiff::SignedDuration::from_secs(grace);
    o["metadata"]["deletionTimestamp"] = json!(object::format_time(at));
    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Plan::Mark(o)
}

impl Registry {
    /// Deletes an object, or marks it terminating (bound pods with a grace period, objects with
    /// finalizers). Returns the object as it was deleted or as it is now marked.
    pub async fn delete_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Value, ApiError> {
        if def.plural == "namespaces" && SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                ),
                subject: crate::apiserver::error::Subject {
                    group: String::new(),
                    kind: "namespaces".into(),
                    name: name.into(),
                },
            });
        }
        for _ in 0..RETRIES {
            let (obj, rev) = self.get_with_revision(def, namespace, name).await?;
            check_preconditions(def, &obj, &params.preconditions)?;
            if params.dry_run {
                return Ok(obj);
            }
            match self
                .apply_plan(def, namespace, name, obj, rev, params)
                .await
            {
                Err(ApiError::Conflict { .. }) => continue,
                Ok(obj) => {
                    if def.plural == "namespaces" {
                        self.delete_namespace_contents(name).await;
                    }
                    return Ok(obj);
                }
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }

    async fn apply_plan(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        rev: Revision,
        params: &DeleteParams,
    ) -> Result<Value, ApiError> {
        let key = def.key(namespace, name);
        match plan(def, &obj, params) {
            Plan::Keep => Ok(obj),
            Plan::Remove => {
                self.store
                    .delete(&key, Some(rev))
                    .await
                    .map_err(|e| map_store(def, name, e))?;
                let mut obj = obj;
                if def.plural == "namespaces" {
                    obj["status"]["phase"] = json!("Terminating");
                }
                Ok(obj)
            }
            Plan::Mark(mut marked) => {
                let rev = self
                    .store
                    .update(&key, object::encode(&marked)?, Some(rev))
                    .await
                    .map_err(|e| map_store(def, name, e))?;
                object::set_resource_version(&mut marked, rev);
                Ok(marked)
            }
        }
    }

    /// Deletes everything namespaced inside a deleted namespace (best effort; full namespace
    /// lifecycle with a Terminating phase comes later).
    async fn delete_namespace_contents(&self, namespace: &str) {
        for def in resources::all().into_iter().filter(|d| d.namespaced) {
            let Ok(list) = self
                .list_json(def, Some(namespace), &ListParams::default())
                .await
            else {
                continue;
            };
            for obj in list.items {
                let name = object::name(&obj).to_string();
                let params = DeleteParams::default();
                let fut = Box::pin(self.delete_json(def, Some(namespace), &name, &params));
                if let Err(e) = fut.await {
                    tracing::warn!(namespace, resource = def.plural, name, error = %e, "deleting namespace content");
                }
            }
        }
    }

    /// Deletes every object matching `list` (deletecollection). Returns what was deleted.
    pub async fn delete_collection_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        list: &ListParams,
        params: &DeleteParams,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self
            .list_json(
                def,
                namespace,
                &ListParams {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )
            .await?
            .items;
        let mut out = Vec::new();
        for obj in items {
            let name = object::name(&obj).to_string();
            match self
                .delete_json(def, object::namespace(&obj), &name, params)
                .await
            {
                Ok(o) => out.push(o),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Removes a terminating pod for good once its node has stopped it. With `uid`, only that
    /// incarnation. A pod that is already gone is not an error.
    pub async fn finalize_pod_deletion(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<(), ApiError> {
        let def = resource("", "pods")?;
        for _ in 0..RETRIES {
            let (obj, rev) = match self.get_with_revision(def, Some(namespace), name).await {
                Ok(x) => x,
                Err(ApiError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if uid.is_some_and(|u| u != object::uid(&obj)) {
                return Ok(());
            }
            let key = def.key(Some(namespace), name);
            if object::has_finalizers(&obj) {
                let mut o = obj;
                o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                if !object::is_terminating(&o) {
                    o["metadata"]["deletionTimestamp"] = json!(object::now());
                }
                match self
                    .store
                    .update(&key, object::encode(&o)?, Some(rev))
                    .await
                {
                    Err(StoreError::Conflict { .. }) => continue,
                    r => return r.map(|_| ()).map_err(|e| map_store(def, name, e)),
                }
            }
            match self.store.delete(&key, Some(rev)).await {
                Ok(_) | Err(StoreError::NotFound(_)) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(map_store(def, name, e)),
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }
}

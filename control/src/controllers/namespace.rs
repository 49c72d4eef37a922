//! The Namespace controller (basics): every active namespace has a `default` ServiceAccount.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::runtime::{Action, Controller, ObjectKey};
use super::{ControllerError, common, not_found_ok};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::Registry;

/// Runs the controller forever.
pub async fn run(registry: Registry) {
    let c = Controller::new("namespace", registry.clone());
    c.watches::<Namespace, _>(|ns| vec![ObjectKey::of(ns)]);
    // A deleted `default` ServiceAccount is put back.
    c.watches::<ServiceAccount, _>(|sa| {
        (sa.metadata.name.as_deref() == Some("default"))
            .then(|| ObjectKey::new(None, sa.metadata.namespace.as_deref().unwrap_or_default()))
            .into_iter()
            .collect()
    });
    c.run(2, move |key| {
        let registry = registry.clone();
        async move { reconcile(&registry, &key).await }
    })
    .await;
}

/// Makes sure namespace `key.name` has its `default` ServiceAccount.
pub async fn reconcile(registry: &Registry, key: &ObjectKey) -> Result<Action, ControllerError> {
    let Some(ns) = not_found_ok(registry.get::<Namespace>(None, &key.name).await)? else {
        return Ok(Action::AwaitChange);
    };
    if common::is_terminating(&ns.metadata) {
        return Ok(Action::AwaitChange);
    }
    if not_found_ok(
        registry
            .get::<ServiceAccount>(Some(&key.name), "default")
            .await,
    )?
    .is_some()
    {
        return Ok(Action::AwaitChange);
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            namespace: Some(key.name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match registry.create(&sa).await {
        Ok(_) => tracing::info!("created the default service account"),
        Err(ApiError::AlreadyExists { .. }) => {}
        // The namespace went away meanwhile.
        Err(ApiError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::AwaitChange)
}

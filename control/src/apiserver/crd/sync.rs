//! Keeps the dynamic kinds in step with the stored CRDs: an established CRD's versions are
//! served, a changed one is rebuilt, and a deleted one (held by the cleanup finalizer) has its
//! objects deleted before the finalizer is removed and its kinds stop being served. Every API
//! server process runs this from a watch on CRDs (so several replicas agree), and the HTTP layer
//! also calls [`sync`] right after a CRD write so the answer to it is already true.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::definition::{CLEANUP_FINALIZER, CUSTOMRESOURCEDEFINITIONS, is_established};
use super::kinds;
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{
    DeleteParams, ListParams, Registry, Subresource, WriteParams, object,
};

/// Serializes syncs within the process.
static SYNC: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The identity of a registry's store (a process may host several in tests).
fn owner(registry: &Registry) -> usize {
    std::sync::Arc::as_ptr(registry.store()) as *const () as usize
}

fn revision_of(crd: &Value) -> String {
    crd["metadata"]["generation"].to_string()
}

/// Deletes a terminating CRD's objects; once none are left, removes the cleanup finalizer.
async fn clean_up(registry: &Registry, crd: &Value) -> Result<(), ApiError> {
    let name = object::name(crd).to_string();
    let built = kinds::build(crd, owner(registry));
    let storage = built.iter().find(|k| k.storage).or(built.first());
    if let Some(k) = storage {
        registry
            .delete_collection_json(
                k.def,
                None,
                &ListParams::default(),
                &DeleteParams::default(),
            )
            .await?;
        let left = registry
            .list_json(k.def, None, &ListParams::default())
            .await?;
        if !left.items.is_empty() {
            info!(
                crd = name,
                left = left.items.len(),
                "custom objects still finalizing"
            );
            return Ok(());
        }
    }
    let uid = crd["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut done = crd.clone();
    let fins: Vec<Value> = crd["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .cloned()
        .collect();
    done["metadata"]["finalizers"] = json!(fins);
    match registry
        .update_json(
            &CUSTOMRESOURCEDEFINITIONS,
            None,
            &name,
            done,
            Subresource::Main,
            WriteParams::default(),
        )
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    kinds::replace(&uid, Vec::new());
    info!(crd = name, "custom resource definition removed");
    Ok(())
}

/// Brings the served custom kinds of `registry` in line with its stored CRDs.
pub async fn sync(registry: &Registry) -> Result<(), ApiError> {
    let _one = SYNC.lock().await;
    let me = owner(registry);
    let crds = registry
        .list_json(&CUSTOMRESOURCEDEFINITIONS, None, &ListParams::default())
        .await?
        .items;
    let registered = kinds::registered(me);
    let mut seen = Vec::new();
    for crd in &crds {
        let uid = crd["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        seen.push(uid.clone());
        if object::is_terminating(crd) {
            let holds = crd["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.contains(&json!(CLEANUP_FINALIZER)));
            if holds {
                clean_up(registry, crd).await?;
            }
            continue;
        }
        let current = registered
            .iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, r)| r.clone());
        if !is_established(crd) {
            if current.is_some() {
                kinds::replace(&uid, Vec::new());
            }
            continue;
        }
        if current.as_deref() != Some(revision_of(crd).as_str()) {
            let mut built = kinds::build(crd, me);
            for k in &mut built {
                k.crd_revision = revision_of(crd);
            }
            info!(
                crd = object::name(crd),
                versions = built.len(),
                "serving custom resources"
            );
            kinds::replace(&uid, built);
        }
    }
    for (uid, _) in registered.iter().filter(|(u, _)| !seen.contains(u)) {
        kinds::replace(uid, Vec::new());
    }
    Ok(())
}

/// Runs [`sync`] on every CRD change (and every few seconds, for cleanups that wait on the
/// custom objects' own finalizers) for as long as the runtime lives.
pub fn spawn(registry: Registry) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        warn!("no tokio runtime: custom resources are synced on CRD writes only");
        return;
    };
    rt.spawn(async move {
        loop {
            if let Err(e) = sync(&registry).await {
                warn!(error = %e, "syncing custom resource definitions");
            }
            let watch = registry
                .watch_json(
                    &CUSTOMRESOURCEDEFINITIONS,
                    None,
                    &ListParams::default(),
                    None,
                )
                .await;
            let Ok(mut events) = watch else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            // Every event, and every 5 s without one; ends when the watch does.
            while let Ok(Some(_)) | Err(_) =
                tokio::time::timeout(Duration::from_secs(5), events.next()).await
            {
                if let Err(e) = sync(&registry).await {
                    warn!(error = %e, "syncing custom resource definitions");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

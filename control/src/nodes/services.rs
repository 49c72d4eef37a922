//! `Services`: the Services and EndpointSlices of every namespace for a node's load balancer —
//! a snapshot (or a resumption after the versions the agent names), then every change from two
//! registry watches; a fresh snapshot whenever a watch breaks or its history is gone (410).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_proto::node::service_update::Update;
use skiff_proto::node::{
    ServiceObjectKind, ServiceObjectRemoved, ServiceObjectUpsert, ServiceSnapshot, ServiceUpdate,
    ServicesRequest,
};
use tokio::sync::mpsc;
use tonic::Status;

use crate::apiserver::registry::{Registry, TypedWatchStream, WatchEvent};

type Tx = mpsc::Sender<Result<ServiceUpdate, Status>>;

/// Starts following for one agent; the receiver ends when the agent disconnects.
pub(crate) fn follow(
    registry: Registry,
    req: ServicesRequest,
) -> mpsc::Receiver<Result<ServiceUpdate, Status>> {
    let (tx, rx) = mpsc::channel(256);
    let resume = (!req.services_resource_version.is_empty()
        && !req.endpoint_slices_resource_version.is_empty())
    .then(|| {
        (
            req.services_resource_version.clone(),
            req.endpoint_slices_resource_version.clone(),
        )
    });
    tokio::spawn(async move {
        let span = tracing::info_span!("node-services", node = %req.node_name);
        let _ = tracing::Instrument::instrument(run(&registry, resume, &tx), span).await;
    });
    rx
}

fn update(u: Update) -> Result<ServiceUpdate, Status> {
    Ok(ServiceUpdate { update: Some(u) })
}

async fn watch<K>(registry: &Registry, resource_version: String) -> Option<TypedWatchStream<K>>
where
    K: Resource + DeserializeOwned + Send + 'static,
{
    registry
        .watch::<K>(None, &Default::default(), Some(resource_version))
        .await
        .map_err(|e| tracing::info!(kind = K::KIND, error = %e, "cannot watch; re-listing"))
        .ok()
}

/// Lists both kinds and sends the snapshot; returns the versions to watch from.
async fn snapshot(registry: &Registry, tx: &Tx) -> Result<Option<(String, String)>, ()> {
    let services = registry.list::<Service>(None, &Default::default()).await;
    let slices = registry
        .list::<EndpointSlice>(None, &Default::default())
        .await;
    let (services, slices) = match (services, slices) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "listing services for a node failed");
            return Ok(None);
        }
    };
    let snapshot = ServiceSnapshot {
        services_json: services.items.iter().map(skiff_proto::to_json).collect(),
        endpoint_slices_json: slices.items.iter().map(skiff_proto::to_json).collect(),
        services_resource_version: services.resource_version.clone(),
        endpoint_slices_resource_version: slices.resource_version.clone(),
    };
    tracing::info!(
        services = services.items.len(),
        slices = slices.items.len(),
        "service snapshot sent"
    );
    tx.send(update(Update::Snapshot(snapshot)))
        .await
        .map_err(|_| ())?;
    Ok(Some((services.resource_version, slices.resource_version)))
}

/// What one watch event becomes on the wire; `Err` ends the watch (re-snapshot).
fn on_event<K>(kind: ServiceObjectKind, event: WatchEvent<K>) -> Result<Option<Update>, ()>
where
    K: Resource + Serialize + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            Ok(Some(Update::Upsert(ServiceObjectUpsert {
                kind: kind.into(),
                object_json: skiff_proto::to_json(&o),
                resource_version: o.metadata().resource_version.clone().unwrap_or_default(),
            })))
        }
        WatchEvent::Deleted(o) => {
            let m = o.metadata();
            Ok(Some(Update::Removed(ServiceObjectRemoved {
                kind: kind.into(),
                namespace: m.namespace.clone().unwrap_or_default(),
                name: m.name.clone().unwrap_or_default(),
                resource_version: m.resource_version.clone().unwrap_or_default(),
            })))
        }
        WatchEvent::Bookmark(_) => Ok(None),
        WatchEvent::Error(e) => {
            tracing::info!(kind = K::KIND, error = %e, "watch ended; sending a new snapshot");
            Err(())
        }
    }
}

async fn run(registry: &Registry, mut resume: Option<(String, String)>, tx: &Tx) -> Result<(), ()> {
    loop {
        let from = match resume.take() {
            Some(versions) => Some(versions),
            None => snapshot(registry, tx).await?,
        };
        let Some((services_rv, slices_rv)) = from else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let (Some(mut services), Some(mut slices)) = (
            watch::<Service>(registry, services_rv).await,
            watch::<EndpointSlice>(registry, slices_rv).await,
        ) else {
            continue;
        };
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return Err(()),
                e = services.next() => e.map(|e| on_event(ServiceObjectKind::Service, e)),
                e = slices.next() => e.map(|e| on_event(ServiceObjectKind::EndpointSlice, e)),
            };
            match next {
                Some(Ok(Some(u))) => tx.send(update(u)).await.map_err(|_| ())?,
                Some(Ok(None)) => {}
                Some(Err(())) | None => break,
            }
        }
    }
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;

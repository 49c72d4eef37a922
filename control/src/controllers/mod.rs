//! The in-process controllers (ReplicaSet, Deployment, DaemonSet, StatefulSet, Job, CronJob,
//! EndpointSlice, Namespace, node lifecycle, garbage collector) on one small controller
//! runtime; they read and write only through the `Registry`.

pub mod claim;
pub mod common;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod gc;
#[cfg(test)]
mod gc_tests;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod replicaset;
pub mod runtime;
pub mod statefulset;
#[cfg(test)]
mod testutil;

use crate::apiserver::error::ApiError;
use crate::apiserver::registry::Registry;

/// Why a reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The object cannot be reconciled as it is.
    #[error("{0}")]
    Invalid(String),
}

/// A 404 becomes `None`; other errors pass.
pub fn not_found_ok<T>(r: Result<T, ApiError>) -> Result<Option<T>, ControllerError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Starts every controller on the runtime with default settings; returns at once.
pub fn run_all(registry: Registry) {
    run_all_with(registry, node_lifecycle::NodeLifecycleConfig::default());
}

/// Starts every controller on the runtime; returns at once.
pub fn run_all_with(registry: Registry, node_lifecycle: node_lifecycle::NodeLifecycleConfig) {
    tokio::spawn(node_lifecycle::run(registry.clone(), node_lifecycle));
    tokio::spawn(replicaset::run(registry.clone()));
    tokio::spawn(deployment::run(registry.clone()));
    tokio::spawn(namespace::run(registry.clone()));
    tokio::spawn(job::run(registry.clone()));
    tokio::spawn(cronjob::run(registry.clone()));
    tokio::spawn(daemonset::run(registry.clone()));
    tokio::spawn(statefulset::run(registry.clone()));
    tokio::spawn(endpointslice::run(registry.clone()));
    tokio::spawn(gc::run(registry));
}

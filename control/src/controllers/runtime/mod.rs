//! A small controller runtime shaped like kube-runtime: watcher (list + watch with recovery)
//! → reflector cache → de-duplicating, rate-limited work queue → runner that reconciles keys
//! with bounded concurrency and never the same key twice at once.

pub mod queue;
pub mod reflector;
pub mod watcher;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tracing::Instrument;

use crate::apiserver::registry::Registry;
pub use queue::WorkQueue;
pub use reflector::Reader;
pub use watcher::{Event, Object};

/// Names one object: namespace (None for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn of<K: Object>(k: &K) -> Self {
        Self::from_meta(k.metadata())
    }

    pub fn from_meta(meta: &ObjectMeta) -> Self {
        ObjectKey {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long even without a change.
    Requeue(Duration),
    /// Wait for the next change.
    AwaitChange,
}

/// The controller reference of an object (the ownerReference with `controller: true`).
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Maps an owned object to its controller's key when the controller is of `kind`.
pub fn owner_key(meta: &ObjectMeta, kind: &str) -> Option<ObjectKey> {
    controller_ref(meta)
        .filter(|r| r.kind == kind)
        .map(|r| ObjectKey {
            namespace: meta.namespace.clone(),
            name: r.name.clone(),
        })
}

/// One controller: a queue fed by watches, and a runner.
pub struct Controller {
    name: &'static str,
    registry: Registry,
    queue: WorkQueue<ObjectKey>,
}

impl Controller {
    pub fn new(name: &'static str, registry: Registry) -> Self {
        Controller {
            name,
            registry,
            queue: WorkQueue::new(),
        }
    }

    pub fn queue(&self) -> WorkQueue<ObjectKey> {
        self.queue.clone()
    }

    /// Watches kind `K` into a cache; every change queues the keys `map` returns for the
    /// object (its own key for the primary kind, its owner's for owned kinds).
    pub fn watches<K, M>(&self, map: M) -> Reader<K>
    where
        K: Object,
        M: Fn(&K) -> Vec<ObjectKey> + Send + 'static,
    {
        self.watches_events(move |ev: &Event<K>| match ev {
            Event::Apply(k) | Event::Delete(k) => map(k),
            Event::Restarted(all) => all.iter().flat_map(&map).collect(),
        })
    }

    /// Like [`Controller::watches`], with the whole watcher event given to `map`.
    pub fn watches_events<K, M>(&self, map: M) -> Reader<K>
    where
        K: Object,
        M: Fn(&Event<K>) -> Vec<ObjectKey> + Send + 'static,
    {
        let (reader, mut writer) = reflector::store::<K>();
        let mut events = watcher::watcher::<K>(self.registry.clone());
        let queue = self.queue.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                writer.apply(&ev);
                map(&ev).into_iter().for_each(|key| queue.add(key));
            }
        });
        reader
    }

    /// Runs forever: reconciles queued keys, at most `concurrency` at a time, each key by one
    /// task at a time; errors are retried with per-key exponential back-off.
    pub async fn run<F, Fut, E>(self, concurrency: usize, reconcile: F)
    where
        F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let reconcile = Arc::new(reconcile);
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let name = self.name;
        while let Some(key) = self.queue.next().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let queue = self.queue.clone();
            let reconcile = reconcile.clone();
            let span = tracing::info_span!("reconcile", controller = name, object = %key);
            tokio::spawn(
                async move {
                    let result = reconcile(key.clone()).await;
                    match result {
                        Ok(Action::AwaitChange) => queue.forget(&key),
                        Ok(Action::Requeue(after)) => {
                            queue.forget(&key);
                            queue.add_after(key.clone(), after);
                        }
                        Err(e) => {
                            let failures = queue.failures(&key) + 1;
                            tracing::warn!(error = %e, failures, "reconcile failed");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

#[cfg(test)]
mod tests;

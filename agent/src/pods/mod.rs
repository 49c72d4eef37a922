//! Pods: desired (from the control plane's command stream) versus actual, one worker per pod,
//! plus cleanup of pods the node still has but the control plane no longer knows.

pub mod containers;
pub mod env;
pub mod events;
pub mod hooks;
pub mod logs;
pub mod objects;
pub mod probes;
pub mod sandbox;
pub mod security;
pub mod state;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cgroups::CgroupManager;
use crate::images::ImageStore;
use crate::network::PodNetwork;
use crate::runtime::Runtime;
use state::{PodDir, uid_of};
use worker::Desired;

/// What every pod worker shares.
pub struct Deps {
    pub runtime: Runtime,
    pub images: ImageStore,
    pub cgroups: CgroupManager,
    pub network: PodNetwork,
    pub client: crate::node::Client,
    /// ConfigMaps and Secrets the pods reference (read through the node protocol).
    pub objects: crate::node::objects::ObjectCache,
    /// `<root-dir>/pods`.
    pub pods_root: PathBuf,
    pub node_name: String,
    pub host_ip: String,
    pub cluster_dns: String,
}

struct Handle {
    desired: watch::Sender<Desired>,
    task: JoinHandle<()>,
}

/// Keeps one worker per pod bound to this node.
pub struct PodManager {
    deps: Arc<Deps>,
    workers: HashMap<String, Handle>,
}

impl PodManager {
    pub fn new(deps: Arc<Deps>) -> PodManager {
        PodManager {
            deps,
            workers: HashMap::new(),
        }
    }

    pub fn deps(&self) -> &Arc<Deps> {
        &self.deps
    }

    /// The control plane's full view: start or update every listed pod, remove the rest
    /// (including pods only found on disk from before a restart).
    pub fn snapshot(&mut self, pods: Vec<Pod>) {
        let wanted: std::collections::HashSet<String> = pods.iter().map(uid_of).collect();
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|uid| !wanted.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.removed(&uid);
        }
        for uid in state::known_pods(&self.deps.pods_root) {
            if !wanted.contains(&uid) && !self.workers.contains_key(&uid) {
                let deps = self.deps.clone();
                tokio::spawn(async move { remove_orphan(deps, uid).await });
            }
        }
        for pod in pods {
            self.upsert(pod);
        }
    }

    /// A pod bound to this node was created or changed.
    pub fn upsert(&mut self, pod: Pod) {
        let uid = uid_of(&pod);
        if uid.is_empty() {
            tracing::warn!(name = ?pod.metadata.name, "ignoring pod without uid");
            return;
        }
        self.workers.retain(|_, h| !h.task.is_finished());
        if let Some(handle) = self.workers.get(&uid) {
            handle.desired.send_replace(Desired {
                pod,
                removed: false,
            });
            return;
        }
        let (tx, rx) = watch::channel(Desired {
            pod,
            removed: false,
        });
        let task = tokio::spawn(worker::run(self.deps.clone(), rx));
        self.workers.insert(uid, Handle { desired: tx, task });
    }

    /// The pod object is gone: stop and clean up whatever remains.
    pub fn removed(&mut self, uid: &str) {
        if let Some(handle) = self.workers.get(uid) {
            handle.desired.send_modify(|d| d.removed = true);
        }
    }

    /// Waits for every worker to finish (after `removed` on all of them).
    pub async fn shutdown_all(&mut self) {
        let uids: Vec<String> = self.workers.keys().cloned().collect();
        for uid in &uids {
            self.removed(uid);
        }
        for (_, handle) in self.workers.drain() {
            let _ = handle.task.await;
        }
    }

    /// The running container id of `container` in pod `uid` (attempt `previous` back).
    pub fn log_target(
        &self,
        uid: &str,
        container: &str,
        previous: bool,
    ) -> Option<(PathBuf, Option<String>)> {
        let dir = PodDir::new(&self.deps.pods_root, uid);
        let record = dir.load()?;
        let rec = record.containers.get(container)?;
        if previous {
            let attempt = rec.attempt.checked_sub(1)?;
            return Some((dir.log_path(container, attempt), None));
        }
        Some((dir.log_path(container, rec.attempt), rec.id.clone()))
    }
}

/// Cleans up a pod found on disk that the control plane no longer has.
async fn remove_orphan(deps: Arc<Deps>, uid: String) {
    let dir = PodDir::new(&deps.pods_root, &uid);
    let record = dir.load().unwrap_or_default();
    tracing::info!(%uid, name = %record.name, "removing pod the control plane no longer has");
    for rec in record.containers.values() {
        if let Some(id) = &rec.id {
            let _ = deps
                .runtime
                .stop(id, std::time::Duration::from_secs(2))
                .await;
            let _ = deps.runtime.remove(id).await;
        }
    }
    sandbox::cleanup_sandbox(&deps, &uid, &record).await;
    if let Err(e) = dir.remove() {
        tracing::warn!(error = %e, "removing pod directory failed");
    }
}

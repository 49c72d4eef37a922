//! The worker's preparation of a pod before its containers run: the sandbox (cgroup, network
//! namespace, /etc files), the ConfigMaps/Secrets it references and its volumes, and the
//! [`PodContext`] containers are built from.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use super::Worker;
use crate::pods::containers::{self, PodContext};
use crate::pods::objects::PodObjects;
use crate::pods::state::uid_of;
use crate::pods::volumes::{self, MountedVolume};

impl Worker {
    /// The per-pod facts containers, env and volumes are built from.
    pub(super) fn context<'a>(
        &'a self,
        pod: &'a Pod,
        etc_dir: &'a std::path::Path,
    ) -> PodContext<'a> {
        static NO_VOLUMES: std::sync::LazyLock<HashMap<String, MountedVolume>> =
            std::sync::LazyLock::new(HashMap::new);
        PodContext {
            pod,
            node_name: &self.deps.node_name,
            pod_ip: self.record.pod_ip.as_deref(),
            host_ip: &self.deps.host_ip,
            netns_path: self.netns.clone(),
            pod_cgroup: self.pod_cgroup.as_deref().unwrap_or("/"),
            etc_dir,
            objects: &self.objects,
            volumes: self.volumes.as_ref().unwrap_or(&NO_VOLUMES),
        }
    }

    /// Reads the pod's ConfigMaps/Secrets and sets up (or refreshes) its volumes. False until
    /// the volumes were set up once; later failures keep the running containers' volumes.
    pub(super) async fn prepare_volumes(&mut self, pod: &Pod) -> bool {
        let result = match PodObjects::fetch(&self.deps.objects, pod).await {
            Ok(objects) => {
                self.objects = objects;
                let etc_dir = self.dir.dir.join("etc");
                volumes::set_up(&self.context(pod, &etc_dir), &self.dir.dir.join("volumes"))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(v) => {
                self.volumes = Some(v);
                self.volume_error = None;
            }
            Err(message) => {
                tracing::warn!(%message, "setting up volumes failed");
                if self.volume_error.as_ref() != Some(&message) {
                    self.event(pod, None, "Warning", "FailedMount", message.clone())
                        .await;
                }
                self.volume_error = Some(message);
            }
        }
        self.volumes.is_some()
    }

    /// Creates the pod cgroup, network namespace and /etc files (idempotent).
    pub(super) async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let uid = uid_of(pod);
        let qos = crate::cgroups::qos_class(pod);
        if self.pod_cgroup.is_none() {
            let res = crate::cgroups::pod_resources(pod);
            let path = self
                .deps
                .cgroups
                .create_pod(&uid, qos, &res)
                .map_err(|e| e.to_string())?;
            self.record.qos = format!("{qos:?}");
            self.pod_cgroup = Some(path);
        }
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            self.record.pod_ip = Some(self.deps.host_ip.clone());
        } else if self.netns.is_none() {
            let ns = self.record.namespace.clone();
            let info = self
                .deps
                .network
                .add_pod(&uid, &ns, &self.record.name)
                .await
                .map_err(|e| e.to_string())?;
            self.record.pod_ip = Some(info.ip.to_string());
            self.netns = Some(info.netns_path);
        }
        containers::write_etc_files(
            &self.dir.dir.join("etc"),
            pod,
            self.record.pod_ip.as_deref(),
            &self.deps.cluster_dns,
        )
        .map_err(|e| format!("writing pod /etc files: {e}"))?;
        if self.record.start_time.is_none() {
            self.record.start_time = Some(jiff::Timestamp::now().to_string());
        }
        self.save();
        Ok(())
    }
}

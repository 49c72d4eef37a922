//! The node/QoS/pod cgroup levels the agent owns (cgroups-rs); the container leaf is libcontainer's.
//!
//! Layout (like the kubelet's cgroupfs driver): `<root>/kubepods/pod<uid>` for Guaranteed pods,
//! `<root>/kubepods/{burstable,besteffort}/pod<uid>` otherwise, created in every controller
//! hierarchy the host has. On a hybrid host the same tree is mirrored into the controller-less
//! cgroup2 mount, where cgroup eBPF programs (the service connect4) can see pod processes.

mod backend;
mod qos;
mod remove;
#[cfg(test)]
mod tests;
mod unified;

use std::path::{Path, PathBuf};

pub use backend::{CgroupBackend, ControllerHierarchy, UnifiedMount};
pub use qos::{
    CPU_PERIOD_US, MAX_SHARES, MIN_QUOTA_US, MIN_SHARES, PodResources, QosClass,
    milli_cpu_to_quota, milli_cpu_to_shares, pod_resources, qos_class,
};
use tracing::{debug, info};
pub use unified::join_unified;

/// Where a hybrid host mounts its controller-less cgroup2 hierarchy.
pub const HYBRID_UNIFIED_MOUNT: &str = "/sys/fs/cgroup/unified";

/// Errors of the cgroup manager.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup root or a pod uid would escape the agent's subtree.
    #[error("invalid cgroup name {0:?}")]
    InvalidName(String),
    /// Creating a cgroup failed.
    #[error("creating {backend} cgroup {path}: {message}")]
    Create {
        backend: &'static str,
        path: String,
        message: String,
    },
    /// Writing limits failed.
    #[error("applying limits to cgroup {path}: {message}")]
    Apply { path: String, message: String },
    /// Processes would not leave a cgroup being removed.
    #[error("cgroup {} is busy: {message}", path.display())]
    Busy { path: PathBuf, message: String },
    /// rmdir of a cgroup failed.
    #[error("removing cgroup {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Owns `<root>/kubepods/...` in every hierarchy of the host.
#[derive(Debug)]
pub struct CgroupManager {
    root: String,
    backends: Vec<Box<dyn CgroupBackend>>,
    unified: Option<UnifiedMount>,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl CgroupManager {
    /// A manager for `root` (a cgroup name like "skiff", or a relative path "a/b") on this host.
    pub fn new(root: &str) -> Result<Self, CgroupError> {
        let controllers = ControllerHierarchy::detect();
        let unified = if controllers.kind() == "cgroup2" {
            None
        } else {
            UnifiedMount::at(Path::new(HYBRID_UNIFIED_MOUNT))
        };
        let mut backends: Vec<Box<dyn CgroupBackend>> = vec![Box::new(controllers)];
        if let Some(u) = &unified {
            backends.push(Box::new(u.clone()));
        }
        Self::with_backends(root, backends, unified)
    }

    /// A manager over explicit backends (tests, unusual hosts).
    pub fn with_backends(
        root: &str,
        backends: Vec<Box<dyn CgroupBackend>>,
        unified: Option<UnifiedMount>,
    ) -> Result<Self, CgroupError> {
        let root = root.trim_matches('/');
        if !root.split('/').all(valid_segment) {
            return Err(CgroupError::InvalidName(root.to_owned()));
        }
        info!(
            root,
            backends = ?backends.iter().map(|b| b.kind()).collect::<Vec<_>>(),
            "cgroup manager"
        );
        Ok(Self {
            root: root.to_owned(),
            backends,
            unified,
        })
    }

    fn kubepods(&self) -> String {
        format!("{}/kubepods", self.root)
    }

    fn qos_dir(&self, qos: QosClass) -> String {
        match qos.dir() {
            Some(d) => format!("{}/{d}", self.kubepods()),
            None => self.kubepods(),
        }
    }

    fn pod_rel(&self, uid: &str, qos: QosClass) -> Result<String, CgroupError> {
        if !valid_segment(uid) {
            return Err(CgroupError::InvalidName(uid.to_owned()));
        }
        Ok(format!("{}/pod{uid}", self.qos_dir(qos)))
    }

    /// The absolute cgroups path of a pod (`/<root>/kubepods/besteffort/pod<uid>`), the parent
    /// of its containers' `linux.cgroupsPath`.
    pub fn pod_path(&self, uid: &str, qos: QosClass) -> Result<String, CgroupError> {
        Ok(format!("/{}", self.pod_rel(uid, qos)?))
    }

    /// The pod's directory in the hybrid host's cgroup2 mount, where its processes must be
    /// placed for cgroup eBPF programs to apply; `None` on hosts without one.
    pub fn unified_pod_dir(&self, uid: &str, qos: QosClass) -> Option<PathBuf> {
        let rel = self.pod_rel(uid, qos).ok()?;
        self.unified.as_ref().map(|u| u.dir(&rel))
    }

    /// Creates `<root>`, `kubepods` and the burstable/besteffort levels (BestEffort gets the
    /// minimum CPU weight, as with the kubelet). Idempotent.
    pub fn ensure_node_levels(&self) -> Result<(), CgroupError> {
        let best_effort = PodResources {
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            cpu_period: CPU_PERIOD_US,
            memory_limit: None,
        };
        for backend in &self.backends {
            backend.create(&self.root, None)?;
            backend.create(&self.kubepods(), None)?;
            backend.create(&self.qos_dir(QosClass::Burstable), None)?;
            backend.create(&self.qos_dir(QosClass::BestEffort), Some(&best_effort))?;
        }
        Ok(())
    }

    /// Creates (or updates the limits of) the pod cgroup; returns its absolute cgroups path.
    pub fn create_pod(
        &self,
        uid: &str,
        qos: QosClass,
        res: &PodResources,
    ) -> Result<String, CgroupError> {
        self.ensure_node_levels()?;
        let rel = self.pod_rel(uid, qos)?;
        for backend in &self.backends {
            backend.create(&rel, Some(res))?;
        }
        debug!(cgroup = %rel, ?qos, ?res, "pod cgroup ready");
        Ok(format!("/{rel}"))
    }

    /// Kills stray tasks, removes leftover child cgroups (container leaves) and then the pod
    /// cgroup in every hierarchy. Idempotent.
    pub fn remove_pod(&self, uid: &str, qos: QosClass) -> Result<(), CgroupError> {
        let rel = self.pod_rel(uid, qos)?;
        self.remove_rel(&rel)
    }

    /// Removes everything under `<root>` (for `down` and `cleanup`).
    pub fn remove_all(&self) -> Result<(), CgroupError> {
        self.remove_rel(&self.root)
    }

    fn remove_rel(&self, rel: &str) -> Result<(), CgroupError> {
        let mut first_error = None;
        for backend in &self.backends {
            for dir in backend.dirs(rel) {
                if let Err(e) = remove::remove_tree(&dir) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Every directory backing the pod's cgroup (all hierarchies).
    pub fn pod_dirs(&self, uid: &str, qos: QosClass) -> Result<Vec<PathBuf>, CgroupError> {
        let rel = self.pod_rel(uid, qos)?;
        Ok(self.backends.iter().flat_map(|b| b.dirs(&rel)).collect())
    }
}

//! Cgroup hierarchies behind one small trait: cgroups-rs (every v1 controller mount, or the
//! cgroup2 tree on a unified host) and the controller-less cgroup2 mount of a hybrid host.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use cgroups_rs::fs::{
    Cgroup, Hierarchy, Resources,
    hierarchies::{self, V1, V2},
};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::{CgroupError, PodResources};

/// One cgroup hierarchy (or set of v1 hierarchies) the agent mirrors its tree into.
pub trait CgroupBackend: Send + Sync + fmt::Debug {
    /// Short name for logs and errors.
    fn kind(&self) -> &'static str;
    /// Creates the cgroup `rel` (relative to the hierarchy root, e.g. `skiff/kubepods`) with its
    /// parents, and applies `res` when given. Idempotent.
    fn create(&self, rel: &str, res: Option<&PodResources>) -> Result<(), CgroupError>;
    /// The directories that make up cgroup `rel` (one per v1 mount, one on cgroup2).
    fn dirs(&self, rel: &str) -> Vec<PathBuf>;
}

fn to_resources(res: &PodResources) -> Resources {
    let mut r = Resources::default();
    r.cpu.shares = Some(res.cpu_shares);
    r.cpu.period = res.cpu_quota.map(|_| res.cpu_period);
    r.cpu.quota = res.cpu_quota;
    r.memory.memory_hard_limit = res.memory_limit;
    r
}

/// The host's controller hierarchies through cgroups-rs: all v1 mounts on a legacy or hybrid
/// host, `/sys/fs/cgroup` on a unified host.
#[derive(Debug, Clone, Copy)]
pub struct ControllerHierarchy {
    v2: bool,
}

impl ControllerHierarchy {
    /// Detects the layout (cgroup2 mounted at `/sys/fs/cgroup` means unified).
    pub fn detect() -> Self {
        Self {
            v2: hierarchies::is_cgroup2_unified_mode(),
        }
    }

    fn hierarchy(&self) -> Box<dyn Hierarchy> {
        if self.v2 {
            Box::new(V2::new())
        } else {
            Box::new(V1::new())
        }
    }
}

impl CgroupBackend for ControllerHierarchy {
    fn kind(&self) -> &'static str {
        if self.v2 { "cgroup2" } else { "cgroup v1" }
    }

    fn create(&self, rel: &str, res: Option<&PodResources>) -> Result<(), CgroupError> {
        let backend = self.kind();
        let cgroup = Cgroup::new(self.hierarchy(), rel).map_err(|e| CgroupError::Create {
            backend,
            path: rel.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(res) = res {
            cgroup
                .apply(&to_resources(res))
                .map_err(|e| CgroupError::Apply {
                    path: rel.to_owned(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        let cgroup = Cgroup::load(self.hierarchy(), rel);
        let mut dirs: Vec<PathBuf> = cgroup
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().to_owned())
            .collect();
        // Co-mounted controllers (cpu,cpuacct) share a directory.
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// A cgroup2 mount without controllers next to v1 ones (hybrid host, usually
/// `/sys/fs/cgroup/unified`). Holding the pod's processes here too is what lets cgroup eBPF
/// programs (connect4) see them.
#[derive(Debug, Clone)]
pub struct UnifiedMount {
    mount: PathBuf,
}

impl UnifiedMount {
    /// The hybrid host's cgroup2 mount, if `mount` is one.
    pub fn at(mount: &Path) -> Option<Self> {
        let is_cgroup2 = statfs(mount).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
        is_cgroup2.then(|| Self {
            mount: mount.to_owned(),
        })
    }

    /// The directory of `rel` in this mount.
    pub fn dir(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }
}

impl CgroupBackend for UnifiedMount {
    fn kind(&self) -> &'static str {
        "cgroup2 (hybrid)"
    }

    fn create(&self, rel: &str, _res: Option<&PodResources>) -> Result<(), CgroupError> {
        fs::create_dir_all(self.dir(rel)).map_err(|e| CgroupError::Create {
            backend: self.kind(),
            path: rel.to_owned(),
            message: e.to_string(),
        })
    }

    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        vec![self.dir(rel)]
    }
}

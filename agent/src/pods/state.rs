//! What the agent remembers about each pod on disk (`<root>/pods/<uid>/`), so that a restarted
//! agent re-adopts running containers instead of starting them twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use serde::{Deserialize, Serialize};

/// One container of a pod, across its restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    /// The current attempt (0 for the first run); names the log file and the runtime id.
    pub attempt: u32,
    /// Runtime id of the current attempt, once started (or tried).
    pub id: Option<String>,
    /// How often the container was restarted (Kubernetes' restartCount).
    pub restart_count: i32,
    /// The previous attempt's end, shown as `lastState`.
    pub last_terminated: Option<ContainerStateTerminated>,
    /// `docker.io/library/busybox@sha256:…` once the image was pulled.
    pub image_id: Option<String>,
    /// The start of this attempt failed: the terminated state to report for it.
    pub start_failure: Option<ContainerStateTerminated>,
    /// Restarts in a row without an attempt that ran for 10 minutes (drives CrashLoopBackOff;
    /// absent in records of older agents).
    #[serde(default)]
    pub crash_streak: Option<u32>,
}

/// Everything recorded about one pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    /// The QoS class the pod cgroup was created under ("Guaranteed", "Burstable", "BestEffort").
    pub qos: String,
    pub containers: BTreeMap<String, ContainerRecord>,
    pub pod_ip: Option<String>,
    /// RFC 3339 time the agent first acted on the pod.
    pub start_time: Option<String>,
}

/// The directory layout of a pod's state.
#[derive(Debug, Clone)]
pub struct PodDir {
    pub dir: PathBuf,
}

impl PodDir {
    pub fn new(pods_root: &Path, uid: &str) -> PodDir {
        PodDir {
            dir: pods_root.join(uid),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("record.json")
    }

    /// The log file of one attempt of one container.
    pub fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        self.dir
            .join("logs")
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Reads the record, if the pod was seen before.
    pub fn load(&self) -> Option<PodRecord> {
        let bytes = std::fs::read(self.record_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the record atomically (temp file + rename).
    pub fn save(&self, record: &PodRecord) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("record.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.record_path())
    }

    /// Removes everything kept for the pod, logs included.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The uids of every pod with state on disk.
pub fn known_pods(pods_root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pods_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// The pod's uid, or "" when the object has none (never from the control plane).
pub fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_removes() {
        let root = tempfile::tempdir().unwrap();
        let dir = PodDir::new(root.path(), "u1");
        assert!(dir.load().is_none());
        let mut record = PodRecord {
            namespace: "default".into(),
            name: "p".into(),
            ..Default::default()
        };
        record.containers.insert(
            "c".into(),
            ContainerRecord {
                attempt: 2,
                restart_count: 2,
                ..Default::default()
            },
        );
        dir.save(&record).unwrap();
        assert_eq!(dir.load(), Some(record));
        assert_eq!(known_pods(root.path()), vec!["u1".to_string()]);
        assert!(dir.log_path("c", 2).ends_with("u1/logs/c/2.log"));
        dir.remove().unwrap();
        dir.remove().unwrap();
        assert!(known_pods(root.path()).is_empty());
    }
}

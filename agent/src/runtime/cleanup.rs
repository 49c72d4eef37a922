//! Removing what a container leaves on the node: its cgroup leaf (when the shim could not
//! delete it), libcontainer's state, the overlay mount and the state dir.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{RuntimeError, rootfs, shim};

/// Every cgroup hierarchy mounted on the host (v1 controllers and cgroup2), from mountinfo.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for line in info.lines() {
        // Fields: id parent maj:min root mountpoint options [optional…] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        if (fstype == "cgroup" || fstype == "cgroup2")
            && let Some(mp) = left.split(' ').nth(4)
        {
            mounts.push(PathBuf::from(mp));
        }
    }
    mounts.sort();
    mounts.dedup();
    mounts
}

/// Removes the cgroup `path` (absolute cgroupsPath) from every hierarchy, retrying while the
/// kernel still drains exiting tasks.
pub fn remove_cgroup(path: &str) -> Result<(), std::io::Error> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Ok(());
    }
    let mut last_err = None;
    for mount in cgroup_mounts() {
        let dir = mount.join(rel);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cgroup busy, retrying");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
                    last_err = Some(e);
                    break;
                }
            }
        }
    }
    last_err.map_or(Ok(()), Err)
}

/// Tears down everything under the state dir `dir` of container `id`. Safe to repeat.
pub fn remove_container_dir(dir: &Path, id: &str) -> Result<(), RuntimeError> {
    if !dir.exists() {
        return Ok(());
    }
    let lc = dir.join(shim::LIBCONTAINER_DIR);
    if lc.join(id).exists()
        && let Some(input) = shim::ShimInput::load(dir)
    {
        // The shim did not get to delete the container (it died or was killed).
        if let Err(e) = remove_cgroup(&input.cgroup_path) {
            tracing::warn!(id, error = %e, "leaving the container's cgroup behind");
        }
    }
    rootfs::unmount(dir).map_err(|e| RuntimeError::Rootfs {
        id: id.to_string(),
        message: e.to_string(),
    })?;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RuntimeError::Io {
            context: format!("remove {}", dir.display()),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hosts_cgroup_hierarchies() {
        let mounts = cgroup_mounts();
        // Every Linux host running the agent has at least one cgroup hierarchy.
        assert!(!mounts.is_empty());
        assert!(
            mounts.iter().all(|m| m.starts_with("/sys/fs/cgroup")),
            "{mounts:?}"
        );
    }

    #[test]
    fn removing_a_missing_container_dir_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        remove_container_dir(&gone, "gone").unwrap();
        std::fs::create_dir_all(gone.join("upper/x")).unwrap();
        remove_container_dir(&gone, "gone").unwrap();
        assert!(!gone.exists());
    }
}

//! Placing container processes into the hybrid host's controller-less cgroup2 mount, where the
//! service load balancer's socket programs (attached to `<unified>/<cgroup-root>`) see them.
//!
//! libcontainer's v1 manager puts a container into the v1 hierarchies only; its processes stay
//! in whatever cgroup2 directory their parent was in. So the shim joins
//! `<unified>/<container cgroups path>` itself before it starts the container (every container
//! process inherits it), and an exec child joins the same directory before it enters the
//! container. The directory is the container leaf below the pod's directory that
//! [`super::CgroupManager`] mirrors there; the runtime's cgroup cleanup removes it with the
//! other hierarchies' leaves, and pod removal removes the pod's whole subtree.

use std::io;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::HYBRID_UNIFIED_MOUNT;

/// Moves the calling process into the unified-mount directory of `cgroup_path` (an absolute
/// cgroups path like `/skiff/kubepods/besteffort/pod<uid>/<id>`), creating that leaf when
/// `create` is set. Does nothing (`Ok(None)`) on hosts without a hybrid cgroup2 mount, or when
/// the pod's directory is not mirrored there (a runtime used without the cgroup manager).
pub fn join_unified(cgroup_path: &str, create: bool) -> io::Result<Option<PathBuf>> {
    join_under(Path::new(HYBRID_UNIFIED_MOUNT), cgroup_path, create)
}

fn join_under(mount: &Path, cgroup_path: &str, create: bool) -> io::Result<Option<PathBuf>> {
    let rel = cgroup_path.trim_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad cgroups path {cgroup_path:?}"),
        ));
    }
    if !statfs(mount).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC) {
        return Ok(None);
    }
    let dir = mount.join(rel);
    if !dir.parent().is_some_and(Path::is_dir) {
        return Ok(None);
    }
    if create {
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    } else if !dir.is_dir() {
        return Ok(None);
    }
    // "0" names the writing process.
    std::fs::write(dir.join("cgroup.procs"), "0")?;
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_escape_and_skips_non_cgroup2_mounts() {
        assert!(join_under(Path::new("/tmp"), "/a/../b", true).is_err());
        assert!(join_under(Path::new("/tmp"), "/", true).is_err());
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("pod")).unwrap();
        // Not a cgroup2 mount: nothing happens.
        assert_eq!(join_under(tmp.path(), "/pod/c1", true).unwrap(), None);
        assert!(!tmp.path().join("pod/c1").exists());
    }

    #[test]
    fn a_child_joins_the_leaf_and_the_leaf_can_go_after_it_exits() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let mount = Path::new(HYBRID_UNIFIED_MOUNT);
        if !statfs(mount).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC) {
            eprintln!("skipping: no hybrid cgroup2 mount");
            return;
        }
        let pod = mount.join(format!("skiff-test-join-{}", std::process::id()));
        std::fs::create_dir(&pod).unwrap();
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(self.0.join("c1"));
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _guard = Cleanup(pod.clone());
        let rel = format!("/{}/c1", pod.file_name().unwrap().to_str().unwrap());
        // A missing leaf is skipped unless asked to create it.
        assert_eq!(join_under(mount, &rel, false).unwrap(), None);
        // A forked child joins (the test process itself must stay where it is) and reports
        // whether /proc says it is there.
        // SAFETY: the child only does file I/O (glibc keeps malloc usable after fork) and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let joined = join_under(mount, &rel, true).ok().flatten().is_some();
                let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                let there = cgroup.lines().any(|l| l == format!("0::{rel}"));
                // SAFETY: leaving the forked child without running the test harness's code.
                unsafe { libc::_exit(if joined && there { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        assert!(pod.join("c1").is_dir(), "the leaf was created");
    }
}

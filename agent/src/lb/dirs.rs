//! The load balancer's directories: the bpffs pin dir and the cgroup2 dir connect4 attaches to.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, FsType, statfs},
};
use tracing::info;

use super::LbError;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LbError {
    let path = path.to_owned();
    move |source| LbError::Io { what, path, source }
}

fn fs_type(path: &Path) -> Option<FsType> {
    statfs(path).ok().map(|s| s.filesystem_type())
}

/// Creates `pin_dir` on bpffs, mounting bpffs on its parent first when the parent is not one
/// (the usual case being a host where nothing mounted `/sys/fs/bpf` yet).
pub(super) fn ensure_pin_dir(pin_dir: &Path) -> Result<(), LbError> {
    let parent = pin_dir.parent().ok_or_else(|| {
        io_err("pin dir without parent", pin_dir)(io::ErrorKind::InvalidInput.into())
    })?;
    fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    if fs_type(parent) != Some(BPF_FS_MAGIC) {
        info!(path = %parent.display(), "mounting bpffs");
        mount(
            Some("bpf"),
            parent,
            Some("bpf"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0700"),
        )
        .map_err(|e| io_err("mounting bpffs on", parent)(e.into()))?;
    }
    fs::create_dir_all(pin_dir).map_err(io_err("creating", pin_dir))
}

/// Creates `dir` and checks that it lives on a cgroup2 mount.
pub(super) fn ensure_cgroup2_dir(dir: &Path) -> Result<(), LbError> {
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    if fs_type(dir) != Some(CGROUP2_SUPER_MAGIC) {
        return Err(LbError::NotCgroup2(dir.to_owned()));
    }
    Ok(())
}

/// Removes a file; a missing one is fine.
pub(super) fn remove_file(path: &Path) -> Result<(), LbError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Unpins every object under `pin_dir` (unlinking a pin drops its reference) and removes it.
pub(super) fn remove_pin_dir(pin_dir: &Path) -> Result<(), LbError> {
    let entries = match fs::read_dir(pin_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", pin_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", pin_dir))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_pin_dir(&path)?;
        } else {
            remove_file(&path)?;
        }
    }
    match fs::remove_dir(pin_dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", pin_dir)(e)),
        _ => Ok(()),
    }
}

/// Removes a cgroup2 directory and its child cgroups, deepest first. Fails (EBUSY) if a cgroup
/// still holds processes.
pub(super) fn remove_cgroup_tree(dir: &Path) -> Result<(), LbError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let children: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    for child in children {
        remove_cgroup_tree(&child)?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing cgroup", dir)(e)),
        _ => Ok(()),
    }
}

//! Tearing a cgroup subtree down: kill what still runs in it, then remove directories deepest
//! first (rmdir is the only way to delete a cgroup; its control files go with it).

use std::{
    fs, io,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tracing::{debug, warn};

use super::CgroupError;

/// How long killed tasks get to leave before removal gives up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// `dir` and every cgroup below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            out.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        i += 1;
    }
    out
}

fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILLs every process in the subtree (never the agent itself) until none is left.
fn drain(dir: &Path) -> Result<(), CgroupError> {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let pids: Vec<i32> = subtree(dir).iter().flat_map(|d| procs(d)).collect();
        if pids.is_empty() {
            return Ok(());
        }
        if pids.contains(&me) {
            return Err(CgroupError::Busy {
                path: dir.to_owned(),
                message: "the agent itself is in this cgroup".into(),
            });
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Busy {
                path: dir.to_owned(),
                message: format!("processes {pids:?} did not exit"),
            });
        }
        for pid in pids {
            debug!(pid, cgroup = %dir.display(), "killing stray task");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the tasks in `dir`'s subtree and removes it. A missing `dir` is fine.
pub(super) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    drain(dir)?;
    for cgroup in subtree(dir).iter().rev() {
        remove_dir(cgroup)?;
    }
    Ok(())
}

/// rmdir with a few retries: a just-killed task can keep a cgroup busy for a moment.
fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut attempts = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 50 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                warn!(cgroup = %dir.display(), error = %e, "cannot remove cgroup");
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source: e,
                });
            }
        }
    }
}

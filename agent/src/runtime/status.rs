//! A container's recorded status (`<state-dir>/status.json`): written atomically by the shim at
//! each transition, read by the agent (also after the agent restarted).

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ContainerState, ExitReason};

/// The status file's name inside the container's state dir.
pub const STATUS_FILE: &str = "status.json";

/// Where the container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The shim is creating the container.
    Creating,
    Running,
    Exited,
    /// Creating or starting failed; `message` says why.
    Failed,
}

/// The content of `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub phase: Phase,
    pub shim_pid: i32,
    /// The shim's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), to tell
    /// it from a later process that got the same pid.
    pub shim_start: u64,
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub started_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub oom_killed: bool,
    pub message: Option<String>,
}

impl Status {
    /// A fresh status for the calling shim.
    pub fn creating() -> Status {
        let shim_pid = std::process::id() as i32;
        Status {
            phase: Phase::Creating,
            shim_pid,
            shim_start: process_start(shim_pid).unwrap_or(0),
            pid: None,
            pid_start: None,
            started_at: None,
            exit_code: None,
            finished_at: None,
            oom_killed: false,
            message: None,
        }
    }

    /// Reads the status of the container whose state dir is `dir`.
    pub fn load(dir: &Path) -> Option<Status> {
        let bytes = std::fs::read(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the status atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        write_json(&dir.join(STATUS_FILE), self)
    }

    /// Whether the container's init process still exists (and is the one recorded).
    pub fn container_alive(&self) -> bool {
        match (self.pid, self.pid_start) {
            (Some(pid), Some(start)) => process_start(pid) == Some(start),
            (Some(pid), None) => process_start(pid).is_some(),
            _ => false,
        }
    }

    /// Whether the shim that wrote this status still runs.
    pub fn shim_alive(&self) -> bool {
        process_start(self.shim_pid) == Some(self.shim_start)
    }

    /// Sends `signal` to the container's init process if it is still the recorded one.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid
            && pid > 0
            && self.container_alive()
            && let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        {
            tracing::debug!(pid, %signal, error = %e, "signalling the container failed");
        }
    }

    /// The state the agent reports, checked against the live processes.
    pub fn container_state(&self) -> ContainerState {
        let now = Timestamp::now();
        match self.phase {
            Phase::Creating if self.shim_alive() => ContainerState::Unknown,
            Phase::Creating => ContainerState::Exited {
                exit_code: 128,
                started_at: None,
                finished_at: self.finished_at.unwrap_or(now),
                reason: ExitReason::ContainerCannotRun,
                message: Some("the container shim died while creating the container".into()),
            },
            Phase::Failed => ContainerState::Exited {
                exit_code: self.exit_code.unwrap_or(128),
                started_at: self.started_at,
                finished_at: self.finished_at.unwrap_or(now),
                reason: ExitReason::ContainerCannotRun,
                message: self.message.clone(),
            },
            Phase::Running if self.container_alive() || self.shim_alive() => {
                ContainerState::Running {
                    pid: self.pid.unwrap_or(0),
                    started_at: self.started_at.unwrap_or(now),
                }
            }
            Phase::Running => ContainerState::Exited {
                exit_code: 255,
                started_at: self.started_at,
                finished_at: now,
                reason: ExitReason::Error,
                message: Some("the container's exit was not recorded (its shim is gone)".into()),
            },
            Phase::Exited => {
                let exit_code = self.exit_code.unwrap_or(255);
                let reason = if self.oom_killed {
                    ExitReason::OomKilled
                } else if exit_code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                };
                ContainerState::Exited {
                    exit_code,
                    started_at: self.started_at,
                    finished_at: self.finished_at.unwrap_or(now),
                    reason,
                    message: self.message.clone(),
                }
            }
        }
    }
}

/// A process' start time in clock ticks since boot, or None if it does not exist (or is a
/// zombie, which for our purposes has exited).
pub fn process_start(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); start time is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// Writes `bytes` to `path` atomically: a temp file in the same dir, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Serializes `value` as JSON into `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_sees_self_and_not_a_dead_pid() {
        assert!(process_start(std::process::id() as i32).is_some());
        assert_eq!(process_start(-1), None);
        assert_eq!(process_start(i32::MAX), None);
    }

    #[test]
    fn exited_status_maps_to_kubernetes_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status::creating();
        s.phase = Phase::Exited;
        s.exit_code = Some(0);
        s.finished_at = Some(Timestamp::now());
        s.save(dir.path()).unwrap();
        let loaded = Status::load(dir.path()).unwrap();
        assert_eq!(loaded, s);
        assert!(matches!(
            loaded.container_state(),
            ContainerState::Exited {
                exit_code: 0,
                reason: ExitReason::Completed,
                ..
            }
        ));
        s.exit_code = Some(137);
        s.oom_killed = true;
        assert!(matches!(
            s.container_state(),
            ContainerState::Exited {
                exit_code: 137,
                reason: ExitReason::OomKilled,
                ..
            }
        ));
        s.oom_killed = false;
        s.exit_code = Some(2);
        assert!(matches!(
            s.container_state(),
            ContainerState::Exited {
                reason: ExitReason::Error,
                ..
            }
        ));
    }

    #[test]
    fn running_status_without_processes_is_reported_as_exited() {
        let mut s = Status::creating();
        s.shim_pid = i32::MAX;
        s.phase = Phase::Running;
        s.pid = Some(i32::MAX);
        s.pid_start = Some(1);
        assert!(matches!(
            s.container_state(),
            ContainerState::Exited { exit_code: 255, .. }
        ));
        s.phase = Phase::Creating;
        assert!(matches!(
            s.container_state(),
            ContainerState::Exited {
                reason: ExitReason::ContainerCannotRun,
                ..
            }
        ));
    }
}

//! The container runtime: libcontainer driven from a single-threaded shim process per container.
//!
//! The agent is a multi-threaded tokio program and libcontainer must not be called from such a
//! process (clone3 while other threads hold locks hangs). So [`Runtime::start`] mounts the
//! container's overlay root, writes the OCI bundle into the container's state dir and starts
//! `skiff-agent shim <state-dir>` ([`shim::main`]), which daemonizes, creates and starts the
//! container, copies its output into the CRI log and records its status on disk
//! ([`status::Status`]). Everything the agent knows about a container is in that state dir, so
//! a restarted agent finds its containers again ([`Runtime::list`], [`Runtime::state`]).
//!
//! State dir layout (`<state_root>/<id>/`): `config.json` (the OCI bundle, `root.path` =
//! `rootfs`), `shim.json` (what the shim needs), `status.json`, `shim.log`, `rootfs/` (the
//! overlay mount point), `upper/` and `work/` (overlay), `lc/` (libcontainer's own state),
//! `exec.lock` (serializes exec set-ups).
//!
//! [`Runtime::exec`] / [`Runtime::spawn_exec`] run a command in a running container through a
//! short-lived `skiff-agent shim exec` child (see `exec.rs`).

mod cleanup;
mod exec;
mod rootfs;
pub mod security;
pub mod shim;
mod spec;
mod start;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use exec::{ExecOutput, ExecSession, MAX_OUTPUT};
pub use security::{SeccompMode, SecuritySpec};
use status::{Phase, Status};

/// Resource limits of one container, as linux.resources (cgroup v1 units).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// Everything needed to run one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique on the node (e.g. `<pod-uid>-<name>-<attempt>`); the state dir's name.
    pub id: String,
    /// Unpacked layer dirs, bottom → top (from `images::Image`).
    pub rootfs_layers: Vec<PathBuf>,
    /// The resolved argv.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `/` if empty.
    pub working_dir: String,
    pub hostname: String,
    /// Join this network namespace (None: host network).
    pub netns_path: Option<PathBuf>,
    /// Absolute cgroupsPath, e.g. `/skiff/kubepods/besteffort/pod<uid>/<id>`.
    pub cgroup_path: String,
    /// CRI-format log file (its parent dir exists).
    pub log_path: PathBuf,
    pub resources: ContainerResources,
    pub uid: u32,
    pub gid: u32,
    /// Bind mounts: (host path, container path, read-only), e.g. the pod's `/etc/hosts`.
    pub extra_mounts: Vec<(PathBuf, String, bool)>,
    /// Capabilities, seccomp, read-only root, groups… (absent in specs of older agents).
    #[serde(default)]
    pub security: SecuritySpec,
}

/// Why a container ended, as Kubernetes names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    Completed,
    Error,
    OomKilled,
    ContainerCannotRun,
}

/// What the runtime knows about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        pid: i32,
        started_at: Timestamp,
    },
    Exited {
        exit_code: i32,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
        reason: ExitReason,
        message: Option<String>,
    },
    /// No state on disk, or a start still in progress.
    Unknown,
}

/// Errors of the runtime; their messages end up in pod statuses and events.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The spec cannot describe a container (bad id, no args, no layers, …).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// A container with this id already has state on the node.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// The container could not be created or started; the message is the user-facing reason
    /// (e.g. `exec: "nosuch": executable file not found in $PATH`).
    #[error("{message}")]
    CannotRun { id: String, message: String },
    /// Preparing the root filesystem (overlay mount) failed.
    #[error("failed to prepare the root filesystem of {id}: {message}")]
    Rootfs { id: String, message: String },
    /// Exec needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// An exec'd command outlived its timeout and was killed.
    #[error("command timed out after {}s", .timeout.as_secs_f64())]
    ExecTimeout { id: String, timeout: Duration },
    /// An exec'd command could not be run (or its child failed).
    #[error("{message}")]
    ExecFailed { id: String, message: String },
    /// The container did not stop after SIGKILL.
    #[error("container {0} did not stop")]
    StopTimeout(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// How long `stop`/`remove` wait for an exit after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The libcontainer runtime: one state dir and one shim per container.
#[derive(Debug, Clone)]
pub struct Runtime {
    state_root: PathBuf,
    agent_exe: PathBuf,
    /// Arguments before `shim <dir>` (tests run the shim through the test harness).
    shim_prefix: Vec<String>,
    /// Container log rotation: (max size in bytes, max files).
    log_limits: (u64, u32),
}

impl Runtime {
    /// `state_root` is `<root-dir>/containers`; `agent_exe` the binary that has the `shim`
    /// subcommand (normally `std::env::current_exe()`).
    pub fn new(state_root: PathBuf, agent_exe: PathBuf) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&state_root)
            .map_err(io_err(format!("create {}", state_root.display())))?;
        Ok(Runtime {
            state_root,
            agent_exe,
            shim_prefix: Vec::new(),
            log_limits: (shim::logs::DEFAULT_MAX_SIZE, shim::logs::DEFAULT_MAX_FILES),
        })
    }

    /// Rotates container logs past `max_size` bytes, keeping `max_files` files (the kubelet's
    /// containerLogMaxSize / containerLogMaxFiles; defaults 10 MiB and 5).
    pub fn with_log_limits(mut self, max_size: u64, max_files: u32) -> Self {
        self.log_limits = (max_size, max_files);
        self
    }

    /// Runs the shim as `exe <prefix…> shim <dir>` (for tests, whose harness is the shim).
    #[cfg(test)]
    pub(crate) fn with_shim_prefix(mut self, prefix: Vec<String>) -> Self {
        self.shim_prefix = prefix;
        self
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    /// Mounts the root filesystem, writes the bundle and starts the container through its
    /// shim. Returns once the container runs, or with the reason it could not.
    pub async fn start(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        start::validate(spec)?;
        let dir = self.dir(&spec.id);
        let prepared = {
            let (dir, spec, limits) = (dir.clone(), spec.clone(), self.log_limits);
            tokio::task::spawn_blocking(move || start::prepare(&dir, &spec, limits))
                .await
                .map_err(|e| RuntimeError::InvalidSpec(format!("prepare task failed: {e}")))?
        };
        prepared?;
        let (exe, prefix) = (self.agent_exe.clone(), self.shim_prefix.clone());
        let id = spec.id.clone();
        tokio::task::spawn_blocking(move || start::run_shim(&exe, &prefix, &dir, &id))
            .await
            .map_err(|e| RuntimeError::InvalidSpec(format!("shim task failed: {e}")))?
    }

    /// The container's state as recorded on disk, checked against the live processes.
    pub fn state(&self, id: &str) -> ContainerState {
        if !valid_id(id) {
            return ContainerState::Unknown;
        }
        match Status::load(&self.dir(id)) {
            Some(status) => status.container_state(),
            None => ContainerState::Unknown,
        }
    }

    /// SIGTERM, waits up to `grace`, then SIGKILL and waits for the exit to be recorded.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        if !valid_id(id) {
            return Ok(());
        }
        let dir = self.dir(id);
        let Some(status) = Status::load(&dir) else {
            return Ok(());
        };
        if status.phase != Phase::Running || !status.container_alive() {
            return Ok(());
        }
        status.signal(nix::sys::signal::Signal::SIGTERM);
        if wait_exited(&dir, grace).await {
            return Ok(());
        }
        tracing::info!(
            id,
            "container did not stop within its grace period, killing it"
        );
        if let Some(status) = Status::load(&dir) {
            status.signal(nix::sys::signal::Signal::SIGKILL);
        }
        if wait_exited(&dir, KILL_TIMEOUT).await {
            Ok(())
        } else {
            Err(RuntimeError::StopTimeout(id.to_string()))
        }
    }

    /// Kills what still runs, deletes the container's cgroup and libcontainer state, unmounts
    /// the root filesystem and removes the state dir. Idempotent.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if !valid_id(id) {
            return Ok(());
        }
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Some(status) = Status::load(&dir)
            && status.phase == Phase::Running
            && status.container_alive()
        {
            status.signal(nix::sys::signal::Signal::SIGKILL);
            wait_exited(&dir, KILL_TIMEOUT).await;
        }
        // Give a live shim the chance to finish its own cleanup (libcontainer delete).
        let deadline = tokio::time::Instant::now() + KILL_TIMEOUT;
        while Status::load(&dir).is_some_and(|s| s.shim_alive())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let id = id.to_string();
        tokio::task::spawn_blocking(move || cleanup::remove_container_dir(&dir, &id))
            .await
            .map_err(|e| RuntimeError::InvalidSpec(format!("remove task failed: {e}")))?
    }

    /// Ids of all containers with state on disk.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state_root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| valid_id(id))
            .collect();
        ids.sort();
        ids
    }
}

/// Container ids name directories and cgroups: keep them to a safe alphabet.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Waits until the status on disk says the container has exited (or its processes are gone).
async fn wait_exited(dir: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match Status::load(dir) {
            None => return true,
            Some(s) if s.phase != Phase::Running => return true,
            Some(s) if !s.container_alive() && !s.shim_alive() => return true,
            Some(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
pub(crate) mod tests;

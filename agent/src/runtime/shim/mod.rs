//! The shim (`skiff-agent shim <state-dir>`): one single-threaded process per container that
//! creates and starts it with libcontainer, stays its parent, copies its output into the CRI
//! log, waits for it and records its status. It daemonizes (fork + setsid) so the agent can
//! restart without touching running containers.
//!
//! `skiff-agent shim exec …` is the exec child instead (see [`exec`]).
//!
//! Protocol with the agent: the agent starts the shim with stdout on a pipe; the shim writes
//! one line there, `ok` once the container runs or `error: <message>`, and closes it. The
//! state dir holds everything else (`shim.json` in, `status.json` out).

pub mod exec;
mod executor;
pub mod logs;
pub mod tty;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::status::{Phase, Status, process_start};

/// The shim's input file inside the state dir.
pub const INPUT_FILE: &str = "shim.json";
/// Starts the shim's report line (other output may share the pipe in tests).
pub const REPORT_PREFIX: &str = "skiff-shim: ";
/// libcontainer's root dir inside the state dir (it keeps `<id>/state.json` there).
pub const LIBCONTAINER_DIR: &str = "lc";

/// What the agent tells the shim (`<state-dir>/shim.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimInput {
    pub id: String,
    pub log_path: PathBuf,
    pub cgroup_path: String,
    /// Rotate the log past this size (bytes; 0: never).
    #[serde(default = "default_log_max_size")]
    pub log_max_size: u64,
    /// Files kept in all, the current one included.
    #[serde(default = "default_log_max_files")]
    pub log_max_files: u32,
}

fn default_log_max_size() -> u64 {
    logs::DEFAULT_MAX_SIZE
}

fn default_log_max_files() -> u32 {
    logs::DEFAULT_MAX_FILES
}

impl ShimInput {
    pub fn load(dir: &Path) -> Option<ShimInput> {
        serde_json::from_slice(&std::fs::read(dir.join(INPUT_FILE)).ok()?).ok()
    }
}

/// Entry point of `skiff-agent shim <state-dir>`; `args` is the whole argv
/// (`std::env::args().collect()`; the state dir is the argument after `shim`). Must be called
/// before any other thread exists (before tokio starts). Returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let at = args.iter().position(|a| a == "shim");
    if let Some(i) = at
        && args.get(i + 1).map(String::as_str) == Some("exec")
    {
        return exec::main(&args[i + 2..]);
    }
    let Some(dir) = at.and_then(|i| args.get(i + 1)).map(PathBuf::from) else {
        eprintln!("usage: skiff-agent shim <state-dir>");
        return 2;
    };
    let report = match take_report_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("shim: cannot set up its report pipe: {e}");
            return 1;
        }
    };
    // Daemonize: the parent returns at once (the agent reaps it), the child leads a new
    // session and is re-parented to init, so it outlives the agent.
    // SAFETY: the shim is single-threaded here (the agent dispatches to it before starting
    // any thread), so the child may do anything after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            send_report(report, &format!("error: cannot fork the shim: {e}"));
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    // Do not keep the agent's working directory (and its mount) busy.
    let _ = nix::unistd::chdir("/");
    init_tracing();
    run(&dir, report)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_SHIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .try_init();
}

/// Moves the report pipe (stdout) to a close-on-exec fd and points stdin/stdout at /dev/null,
/// so no container process inherits the pipe.
fn take_report_fd() -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on fd 1 returns a new fd we own, or -1.
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let report = unsafe { OwnedFd::from_raw_fd(fd) };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in [0, 1] {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(report)
}

fn send_report(report: OwnedFd, line: &str) {
    let mut file = std::fs::File::from(report);
    let _ = writeln!(file, "\n{REPORT_PREFIX}{}", line.replace('\n', " "));
}

/// Creates, starts and waits for the container; returns the shim's exit code.
fn run(dir: &Path, report: OwnedFd) -> i32 {
    let mut status = Status::creating();
    if let Err(e) = status.save(dir) {
        send_report(
            report,
            &format!("error: cannot write the container status: {e}"),
        );
        return 1;
    }
    let Some(input) = ShimInput::load(dir) else {
        fail(
            dir,
            &mut status,
            report,
            format!("cannot read {}", dir.join(INPUT_FILE).display()),
        );
        return 1;
    };
    let log = match logs::LogFile::open(&input.log_path, input.log_max_size, input.log_max_files) {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("cannot open the log file {}: {e}", input.log_path.display());
            fail(dir, &mut status, report, msg);
            return 1;
        }
    };
    // Into the container's cgroup2 leaf first, so every container process inherits it and the
    // service load balancer's socket programs apply to them.
    match crate::cgroups::join_unified(&input.cgroup_path, true) {
        Ok(joined) => tracing::debug!(?joined, "cgroup2 placement"),
        Err(e) => {
            let msg = format!("cannot join the container's cgroup2 directory: {e}");
            fail(dir, &mut status, report, msg);
            return 1;
        }
    }
    let (container, out_r, err_r) = match create_and_start(dir, &input) {
        Ok(started) => started,
        Err(message) => {
            fail(dir, &mut status, report, message);
            cleanup_failed(dir, &input);
            return 1;
        }
    };
    let Some(pid) = container.pid() else {
        fail(
            dir,
            &mut status,
            report,
            "libcontainer reported no pid".into(),
        );
        return 1;
    };
    status.phase = Phase::Running;
    status.pid = Some(pid.as_raw());
    status.pid_start = process_start(pid.as_raw());
    status.started_at = Some(Timestamp::now());
    if let Err(e) = status.save(dir) {
        tracing::error!(error = %e, "cannot record the running state");
    }
    send_report(report, "ok");

    // Threads are fine from here on: libcontainer is done creating.
    let copier = logs::spawn_copiers(log, out_r, err_r);
    let (exit_code, signalled) = wait_for(pid);
    let oom_killed = oom_kills(&input.cgroup_path) > 0;
    copier.join();
    delete(container);

    status.phase = Phase::Exited;
    status.exit_code = Some(exit_code);
    status.finished_at = Some(Timestamp::now());
    status.oom_killed = oom_killed;
    if let Some(sig) = signalled {
        status.message = None;
        tracing::info!(id = input.id, signal = %sig, "container killed by signal");
    }
    if let Err(e) = status.save(dir) {
        tracing::error!(error = %e, "cannot record the exit");
        return 1;
    }
    0
}

type Started = (libcontainer::container::Container, OwnedFd, OwnedFd);

fn create_and_start(dir: &Path, input: &ShimInput) -> Result<Started, String> {
    let lc_root = dir.join(LIBCONTAINER_DIR);
    std::fs::create_dir_all(&lc_root).map_err(|e| format!("create {}: {e}", lc_root.display()))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    let mut container = ContainerBuilder::new(input.id.clone(), SyscallType::Linux)
        .with_root_path(&lc_root)
        .map_err(|e| error_chain(&e))?
        .with_executor(executor::CheckedExecutor)
        .with_stdin(null)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_init(dir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| error_chain(&e))?;
    if let Err(e) = container.start() {
        let message = error_chain(&e);
        let _ = container.delete(true);
        return Err(message);
    }
    Ok((container, out_r, err_r))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A user-facing message from libcontainer's error chain: the executable check's
/// `exec: "x": …` if it is in there, else the whole chain.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let joined = parts.join(": ");
    let mut marked = joined.split(executor::MARK);
    if let (Some(_), Some(message)) = (marked.next(), marked.next()) {
        return message.to_string();
    }
    joined
}

/// Records a failed start and reports it to the agent.
fn fail(dir: &Path, status: &mut Status, report: OwnedFd, message: String) {
    tracing::error!(%message, "container start failed");
    status.phase = Phase::Failed;
    status.exit_code = Some(128);
    status.finished_at = Some(Timestamp::now());
    status.message = Some(message.clone());
    let _ = status.save(dir);
    send_report(report, &format!("error: {message}"));
}

/// libcontainer cleans up after a failed create; remove whatever it left.
fn cleanup_failed(dir: &Path, input: &ShimInput) {
    let lc = dir.join(LIBCONTAINER_DIR);
    if lc.join(&input.id).exists() {
        if let Ok(mut c) = libcontainer::container::Container::load(lc.join(&input.id)) {
            let _ = c.delete(true);
        }
        let _ = super::cleanup::remove_cgroup(&input.cgroup_path);
        let _ = std::fs::remove_dir_all(lc.join(&input.id));
    }
}

/// Waits for the container's init (a clone child without SIGCHLD, hence `__WALL`); returns
/// the exit code (128+signal when killed) and the signal.
fn wait_for(pid: Pid) -> (i32, Option<nix::sys::signal::Signal>) {
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => return (code, None),
            Ok(WaitStatus::Signaled(_, sig, _)) => return (128 + sig as i32, Some(sig)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                // Not our child any more (should not happen): poll until it is gone.
                tracing::warn!(error = %e, "waitpid failed; polling for the exit");
                while process_start(pid.as_raw()).is_some() {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                return (255, None);
            }
        }
    }
}

/// How often the kernel OOM-killed a process of the container's memory cgroup.
fn oom_kills(cgroup_path: &str) -> u64 {
    let rel = cgroup_path.trim_start_matches('/');
    let candidates = [
        (
            format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
            "oom_kill",
        ),
        (format!("/sys/fs/cgroup/{rel}/memory.events"), "oom_kill"),
        (
            format!("/sys/fs/cgroup/unified/{rel}/memory.events"),
            "oom_kill",
        ),
    ];
    for (file, key) in candidates {
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix(key).map(str::trim)
                    && let Ok(n) = v.parse()
                {
                    return n;
                }
            }
        }
    }
    0
}

/// libcontainer delete: removes the container's cgroup and libcontainer's state (and with
/// it the notify socket).
fn delete(mut container: libcontainer::container::Container) {
    let root = container.root.clone();
    if let Err(e) = container.delete(true) {
        tracing::warn!(error = %error_chain(&e), "libcontainer delete failed");
    }
    let _ = std::fs::remove_dir_all(root);
}

//! The exec child (`skiff-agent shim exec <state-dir> <timeout-ms> -- <argv…>`): a short-lived
//! single-threaded process that runs one command inside a running container with libcontainer's
//! tenant builder (the container's namespaces, cgroup, user, environment and working dir),
//! waits for it and reports how it ended.
//!
//! Protocol with the agent: the command's stdin/stdout/stderr are this process's fds 3/4/5
//! ([`STDIO_FDS`]; pipes the agent can stream, e.g. for `kubectl exec`); the report is one JSON
//! line ([`ExecReport`]) on fd 6. The child's own fds 0-2 carry only its diagnostics, so nothing
//! but the command writes into the command's streams. A timeout of 0 means none.
//! SIGTERM/SIGINT/SIGHUP to this process kill the command (so the agent can cancel an exec by
//! signalling its child). With the word `tty` (before `--`) the command gets a terminal (see
//! [`super::tty`]): fd 3 feeds it, fd 4 gets its output, fd 5 stays unused, and fd 7 takes
//! resize lines.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::tty::{self, Console, RESIZE_FD};
use super::{LIBCONTAINER_DIR, executor};

/// The fds the command's stdin, stdout and stderr are passed on.
pub const STDIO_FDS: [i32; 3] = [3, 4, 5];
/// The fd the report line is written to.
pub const REPORT_FD: i32 = 6;
/// The lock file (in the state dir) that serializes exec set-ups of one container.
const LOCK_FILE: &str = "exec.lock";
/// Files libcontainer's tenant builder leaves in its container dir.
const TENANT_LEFTOVERS: [&str; 2] = ["tenant-notify-", "tenant-tty-"];

/// How an exec ended, as the child reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecReport {
    /// The command ran and exited (128+n when killed by signal n).
    Exited { exit_code: i32 },
    /// The command was killed because it outlived its timeout.
    TimedOut,
    /// The command was killed because the agent cancelled the exec.
    Cancelled,
    /// The command could not be started.
    Failed { message: String },
}

static CANCELLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_cancel(_: libc::c_int) {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Entry point; `args` are the arguments after `shim exec`. Returns the process exit code
/// (0 when a report was written, whatever the command's own code).
pub fn main(args: &[String]) -> i32 {
    // SAFETY: fds 3-6 are handed to us by the agent; we own them from here on.
    let [report, stdin, stdout, stderr] = [REPORT_FD, STDIO_FDS[0], STDIO_FDS[1], STDIO_FDS[2]]
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    for fd in [&report, &stdin, &stdout, &stderr] {
        // Keep them out of the command (libcontainer passes the stdio ones on explicitly).
        // SAFETY: setting FD_CLOEXEC on an fd we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let outcome = match parse(args) {
        Ok(req) => {
            // SAFETY: in tty mode the agent hands us fd 7 as well.
            let resize = req.tty.then(|| unsafe { OwnedFd::from_raw_fd(RESIZE_FD) });
            if let Some(fd) = &resize {
                // SAFETY: setting FD_CLOEXEC on an fd we own.
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            run(req, [stdin, stdout, stderr], resize)
        }
        Err(message) => ExecReport::Failed { message },
    };
    let mut file = std::fs::File::from(report);
    let line = serde_json::to_string(&outcome).unwrap_or_default();
    if writeln!(file, "{line}").is_err() {
        return 1;
    }
    0
}

/// What the agent asked for.
#[derive(Debug, PartialEq, Eq)]
struct ExecArgs {
    dir: PathBuf,
    timeout: Option<Duration>,
    tty: bool,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Result<ExecArgs, String> {
    let usage =
        || "usage: skiff-agent shim exec <state-dir> <timeout-ms> [tty] -- <argv…>".to_string();
    let [dir, timeout, rest @ ..] = args else {
        return Err(usage());
    };
    let (tty, rest) = match rest {
        [flag, rest @ ..] if flag == "tty" => (true, rest),
        rest => (false, rest),
    };
    let [sep, argv @ ..] = rest else {
        return Err(usage());
    };
    if sep != "--" || argv.is_empty() {
        return Err(usage());
    }
    let ms: u64 = timeout.parse().map_err(|_| usage())?;
    Ok(ExecArgs {
        dir: PathBuf::from(dir),
        timeout: (ms > 0).then(|| Duration::from_millis(ms)),
        tty,
        argv: argv.to_vec(),
    })
}

fn run(req: ExecArgs, stdio: [OwnedFd; 3], resize: Option<OwnedFd>) -> ExecReport {
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // No SA_RESTART: a blocking wait returns EINTR so the cancel is seen at once.
        let action = SigAction::new(
            SigHandler::Handler(on_cancel),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
    // Like the container's own processes, exec'd ones belong in its cgroup2 leaf (services).
    if let Some(input) = super::ShimInput::load(&req.dir)
        && let Err(e) = crate::cgroups::join_unified(&input.cgroup_path, false)
    {
        return ExecReport::Failed {
            message: format!("cannot join the container's cgroup2 directory: {e}"),
        };
    }
    if !req.tty {
        return match start(&req.dir, req.argv, stdio, None) {
            Ok(pid) => wait(pid, req.timeout),
            Err(message) => ExecReport::Failed { message },
        };
    }
    let console = match Console::listen() {
        Ok(c) => c,
        Err(message) => return ExecReport::Failed { message },
    };
    let null = || std::fs::File::open("/dev/null").map(OwnedFd::from);
    let (Ok(n0), Ok(n1), Ok(n2)) = (null(), null(), null()) else {
        return ExecReport::Failed {
            message: "open /dev/null".into(),
        };
    };
    let pid = match start(&req.dir, req.argv, [n0, n1, n2], Some(&console)) {
        Ok(pid) => pid,
        Err(message) => return ExecReport::Failed { message },
    };
    let master = match console.receive_master(Duration::from_secs(10)) {
        Ok(m) => m,
        Err(message) => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = wait(pid, None);
            return ExecReport::Failed { message };
        }
    };
    drop(console);
    // libcontainer is done: a thread is safe from here on.
    let [input, output, _] = stdio;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tty::relay(master, input, output, resize);
        let _ = done_tx.send(());
    });
    let report = wait(pid, req.timeout);
    // The rest of the output, unless something in the container still holds the terminal.
    let _ = done_rx.recv_timeout(Duration::from_millis(500));
    report
}

/// Joins the container with the tenant builder; returns the command's host pid. With a
/// console, the command runs on a terminal whose master is sent there.
fn start(
    dir: &Path,
    argv: Vec<String>,
    stdio: [OwnedFd; 3],
    console: Option<&Console>,
) -> Result<Pid, String> {
    let spec =
        Spec::load(dir.join("config.json")).map_err(|e| format!("no such container: {e}"))?;
    let process = spec.process().clone().unwrap_or_default();
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("bad state dir {}", dir.display()))?
        .to_string();
    let lc_root = dir.join(LIBCONTAINER_DIR);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| format!("open the exec lock: {e}"))?;
    // Serialize set-ups, so cleaning the tenant's leftovers cannot hit a concurrent exec's.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock the container for exec: {e}"))?;
    let built = match console {
        None => build(&lc_root, &id, &process, argv, stdio, None),
        Some(console) => {
            let process_file = tty::write_process(dir, &process, argv.clone())?;
            let terminal = Terminal {
                console: console.path(),
                process: &process_file,
            };
            let built = build(&lc_root, &id, &process, argv, stdio, Some(terminal));
            let _ = std::fs::remove_file(&process_file);
            built
        }
    };
    clean_leftovers(&lc_root.join(&id));
    built
}

/// Where the tenant builder finds the console socket and the terminal process.
struct Terminal<'a> {
    console: &'a Path,
    process: &'a Path,
}

fn build(
    lc_root: &Path,
    id: &str,
    process: &libcontainer::oci_spec::runtime::Process,
    argv: Vec<String>,
    [stdin, stdout, stderr]: [OwnedFd; 3],
    terminal: Option<Terminal<'_>>,
) -> Result<Pid, String> {
    use libcontainer::error::LibcontainerError;
    let not_running = |e: &LibcontainerError| match e {
        LibcontainerError::NoDirectory | LibcontainerError::IncorrectStatus(_) => {
            format!("container {id} is not running")
        }
        e => super::error_chain(e),
    };
    let user = process.user();
    ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(lc_root)
        .map_err(|e| not_running(&e))?
        .with_executor(executor::CheckedExecutor)
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .with_console_socket(terminal.as_ref().map(|t| t.console))
        .as_tenant()
        .with_process(terminal.as_ref().map(|t| t.process))
        .with_container_args(argv)
        .with_cwd(Some(process.cwd().clone()))
        .with_user(Some(user.uid()))
        .with_group(Some(user.gid()))
        .with_additional_gids(user.additional_gids().clone().unwrap_or_default())
        .with_detach(true)
        .build()
        .map_err(|e| not_running(&e))
}

/// Removes the notify (and tty) sockets the tenant builder leaves in the container dir.
fn clean_leftovers(container_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(container_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if TENANT_LEFTOVERS.iter().any(|p| name.starts_with(p)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Waits for the command (a clone child without SIGCHLD, hence `__WALL`), killing it on
/// timeout or cancel.
fn wait(pid: Pid, timeout: Option<Duration>) -> ExecReport {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pause = Duration::from_millis(1);
    let mut killed: Option<ExecReport> = None;
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                return killed.unwrap_or(ExecReport::Exited { exit_code: code });
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return killed.unwrap_or(ExecReport::Exited {
                    exit_code: 128 + sig as i32,
                });
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return ExecReport::Failed {
                    message: format!("waiting for the command failed: {e}"),
                };
            }
        }
        if killed.is_none() {
            let why = if CANCELLED.load(Ordering::SeqCst) {
                Some(ExecReport::Cancelled)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(ExecReport::TimedOut)
            } else {
                None
            };
            if let Some(why) = why {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                killed = Some(why);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let req = parse(&args(&["/d", "1500", "--", "echo", "hi"])).unwrap();
        assert_eq!(req.dir, PathBuf::from("/d"));
        assert_eq!(req.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(req.argv, args(&["echo", "hi"]));
        assert!(!req.tty);
        assert_eq!(parse(&args(&["/d", "0", "--", "x"])).unwrap().timeout, None);
        let tty = parse(&args(&["/d", "0", "tty", "--", "sh"])).unwrap();
        assert!(tty.tty);
        assert_eq!(tty.argv, args(&["sh"]));
        assert!(parse(&args(&["/d", "0", "tty"])).is_err());
        assert!(parse(&args(&["/d", "0", "--"])).is_err());
        assert!(parse(&args(&["/d", "x", "--", "true"])).is_err());
        assert!(parse(&args(&["/d", "0", "echo"])).is_err());
    }

    #[test]
    fn reports_round_trip_as_json_lines() {
        for r in [
            ExecReport::Exited { exit_code: 3 },
            ExecReport::TimedOut,
            ExecReport::Cancelled,
            ExecReport::Failed {
                message: "no".into(),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<ExecReport>(&line).unwrap(), r);
        }
    }
}

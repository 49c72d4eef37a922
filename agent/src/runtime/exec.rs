//! Exec into a running container, from the agent's side: starts the exec child
//! (`skiff-agent shim exec`, see [`super::shim::exec`]) with the command's stdio on pipes (fds
//! 3-5 of the child) and its report on fd 6, and either hands the pipes out as streams ([`Runtime::spawn_exec`], for
//! `kubectl exec`) or collects the output ([`Runtime::exec`], for probes).

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::unix::pipe;
use tokio::process::Child;

use super::shim::exec::{ExecReport, REPORT_FD, STDIO_FDS};
use super::shim::tty::RESIZE_FD;
use super::{ContainerState, Runtime, RuntimeError, io_err, valid_id};

/// How much of each output stream [`Runtime::exec`] keeps (the rest is read and dropped).
pub const MAX_OUTPUT: usize = 1 << 20;
/// How long the agent waits beyond the timeout for the exec child to report.
const CHILD_GRACE: Duration = Duration::from_secs(10);
/// How long output is still read after the command ended (a background process that kept
/// the pipe open must not hold the caller).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code (128+n when killed by signal n).
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A command running in a container, its stdio as streams.
#[derive(Debug)]
pub struct ExecSession {
    /// The command's stdin (when asked for), stdout and stderr.
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    /// With a terminal: takes `"<cols> <rows>\n"` lines (see [`ExecSession::resize`]).
    pub resize: Option<pipe::Sender>,
    id: String,
    timeout: Option<Duration>,
    child: Child,
    report: Option<OwnedFd>,
}

impl ExecSession {
    /// Waits for the command; its exit code, or why it did not exit by itself.
    pub async fn wait(mut self) -> Result<i32, RuntimeError> {
        let limit = self.timeout.map(|t| t + CHILD_GRACE);
        let waited = match limit {
            Some(limit) => tokio::time::timeout(limit, self.child.wait()).await,
            None => Ok(self.child.wait().await),
        };
        let status = match waited {
            Ok(status) => status.map_err(io_err("wait for the exec child"))?,
            Err(_) => {
                let _ = self.child.start_kill();
                return Err(RuntimeError::ExecFailed {
                    id: self.id.clone(),
                    message: "the exec child did not answer".into(),
                });
            }
        };
        let report = self.report.take().map(read_report).unwrap_or_default();
        match serde_json::from_str::<ExecReport>(report.trim()) {
            Ok(ExecReport::Exited { exit_code }) => Ok(exit_code),
            Ok(ExecReport::TimedOut) => Err(RuntimeError::ExecTimeout {
                id: self.id.clone(),
                timeout: self.timeout.unwrap_or_default(),
            }),
            Ok(ExecReport::Cancelled) => Err(RuntimeError::ExecFailed {
                id: self.id.clone(),
                message: "cancelled".into(),
            }),
            Ok(ExecReport::Failed { message }) => Err(RuntimeError::ExecFailed {
                id: self.id.clone(),
                message,
            }),
            Err(_) => Err(RuntimeError::ExecFailed {
                id: self.id.clone(),
                message: format!("the exec child ended ({status}) without a report"),
            }),
        }
    }

    /// Sets the terminal's size (no-op without a terminal).
    pub async fn resize(&mut self, cols: u16, rows: u16) {
        use tokio::io::AsyncWriteExt;
        if let Some(w) = self.resize.as_mut()
            && w.write_all(format!("{cols} {rows}\n").as_bytes())
                .await
                .is_err()
        {
            self.resize = None;
        }
    }

    /// Asks the child to kill the command (it reports `cancelled`).
    pub fn cancel(&self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        // A dropped session must not leave the command running.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.cancel();
        }
    }
}

/// The report pipe's content once the child has exited (it then holds the only writer).
fn read_report(fd: OwnedFd) -> String {
    use std::io::Read;
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

impl Runtime {
    /// Starts `argv` in the running container `id` (its namespaces, cgroup, user, environment
    /// and working dir). Stdout and stderr are pipes; stdin is a pipe when `stdin` is set, else
    /// /dev/null. The command is killed after `timeout` (None: never).
    pub fn spawn_exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Option<Duration>,
        stdin: bool,
    ) -> Result<ExecSession, RuntimeError> {
        self.spawn_exec_with(id, argv, timeout, stdin, false)
    }

    /// [`Runtime::spawn_exec`], optionally on a terminal (`tty`): then the output (stdout and
    /// stderr together, as a terminal shows them) comes on `stdout`, `stderr` reaches EOF at
    /// once, and [`ExecSession::resize`] sets the size.
    pub fn spawn_exec_with(
        &self,
        id: &str,
        argv: &[String],
        timeout: Option<Duration>,
        stdin: bool,
        tty: bool,
    ) -> Result<ExecSession, RuntimeError> {
        if !valid_id(id) {
            return Err(RuntimeError::InvalidSpec(format!(
                "bad container id {id:?}"
            )));
        }
        if argv.is_empty() || argv[0].is_empty() {
            return Err(RuntimeError::InvalidSpec("no command to run".into()));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(RuntimeError::InvalidSpec(
                "arguments may not contain NUL".into(),
            ));
        }
        if !matches!(self.state(id), ContainerState::Running { .. }) {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| io_err("create an exec pipe")(e.into()))
        };
        let (report_r, report_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w): (OwnedFd, Option<OwnedFd>) = if stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").map_err(io_err("open /dev/null"))?;
            (null.into(), None)
        };
        // The resize pipe; without a terminal fd 7 is /dev/null, which the child ignores.
        let (resize_r, resize_w): (OwnedFd, Option<OwnedFd>) = if tty {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").map_err(io_err("open /dev/null"))?;
            (null.into(), None)
        };
        let ms = timeout.map_or(0, |t| t.as_millis().max(1) as u64);
        let mut cmd = tokio::process::Command::new(&self.agent_exe);
        cmd.args(&self.shim_prefix)
            .args(["shim", "exec"])
            .arg(self.dir(id))
            .arg(ms.to_string())
            .args(tty.then_some("tty"))
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let sources = [
            in_r.as_raw_fd(),
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
            report_w.as_raw_fd(),
            resize_r.as_raw_fd(),
        ];
        let targets = [
            STDIO_FDS[0],
            STDIO_FDS[1],
            STDIO_FDS[2],
            REPORT_FD,
            RESIZE_FD,
        ];
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2, close).
        unsafe {
            cmd.pre_exec(move || {
                // Move every source out of the target range first, so no dup2 clobbers one.
                let mut high = [0; 5];
                for (h, src) in high.iter_mut().zip(sources) {
                    *h = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 64);
                    if *h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (h, target) in high.into_iter().zip(targets) {
                    // dup2 leaves the target without FD_CLOEXEC: the child inherits it.
                    if libc::dup2(h, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(h);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(io_err(format!("start {}", self.agent_exe.display())))?;
        drop((in_r, out_w, err_w, report_w, resize_r));
        let stream = |e| io_err("set up an exec stream")(e);
        Ok(ExecSession {
            stdin: in_w
                .map(pipe::Sender::from_owned_fd)
                .transpose()
                .map_err(stream)?,
            stdout: Some(pipe::Receiver::from_owned_fd(out_r).map_err(stream)?),
            stderr: Some(pipe::Receiver::from_owned_fd(err_r).map_err(stream)?),
            resize: resize_w
                .map(pipe::Sender::from_owned_fd)
                .transpose()
                .map_err(stream)?,
            id: id.to_string(),
            timeout,
            child,
            report: Some(report_r),
        })
    }

    /// Runs `argv` in the running container `id` to its end and collects its output (up to
    /// [`MAX_OUTPUT`] bytes of each stream); a command still running after `timeout` is killed
    /// and reported as [`RuntimeError::ExecTimeout`].
    pub async fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut session = self.spawn_exec(id, argv, Some(timeout), false)?;
        let (out, err) = (session.stdout.take(), session.stderr.take());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let read_out = tokio::spawn(collect(out, rx.clone()));
        let read_err = tokio::spawn(collect(err, rx));
        let exit = session.wait().await;
        let _ = tx.send(true);
        let stdout = read_out.await.unwrap_or_default();
        let stderr = read_err.await.unwrap_or_default();
        Ok(ExecOutput {
            exit_code: exit?,
            stdout,
            stderr,
        })
    }
}

/// Reads a stream to EOF (keeping [`MAX_OUTPUT`] bytes), or until [`DRAIN_GRACE`] after
/// `done` turned true.
async fn collect<R: AsyncRead + Unpin>(
    stream: Option<R>,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let read = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, stream.read(&mut chunk))
                    .await
                    .ok(),
                None => Some(stream.read(&mut chunk).await),
            }
        };
        tokio::select! {
            r = read => match r {
                Some(Ok(n)) if n > 0 => {
                    let room = MAX_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
                _ => return kept,
            },
            changed = done.changed(), if deadline.is_none() => {
                if changed.is_err() || *done.borrow() {
                    deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
            }
        }
    }
}

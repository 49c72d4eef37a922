//! The cluster's processes: spawning with a log file, pid files, identity checks, stopping.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::paths::Paths;
use crate::run::note;

/// One of the long-running programs `up` starts.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    /// Short name: pid file `.skiff/run/<name>.pid`, log `.skiff/logs/<name>.log`.
    pub name: &'static str,
    /// File name of the executable, checked against `/proc/<pid>/cmdline`.
    pub exe: &'static str,
    /// How long it gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

pub const REGISTRY: Program = Program {
    name: "registry",
    exe: "docker-registry",
    grace: Duration::from_secs(10),
};
pub const CONTROL: Program = Program {
    name: "control",
    exe: "skiff-control",
    grace: Duration::from_secs(15),
};
pub const AGENT: Program = Program {
    name: "agent",
    exe: "skiff-agent",
    grace: Duration::from_secs(30),
};

/// In the order `down` stops them.
pub const ALL_STOP_ORDER: [Program; 3] = [AGENT, CONTROL, REGISTRY];

impl Program {
    pub fn pid_file(&self, paths: &Paths) -> PathBuf {
        paths.run_dir().join(format!("{}.pid", self.name))
    }

    pub fn log_file(&self, paths: &Paths) -> PathBuf {
        paths.logs_dir().join(format!("{}.log", self.name))
    }

    /// Starts `cmd` in its own process group (so a terminal's Ctrl-C reaches only xtask, which
    /// then stops the programs in order), output appended to its log, and writes its pid file.
    pub fn spawn(&self, paths: &Paths, cmd: &mut Command) -> Result<Child> {
        let log_path = self.log_file(paths);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.exe))?;
        let pid_file = self.pid_file(paths);
        fs::write(&pid_file, format!("{}\n", child.id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        note(format!(
            "started {} (pid {}, log {})",
            self.exe,
            child.id(),
            log_path.display()
        ));
        Ok(child)
    }

    /// The pid of this program if its pid file names a live process that really is this
    /// program started for this repository's `.skiff/`.
    pub fn running(&self, paths: &Paths) -> Option<i32> {
        let text = fs::read_to_string(self.pid_file(paths)).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (alive(pid) && is_program(pid, self.exe, &paths.skiff)).then_some(pid)
    }

    /// Stops the recorded process (SIGTERM, then SIGKILL after the grace period) and removes
    /// the pid file. Returns whether a process was stopped.
    pub fn stop(&self, paths: &Paths) -> Result<bool> {
        let stopped = match self.running(paths) {
            Some(pid) => {
                note(format!("stopping {} (pid {pid})", self.exe));
                terminate(pid, self.grace)?;
                true
            }
            None => false,
        };
        let pid_file = self.pid_file(paths);
        if pid_file.exists() {
            fs::remove_file(&pid_file)
                .with_context(|| format!("removing {}", pid_file.display()))?;
        }
        Ok(stopped)
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `/proc/<pid>/cmdline` is `exe` (by file name) with an argument below `state_dir`.
pub fn is_program(pid: i32, exe: &str, state_dir: &Path) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Some(argv0) = args.first() else {
        return false;
    };
    let exe_matches = Path::new(argv0).file_name().is_some_and(|n| n == exe);
    let state = state_dir.to_string_lossy();
    exe_matches && args[1..].iter().any(|a| a.starts_with(state.as_ref()))
}

/// SIGTERM, wait up to `grace`, then SIGKILL and wait a little more.
pub fn terminate(pid: i32, grace: Duration) -> Result<()> {
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    if wait_gone(pid, grace) {
        return Ok(());
    }
    note(format!(
        "pid {pid} still running after {grace:?}; sending SIGKILL"
    ));
    let _ = kill(target, Signal::SIGKILL);
    if wait_gone(pid, Duration::from_secs(5)) {
        Ok(())
    } else {
        anyhow::bail!("pid {pid} survived SIGKILL")
    }
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kills the test's process even if an assertion fails first.
    struct KillOnDrop(i32);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if alive(self.0) {
                let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
            }
        }
    }

    #[test]
    fn recognises_a_program_by_name_and_state_dir_and_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".skiff");
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(alive(pid));
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        assert!(
            wait_gone(pid, Duration::from_secs(5)),
            "a zombie counts as gone"
        );
        child.wait().unwrap();

        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.1; done",
                "sh",
            ])
            .arg(state.join("x"))
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let _guard = KillOnDrop(pid);
        // Right after spawn the kernel may still be setting up the new argv.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_program(pid, "sh", &state));
        assert!(!is_program(pid, "sh", &dir.path().join("other")));
        assert!(!is_program(pid, "skiff-agent", &state));
        // Reap on another thread so `terminate` sees the process disappear.
        let waiter = std::thread::spawn(move || child.wait());
        terminate(pid, Duration::from_secs(5)).unwrap();
        waiter.join().unwrap().unwrap();
        assert!(!alive(pid));
    }
}

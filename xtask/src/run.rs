//! Running commands and waiting: progress lines, checked child processes, bounded polling.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths::{Paths, Profile};

/// Prints a progress line saying what xtask is doing now.
pub fn step(msg: impl AsRef<str>) {
    println!("==> {}", msg.as_ref());
}

/// Prints an indented detail line under the current step.
pub fn note(msg: impl AsRef<str>) {
    println!("    {}", msg.as_ref());
}

/// Renders a command for progress output.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    note(format!("$ {shown}"));
    let status = cmd
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout if it exits 0, `None` otherwise (or if it is missing).
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo build --workspace` for `profile`.
pub fn cargo_build(paths: &Paths, profile: Profile) -> Result<()> {
    step(format!("building the workspace ({})", profile.dir_name()));
    run(cargo(paths)
        .args(["build", "--workspace"])
        .args(profile.cargo_args()))
}

/// A `cargo` command run from the workspace root, using the same cargo that runs xtask.
pub fn cargo(paths: &Paths) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&paths.root);
    cmd
}

/// The last `lines` lines of a log file, for reporting a child that died.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Like [`run`], but kills the command and fails if it takes longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let shown = describe(cmd);
    note(format!("$ {shown}"));
    let mut child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("`{shown}` failed ({status})");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {timeout:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Test harness: throwaway network namespaces, a whole cluster (registry, control plane, agent)
//! started inside one, kubectl runs against it, and checks that nothing is left behind.

pub mod cluster;
pub mod lab;
pub mod netns;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary built by `cargo build --workspace`: from `$SKIFF_BIN_DIR` if set (benchmarks use
/// release builds), else the profile the tests were built with.
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SKIFF_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` (cargo xtask test does)",
        path.display()
    );
    path
}

/// Whether privileged end-to-end tests can run here (root, kubectl, the registry binary).
pub fn privileged_env() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    for tool in [
        "/usr/bin/kubectl",
        "/usr/bin/docker-registry",
        "/usr/bin/nsenter",
        "/usr/sbin/ip",
        "/bin/busybox",
    ] {
        if !std::path::Path::new(tool).exists() {
            return Err(format!("needs {tool} (cargo xtask setup installs it)"));
        }
    }
    Ok(())
}

/// Polls `check` every 250 ms until it returns Some, or fails after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with a time limit (killing it past that).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap_or_default();
    let mut stderr = err_reader.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {timeout:?})"));
    }
    Output {
        ok: status.is_some_and(|s| s.success()),
        stdout,
        stderr,
    }
}

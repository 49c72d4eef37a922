//! Starting a container: checking the spec, preparing the state dir (overlay root, OCI
//! bundle, shim input) and running the shim until it reports.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::{ContainerSpec, RuntimeError, cleanup, io_err, rootfs, shim, spec, status, valid_id};

/// How long `start` waits for the shim to report (image roots on slow disks, big rlimits…).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn validate(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    if !valid_id(&spec.id) {
        return Err(RuntimeError::InvalidSpec(format!(
            "container id {:?} must be 1-200 characters of [A-Za-z0-9_.-]",
            spec.id
        )));
    }
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err(RuntimeError::InvalidSpec("no command to run".into()));
    }
    if spec.rootfs_layers.is_empty() {
        return Err(RuntimeError::InvalidSpec("the image has no layers".into()));
    }
    if !spec.cgroup_path.starts_with('/') || spec.cgroup_path.split('/').any(|c| c == "..") {
        return Err(RuntimeError::InvalidSpec(format!(
            "cgroup path {:?} must be absolute",
            spec.cgroup_path
        )));
    }
    for (_, target, _) in &spec.extra_mounts {
        if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
            return Err(RuntimeError::InvalidSpec(format!(
                "mount target {target:?} must be an absolute path"
            )));
        }
    }
    if spec
        .args
        .iter()
        .chain(spec.env.iter().flat_map(|(k, v)| [k, v]))
        .any(|s| s.contains('\0'))
    {
        return Err(RuntimeError::InvalidSpec(
            "arguments and environment may not contain NUL".into(),
        ));
    }
    Ok(())
}

/// Creates the state dir, mounts the overlay root and writes the bundle and the shim's input.
pub(super) fn prepare(
    dir: &Path,
    spec: &ContainerSpec,
    (log_max_size, log_max_files): (u64, u32),
) -> Result<(), RuntimeError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        Err(e) => return Err(io_err(format!("create {}", dir.display()))(e)),
    }
    let result = (|| {
        rootfs::mount_overlay(dir, &spec.rootfs_layers).map_err(|e| RuntimeError::Rootfs {
            id: spec.id.clone(),
            message: e.to_string(),
        })?;
        let oci = spec::build(spec).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        let config = serde_json::to_vec_pretty(&oci).map_err(|e| RuntimeError::Io {
            context: "serialize config.json".into(),
            source: std::io::Error::other(e),
        })?;
        status::write_atomic(&dir.join("config.json"), &config)
            .map_err(io_err("write config.json"))?;
        let input = shim::ShimInput {
            id: spec.id.clone(),
            log_path: spec.log_path.clone(),
            cgroup_path: spec.cgroup_path.clone(),
            log_max_size,
            log_max_files,
        };
        status::write_json(&dir.join(shim::INPUT_FILE), &input)
            .map_err(io_err("write shim.json"))?;
        Ok(())
    })();
    if result.is_err() {
        // Leave nothing half-made behind: the caller may retry with the same id.
        let _ = cleanup::remove_container_dir(dir, &spec.id);
    }
    result
}

/// Starts the shim and reads its one-line report (`skiff-shim: ok` or
/// `skiff-shim: error: <message>`).
pub(super) fn run_shim(
    exe: &Path,
    prefix: &[String],
    dir: &Path,
    id: &str,
) -> Result<(), RuntimeError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))
        .map_err(io_err("open shim.log"))?;
    let mut child = std::process::Command::new(exe)
        .args(prefix)
        .arg("shim")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(io_err(format!("start the shim {}", exe.display())))?;
    let mut report = String::new();
    let read = match child.stdout.take() {
        // The daemonized shim holds the pipe until it has started the container (or failed);
        // a shim that never answers is caught by the status check below.
        Some(mut out) => read_with_timeout(&mut out, &mut report, START_TIMEOUT),
        None => Ok(()),
    };
    let _ = child.wait();
    if let Err(e) = read {
        tracing::warn!(id, error = %e, "reading the shim's report failed");
    }
    let report = report
        .rsplit_once(shim::REPORT_PREFIX)
        .map(|(_, r)| r.trim());
    if report == Some("ok") {
        return Ok(());
    }
    let message = match report.and_then(|r| r.strip_prefix("error: ")) {
        Some(message) => message.to_string(),
        None => {
            let tail = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").to_string();
            format!("the container shim exited without a report: {last}")
        }
    };
    Err(RuntimeError::CannotRun {
        id: id.to_string(),
        message,
    })
}

/// Reads the pipe to EOF, giving up after `timeout` (the read end is then simply dropped).
fn read_with_timeout(
    out: &mut std::process::ChildStdout,
    buf: &mut String,
    timeout: Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + timeout;
    let mut bytes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "shim report timed out",
            ));
        }
        let mut pfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = out.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    buf.push_str(&String::from_utf8_lossy(&bytes));
    Ok(())
}

//! `cargo xtask setup`: installs what building and running skiff needs, checking first.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run::{note, output, run, step};

/// Debian packages skiff needs to build (LLVM for bpf-linker, libseccomp for libcontainer,
/// protoc for tonic), to run (runc, iproute2, nsenter, ethtool) and to stage images
/// (busybox-static, docker-registry, skopeo); etcd-server backs the etcd store; python3-venv
/// holds the official Python client the tests drive the API with.
pub const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "libseccomp-dev",
    "pkg-config",
    "protobuf-compiler",
    "busybox-static",
    "docker-registry",
    "runc",
    "iproute2",
    "util-linux",
    "ethtool",
    "etcd-server",
    "skopeo",
    "python3-venv",
];

/// The official Kubernetes Python client the tests use (its minor follows the API's, 1.33).
const PYTHON_CLIENT: &str = "kubernetes==33.1.0";

const BPF_LINKER_VERSION: &str = "0.13.0";
const NIGHTLY: &str = "nightly";

/// Brings the machine up to date; returns whether anything had to be done.
pub fn setup() -> Result<bool> {
    step("setup: checking prerequisites");
    let mut did = Vec::new();
    if apt_packages()? {
        did.push("installed apt packages");
    }
    if rust_src()? {
        did.push("added rust-src to the nightly toolchain");
    }
    if bpf_linker()? {
        did.push("installed bpf-linker");
    }
    if bpffs()? {
        did.push("mounted bpffs on /sys/fs/bpf");
    }
    if did.is_empty() {
        note("setup: everything was already in place");
    } else {
        note(format!("setup: {}", did.join(", ")));
    }
    Ok(!did.is_empty())
}

/// Makes `<target>/python-client`, a venv with the official Python client from PyPI; returns
/// whether it had to be made.
pub fn python_client(target: &std::path::Path) -> Result<bool> {
    let venv = target.join("python-client");
    let python = venv.join("bin/python");
    let version = PYTHON_CLIENT.rsplit_once("==").map_or("", |(_, v)| v);
    let check = format!("import kubernetes, sys; sys.exit(kubernetes.__version__ != '{version}')");
    if python.exists() && output(Command::new(&python).args(["-c", &check])).is_some() {
        return Ok(false);
    }
    step(format!(
        "setup: installing the Python client ({PYTHON_CLIENT}) into {}",
        venv.display()
    ));
    run(Command::new("/usr/bin/python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", PYTHON_CLIENT]))
        .context("pip install of the Python client")?;
    Ok(true)
}

/// Packages from `wanted` that dpkg does not report as installed.
fn missing_packages(wanted: &[&str]) -> Vec<String> {
    // dpkg-query exits non-zero if any package is unknown; its stdout still lists the rest.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\\n"])
        .args(wanted)
        .output();
    let listed = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    wanted
        .iter()
        .filter(|pkg| {
            !listed.lines().any(|line| {
                let mut it = line.split_whitespace();
                // "pkg:amd64" for multi-arch packages.
                let name = it.next().unwrap_or("");
                let name = name.split(':').next().unwrap_or("");
                name == **pkg && it.next() == Some("ii")
            })
        })
        .map(|p| p.to_string())
        .collect()
}

fn apt_packages() -> Result<bool> {
    let missing = missing_packages(APT_PACKAGES);
    if missing.is_empty() {
        note(format!(
            "apt: all {} packages installed",
            APT_PACKAGES.len()
        ));
        return Ok(false);
    }
    require_root("install apt packages")?;
    step(format!("apt: installing {}", missing.join(" ")));
    run(&mut apt("update"))?;
    run(apt("install").arg("-y").args(&missing))?;
    let still = missing_packages(APT_PACKAGES);
    if !still.is_empty() {
        bail!("apt-get did not install: {}", still.join(" "));
    }
    Ok(true)
}

fn apt(verb: &str) -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.arg(verb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null());
    cmd
}

fn rust_src() -> Result<bool> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .with_context(|| {
        format!("`rustup component list --toolchain {NIGHTLY}` failed; is the {NIGHTLY} toolchain installed?")
    })?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        note(format!("rustup: rust-src present for {NIGHTLY}"));
        return Ok(false);
    }
    step(format!("rustup: adding rust-src to {NIGHTLY}"));
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;
    Ok(true)
}

fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

fn bpf_linker() -> Result<bool> {
    let bin = cargo_bin_dir().join("bpf-linker");
    let version = output(Command::new(&bin).arg("--version")).unwrap_or_default();
    let want = format!("bpf-linker {BPF_LINKER_VERSION}");
    if version.trim() == want {
        note(format!("{want} present"));
        return Ok(false);
    }
    step(format!(
        "installing {want} (found: {}; takes about a minute)",
        if version.is_empty() {
            "none"
        } else {
            version.trim()
        }
    ));
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
                "llvm-22",
            ]),
    )?;
    Ok(true)
}

fn bpffs_mounted() -> Result<bool> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == "/sys/fs/bpf" && f[2] == "bpf"
    }))
}

fn bpffs() -> Result<bool> {
    if bpffs_mounted()? {
        note("bpffs mounted on /sys/fs/bpf");
        return Ok(false);
    }
    require_root("mount bpffs")?;
    step("mounting bpffs on /sys/fs/bpf");
    std::fs::create_dir_all("/sys/fs/bpf").context("creating /sys/fs/bpf")?;
    nix::mount::mount(
        Some("bpf"),
        "/sys/fs/bpf",
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .context("mount -t bpf bpf /sys/fs/bpf")?;
    Ok(true)
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("setup needs root to {what}; run it as root");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_reports_an_installed_package_and_a_missing_one() {
        // dpkg itself is always installed on Debian; the other name cannot exist.
        let missing = missing_packages(&["dpkg", "skiff-no-such-package"]);
        assert_eq!(missing, vec!["skiff-no-such-package".to_string()]);
    }
}

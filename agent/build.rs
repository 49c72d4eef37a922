//! Builds agent-ebpf (nightly, bpfel-unknown-none, build-std=core) with aya-build into OUT_DIR.
//!
//! The object lands at `$OUT_DIR/skiff-agent-ebpf`; `lb::EBPF_OBJECT` embeds it.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

const SETUP_HINT: &str = "run `cargo xtask setup` to install the eBPF toolchain";

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ebpf_dir = manifest_dir.join("../agent-ebpf");
    let common_dir = manifest_dir.join("../agent-common");
    // aya-build watches the eBPF crate itself; the shared layouts live next door.
    println!("cargo:rerun-if-changed={}", common_dir.display());

    if let Err(problem) = check_toolchain() {
        println!("cargo:warning=cannot build the eBPF programs: {problem}; {SETUP_HINT}");
        eprintln!("error: cannot build the eBPF programs: {problem}\n{SETUP_HINT}");
        return ExitCode::FAILURE;
    }

    let ebpf_dir = ebpf_dir.to_str().expect("workspace path is UTF-8");
    let package = aya_build::Package {
        name: "skiff-agent-ebpf",
        root_dir: ebpf_dir,
        ..Default::default()
    };
    match aya_build::build_ebpf([package], aya_build::Toolchain::Nightly) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: building skiff-agent-ebpf failed: {e:#}\n(if the toolchain is incomplete, {SETUP_HINT})"
            );
            ExitCode::FAILURE
        }
    }
}

/// Checks what aya-build needs but reports badly: bpf-linker on PATH and nightly's rust-src.
fn check_toolchain() -> Result<(), String> {
    if find_in_path("bpf-linker").is_none() {
        return Err("bpf-linker is not on PATH".into());
    }
    let output = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !output.status.success() {
        return Err("the nightly toolchain is not installed".into());
    }
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let core_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if !core_src.exists() {
        return Err("the nightly toolchain lacks the rust-src component".into());
    }
    Ok(())
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

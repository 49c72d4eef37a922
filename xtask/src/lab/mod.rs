//! `cargo xtask lab up --nodes N` / `lab down`: the multi-node lab (topology and teardown live
//! in `skiff_tests::lab`, shared with the end-to-end tests) run in the foreground, all state in
//! `.skiff/lab/`, every kernel object named `skiff-lab-*` so `down` finds it after a crash.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use skiff_tests::lab::{self, Binaries, CLIENT_IP, CONTROL_IP, HOST_IP, Lab, LabConfig};

use crate::paths::{Paths, Profile};
use crate::proc::{AGENT, CONTROL};
use crate::run::{cargo_build, note, step};
use crate::setup;

/// Prefix of every namespace, cgroup, pin and link the lab makes.
const PREFIX: &str = "skiff-lab";

fn state_dir(paths: &Paths) -> PathBuf {
    paths.skiff.join("lab")
}

/// Where `up` records the binaries it ran (for `down`).
fn bin_dir_file(paths: &Paths) -> PathBuf {
    paths.skiff.join("lab-bin-dir")
}

/// Builds (unless `bin_dir` is given), starts a lab of `nodes` nodes and serves until Ctrl-C
/// or SIGTERM, then takes it down.
pub fn up(paths: &Paths, profile: Profile, bin_dir: Option<PathBuf>, nodes: usize) -> Result<()> {
    let running = lab::leftovers(PREFIX, &state_dir(paths));
    if !running.is_empty() {
        bail!(
            "a lab (or what is left of one) exists: {}; remove it with `cargo xtask lab down`",
            running.join(", ")
        );
    }
    setup::setup()?;
    let bin_dir = match bin_dir {
        Some(dir) => dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?,
        None => {
            cargo_build(paths, profile)?;
            paths.bin_dir(profile)
        }
    };
    let bins = Binaries {
        control: bin_dir.join(CONTROL.exe),
        agent: bin_dir.join(AGENT.exe),
        xtask: std::env::current_exe().context("finding the xtask binary")?,
    };
    for bin in [&bins.control, &bins.agent] {
        anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    }
    std::fs::create_dir_all(&paths.skiff)?;
    std::fs::write(bin_dir_file(paths), bin_dir.to_string_lossy().as_bytes())?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    step(format!(
        "starting a {nodes}-node lab (registry and control plane at {CONTROL_IP})"
    ));
    let mut lab = Lab::start(LabConfig {
        prefix: PREFIX.into(),
        nodes,
        state_dir: state_dir(paths),
        host_link: true,
        bins,
    })?;
    for node in &lab.nodes {
        note(format!(
            "{} at {} (netns {}), pod CIDR {}",
            node.layout.name, node.ip, node.ns.name, node.pod_cidr
        ));
    }
    print_usage(&lab);
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Err(e) = lab.check_running() {
            break Err(e);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    step("taking the lab down");
    drop(lab);
    result
}

fn print_usage(lab: &Lab) {
    let host_if = lab.host_link().unwrap_or_default();
    println!();
    println!("The lab is up. In another shell:");
    println!("    export KUBECONFIG={}", lab.kubeconfig.display());
    println!("    kubectl get nodes -o wide");
    println!(
        "kubectl reaches {CONTROL_IP}:6443 from the host through {host_if} ({HOST_IP}/32, one /32 route; no forwarding)."
    );
    println!("The external client ({CLIENT_IP}) reaches nodes only by their lab addresses:");
    println!("    ip netns exec {} sh", lab.client.name);
    println!(
        "A node's shell: ip netns exec {}-node1 sh. Logs: {}/logs. Ctrl-C (or `cargo xtask lab down`) stops the lab.",
        PREFIX,
        lab.config.state_dir.display()
    );
}

/// Removes every trace of a lab, also one whose `up` crashed or was killed.
pub fn down(paths: &Paths) -> Result<()> {
    step("taking the lab down");
    let recorded = std::fs::read_to_string(bin_dir_file(paths))
        .ok()
        .map(|d| PathBuf::from(d.trim()));
    let agent = recorded
        .into_iter()
        .chain([
            paths.bin_dir(Profile::Debug),
            paths.bin_dir(Profile::Release),
        ])
        .map(|dir| dir.join(AGENT.exe))
        .find(|b| b.exists())
        .context("no skiff-agent binary to clean up with; run `cargo xtask build`")?;
    let errors = lab::down(PREFIX, &state_dir(paths), &agent);
    let left = lab::leftovers(PREFIX, &state_dir(paths));
    if !errors.is_empty() || !left.is_empty() {
        bail!(
            "the lab is not fully gone: {}",
            errors
                .into_iter()
                .chain(left)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    note("no lab namespaces, links, cgroups, pins, mounts or processes are left");
    Ok(())
}

//! Taking a lab down — also one left by a crash: every name is derived from the lab's prefix,
//! so agents, their cleanup, processes, cgroups, bpffs pins, mounts, namespaces and the host
//! link are all found again without any record of the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::topology::{LabNs, namespaces_with_prefix, pids_in};
use crate::cluster::remove_cgroup_tree;
use crate::{Output, run_with_timeout};

/// Where node `index`'s agent keeps its state and names its host-wide things.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    pub index: usize,
    /// The node's name in the cluster, e.g. `node1`.
    pub name: String,
    /// The node's network namespace, `<prefix>-node<i>`.
    pub ns_name: String,
    /// `--root-dir`: `<state>/node<i>/agent`.
    pub root_dir: PathBuf,
    /// `--netns-dir`: `<state>/node<i>/netns`.
    pub netns_dir: PathBuf,
    /// `--cgroup-root`: `<prefix>-node<i>`.
    pub cgroup_root: String,
    /// `--bpffs-dir`: `/sys/fs/bpf/<prefix>-node<i>`.
    pub bpffs_dir: PathBuf,
}

impl NodeLayout {
    pub fn new(prefix: &str, state_dir: &Path, index: usize) -> NodeLayout {
        let name = format!("node{index}");
        NodeLayout {
            index,
            ns_name: format!("{prefix}-{name}"),
            root_dir: state_dir.join(&name).join("agent"),
            netns_dir: state_dir.join(&name).join("netns"),
            cgroup_root: format!("{prefix}-{name}"),
            bpffs_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}-{name}")),
            name,
        }
    }

    /// The agent flags naming where this node's things live (shared by `run` and `cleanup`).
    pub fn node_args(&self, cmd: &mut Command) {
        cmd.arg("--root-dir")
            .arg(&self.root_dir)
            .args(["--cgroup-root", &self.cgroup_root])
            // The lab's nodes share the host's cgroup2 tree: each attaches on its own subtree.
            .arg("--lb-cgroup-root")
            .arg(format!("/sys/fs/cgroup/unified/{}", self.cgroup_root))
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir)
            .arg("--netns-dir")
            .arg(&self.netns_dir);
    }
}

/// The host link's name for a lab prefix.
pub fn host_if(prefix: &str) -> String {
    format!("{prefix}-host")
}

/// Every node index a lab with this prefix left a trace of (namespace, state dir, cgroup, pin).
fn node_indexes(prefix: &str, state_dir: &Path) -> Vec<usize> {
    let node_prefix = format!("{prefix}-node");
    let mut names: Vec<String> = namespaces_with_prefix(&node_prefix);
    for dir in std::iter::once(PathBuf::from("/sys/fs/bpf")).chain(cgroup_hierarchies()) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let mut found: Vec<usize> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&node_prefix))
        .filter_map(|i| i.parse().ok())
        .collect();
    for entry in std::fs::read_dir(state_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(i) = name.strip_prefix("node").and_then(|i| i.parse().ok()) {
            found.push(i);
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

fn cgroup_hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Whether `pid` runs `skiff-agent run` (and is not, say, a shim it started).
fn is_agent(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|b| *b == 0);
    let exe = args.next().unwrap_or_default();
    exe.ends_with(b"skiff-agent") && args.next() == Some(b"run".as_slice())
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn wait_gone(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline
        && pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `skiff-agent cleanup` for one node inside its namespace (a fresh empty one of the same
/// name if it is gone, so the cleanup never touches the root namespace's links or routes).
fn cleanup_node(node: &NodeLayout, agent_bin: &Path) -> Result<(), String> {
    let ns = if Path::new("/run/netns").join(&node.ns_name).exists() {
        LabNs {
            name: node.ns_name.clone(),
        }
    } else {
        LabNs::create(&node.ns_name).map_err(|e| format!("{e:#}"))?
    };
    let mut cmd = ns.command(agent_bin);
    cmd.arg("cleanup");
    node.node_args(&mut cmd);
    let out: Output = run_with_timeout(cmd, Duration::from_secs(60));
    if out.ok {
        Ok(())
    } else {
        Err(format!(
            "skiff-agent cleanup for {}: {}",
            node.name,
            out.stderr.trim()
        ))
    }
}

/// Takes down every trace of the lab named `prefix` whose state is in `state_dir`: stops the
/// agents (SIGTERM) and runs their cleanup, kills every process left in the lab's namespaces,
/// removes the cgroups, pins and mounts, then the namespaces and the host link. Keeps going
/// past failures; returns what could not be done.
pub fn down(prefix: &str, state_dir: &Path, agent_bin: &Path) -> Vec<String> {
    use nix::sys::signal::Signal;
    let mut errors = Vec::new();
    let nodes: Vec<NodeLayout> = node_indexes(prefix, state_dir)
        .into_iter()
        .map(|i| NodeLayout::new(prefix, state_dir, i))
        .collect();
    // Agents first, gracefully, so they do not restart pods the cleanup is removing.
    let agents: Vec<i32> = nodes
        .iter()
        .flat_map(|n| pids_in(&n.ns_name))
        .filter(|p| is_agent(*p))
        .collect();
    for pid in &agents {
        signal(*pid, Signal::SIGTERM);
    }
    wait_gone(&agents, Duration::from_secs(10));
    for pid in &agents {
        signal(*pid, Signal::SIGKILL);
    }
    for node in &nodes {
        if let Err(e) = cleanup_node(node, agent_bin) {
            errors.push(e);
        }
    }
    let namespaces = namespaces_with_prefix(&format!("{prefix}-"));
    let rest: Vec<i32> = namespaces.iter().flat_map(|n| pids_in(n)).collect();
    for pid in &rest {
        signal(*pid, Signal::SIGKILL);
    }
    wait_gone(&rest, Duration::from_secs(5));
    for node in &nodes {
        remove_cgroup_tree(&node.cgroup_root);
        if node.bpffs_dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&node.bpffs_dir)
        {
            errors.push(format!("removing {}: {e}", node.bpffs_dir.display()));
        }
    }
    unmount_under(state_dir);
    for ns in &namespaces {
        // Another teardown (the foreground `lab up` noticing its programs died) may have
        // removed it first: only a namespace still there is a failure.
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(std::process::Stdio::null())
            .status();
        if Path::new("/run/netns").join(ns).exists() {
            errors.push(format!("ip netns del {ns} failed"));
        }
    }
    let link = host_if(prefix);
    if link.len() <= 15 && Path::new("/sys/class/net").join(&link).exists() {
        let _ = Command::new("ip")
            .args(["link", "del", &link])
            .stderr(std::process::Stdio::null())
            .status();
    }
    errors
}

/// Lazily unmounts everything mounted under `dir` (pod netns files, overlay roots), deepest
/// first.
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Everything of the lab `prefix` still on the machine: namespaces, the host link, cgroups,
/// bpffs pins, mounts under `state_dir`, and skiff processes started from `state_dir`.
pub fn leftovers(prefix: &str, state_dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = namespaces_with_prefix(&format!("{prefix}-"))
        .into_iter()
        .map(|n| format!("netns {n}"))
        .collect();
    let link = host_if(prefix);
    if Path::new("/sys/class/net").join(&link).exists() {
        found.push(format!("link {link}"));
    }
    let marker = format!("{prefix}-node");
    for hierarchy in cgroup_hierarchies() {
        for entry in std::fs::read_dir(&hierarchy)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&marker) {
                found.push(format!("cgroup {}", entry.path().display()));
            }
        }
    }
    for entry in std::fs::read_dir("/sys/fs/bpf")
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(&marker) {
            found.push(format!("bpffs {}", entry.path().display()));
        }
    }
    let root = state_dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines().filter(|l| l.contains(&root)) {
        found.push(format!("mount {line}"));
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&root) && !cmdline.contains("cargo") {
            found.push(format!(
                "process {}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

//! The lab's network: named namespaces, the switch bridge, veth pairs, addresses, sysctls and
//! routes, all made with `ip` and `nsenter`. No namespace ever gets a default route.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The lab subnet's first three octets; every lab address is `10.99.0.x/24`.
pub const SUBNET: [u8; 3] = [10, 99, 0];
/// The control plane's (and registry's) lab address.
pub const CONTROL_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The external client's lab address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);
/// The host end of the optional host link.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 254);
/// The lab link's name inside the control, node and client namespaces.
pub const LAB_IF: &str = "lab0";
/// The switch's bridge.
const SWITCH_BRIDGE: &str = "br0";
/// The most nodes a lab has (their addresses are 10.99.0.11 upward).
pub const MAX_NODES: usize = 50;

/// Node `index` (1-based)'s lab address.
pub fn node_ip(index: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + index).expect("at most MAX_NODES nodes");
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], last)
}

/// A named network namespace (`/run/netns/<name>`); the lab's teardown removes it.
#[derive(Debug, Clone)]
pub struct LabNs {
    pub name: String,
}

impl LabNs {
    /// Creates the namespace (replacing a stale one of the same name) with loopback up.
    pub fn create(name: &str) -> Result<LabNs> {
        if std::path::Path::new("/run/netns").join(name).exists() {
            let _ = sh(Command::new("ip").args(["netns", "del", name]));
        }
        sh(Command::new("ip").args(["netns", "add", name]))?;
        let ns = LabNs { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The path for `nsenter --net=`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command running `program` in this namespace (network only; mounts and cgroups stay
    /// the host's, which the agent needs).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `ip -n <ns> args…`, failing on a non-zero exit; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        sh(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Sets a sysctl inside this namespace only (/proc/sys/net is per network namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        sh(self
            .command("sysctl")
            .args(["-qw", &format!("{key}={value}")]))?;
        Ok(())
    }
}

/// Runs `cmd`, failing with its stderr unless it exits 0; returns stdout.
pub fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes the switch: a namespace with bridge `br0`, up, no addresses, no forwarding.
pub fn make_switch(name: &str) -> Result<LabNs> {
    let switch = LabNs::create(name)?;
    switch.ip(&["link", "add", SWITCH_BRIDGE, "type", "bridge"])?;
    switch.ip(&["link", "set", SWITCH_BRIDGE, "up"])?;
    Ok(switch)
}

/// Plugs `ns` into the switch: a veth `port` (switch side, in br0) ↔ `lab0` in `ns` with
/// `ip/24`. The only route this gives `ns` is the subnet's link route.
pub fn plug(switch: &LabNs, port: &str, ns: &LabNs, ip: Ipv4Addr) -> Result<()> {
    switch.ip(&[
        "link", "add", port, "type", "veth", "peer", "name", LAB_IF, "netns", &ns.name,
    ])?;
    switch.ip(&["link", "set", port, "master", SWITCH_BRIDGE, "up"])?;
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", LAB_IF])?;
    ns.ip(&["link", "set", LAB_IF, "up"])?;
    Ok(())
}

/// Links the host to the switch with a veth `host_if`: the host end gets `HOST_IP/32` and one
/// `/32` link route to the control address — no other route in the root namespace changes, and
/// forwarding there stays off.
pub fn plug_host(switch: &LabNs, host_if: &str) -> Result<()> {
    let _ = sh(Command::new("ip").args(["link", "del", host_if]));
    sh(Command::new("ip").args([
        "link",
        "add",
        host_if,
        "type",
        "veth",
        "peer",
        "name",
        "host",
        "netns",
        &switch.name,
    ]))?;
    switch.ip(&["link", "set", "host", "master", SWITCH_BRIDGE, "up"])?;
    sh(Command::new("ip").args(["addr", "add", &format!("{HOST_IP}/32"), "dev", host_if]))?;
    sh(Command::new("ip").args(["link", "set", host_if, "up"]))?;
    sh(Command::new("ip").args([
        "route",
        "add",
        &format!("{CONTROL_IP}/32"),
        "dev",
        host_if,
        "src",
        &HOST_IP.to_string(),
    ]))?;
    Ok(())
}

/// In `ns`, routes `cidr` via `gateway` on the lab link (replacing an older route).
pub fn route_via(ns: &LabNs, cidr: &str, gateway: Ipv4Addr) -> Result<()> {
    ns.ip(&[
        "route",
        "replace",
        cidr,
        "via",
        &gateway.to_string(),
        "dev",
        LAB_IF,
    ])?;
    Ok(())
}

/// The names of every namespace in `ip netns list` that starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The pids of every process in namespace `name`.
pub fn pids_in(name: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

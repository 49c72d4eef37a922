//! The OCI runtime spec (`config.json`) for a container: runc-like defaults (namespaces,
//! capabilities, mounts, masked paths, rlimits) plus the container's own settings.

use std::collections::HashSet;
use std::path::PathBuf;

use libcontainer::oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::ContainerSpec;

/// The capabilities runc and containerd give a container by default.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The `PATH` a container gets when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the OCI spec; `root.path` is `rootfs` relative to the bundle (the state dir).
pub fn build(spec: &ContainerSpec) -> Spec {
    // Every value below is valid for its builder, so building cannot fail; fall back to the
    // default spec rather than panicking if a future oci-spec disagrees.
    try_build(spec).unwrap_or_else(|e| {
        tracing::error!(error = %e, "building the OCI spec failed");
        Spec::default()
    })
}

fn try_build(spec: &ContainerSpec) -> Result<Spec, libcontainer::oci_spec::OciSpecError> {
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let cwd = if spec.working_dir.is_empty() {
        "/".to_string()
    } else {
        spec.working_dir.clone()
    };
    let caps: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    // A non-root process keeps the bounding set only, as with containerd.
    let held = if spec.uid == 0 {
        caps.clone()
    } else {
        HashSet::new()
    };
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps))
        .set_permitted(Some(held.clone()))
        .set_effective(Some(held))
        .set_inheritable(Some(HashSet::new()))
        .set_ambient(Some(HashSet::new()));
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(spec.uid).gid(spec.gid).build()?)
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(nofile_limit())
                .soft(nofile_limit())
                .build()?,
        ])
        .no_new_privileges(false)
        .build()?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces(spec)?)
        .cgroups_path(PathBuf::from(&spec.cgroup_path))
        .resources(resources(spec)?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let mut builder = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .process(process)
        .mounts(mounts(spec)?)
        .linux(linux);
    if !spec.hostname.is_empty() {
        builder = builder.hostname(spec.hostname.clone());
    }
    builder.build()
}

/// Open files: 1048576 like containerd, capped at what this process may hand out (raising a
/// hard limit needs CAP_SYS_RESOURCE, which a sandboxed agent may lack).
fn nofile_limit() -> u64 {
    const WANT: u64 = 1_048_576;
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard.min(WANT))
}

fn namespaces(
    spec: &ContainerSpec,
) -> Result<Vec<LinuxNamespace>, libcontainer::oci_spec::OciSpecError> {
    let mut list = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        list.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    if let Some(netns) = &spec.netns_path {
        list.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(netns.clone())
                .build()?,
        );
    }
    Ok(list)
}

fn resources(spec: &ContainerSpec) -> Result<LinuxResources, libcontainer::oci_spec::OciSpecError> {
    let r = &spec.resources;
    // Deny all devices; libcontainer adds the standard allow list (null, zero, tty, …).
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    let mut builder = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(limit) = r.memory_limit {
        builder = builder.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(shares) = r.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(quota) = r.cpu_quota {
            cpu = cpu.quota(quota);
        }
        if let Some(period) = r.cpu_period {
            cpu = cpu.period(period);
        }
        builder = builder.cpu(cpu.build()?);
    }
    if let Some(limit) = r.pids_limit {
        builder = builder.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    builder.build()
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, libcontainer::oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
}

fn mounts(spec: &ContainerSpec) -> Result<Vec<Mount>, libcontainer::oci_spec::OciSpecError> {
    let mut list = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for (host, target, ro) in &spec.extra_mounts {
        let host = host.to_string_lossy();
        let mut options = vec!["rbind", "rprivate"];
        if *ro {
            options.push("ro");
        }
        list.push(mount(target, "bind", &host, &options)?);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerResources;

    fn sample() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            rootfs_layers: vec!["/l".into()],
            args: vec!["echo".into(), "hi".into()],
            env: vec![("A".into(), "b".into())],
            working_dir: String::new(),
            hostname: "pod-a".into(),
            netns_path: Some("/run/netns/x".into()),
            cgroup_path: "/skiff/pod1/c1".into(),
            log_path: "/tmp/x.log".into(),
            resources: ContainerResources {
                cpu_shares: Some(512),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                memory_limit: Some(64 << 20),
                pids_limit: Some(100),
            },
            uid: 1000,
            gid: 1000,
            extra_mounts: vec![("/var/pod/etc/hosts".into(), "/etc/hosts".into(), true)],
        }
    }

    #[test]
    fn spec_carries_the_container_settings() {
        let oci = build(&sample());
        let json = serde_json::to_value(&oci).unwrap();
        let process = &json["process"];
        assert_eq!(process["args"], serde_json::json!(["echo", "hi"]));
        assert_eq!(process["cwd"], "/");
        assert_eq!(process["user"]["uid"], 1000);
        let env: Vec<String> = serde_json::from_value(process["env"].clone()).unwrap();
        assert!(env.contains(&"A=b".to_string()));
        assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
        assert_eq!(process["noNewPrivileges"], false);
        // Non-root: no effective capabilities, full bounding set.
        assert_eq!(process["capabilities"]["effective"], serde_json::json!([]));
        assert_eq!(
            process["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(json["hostname"], "pod-a");
        assert_eq!(json["root"]["path"], "rootfs");
        let linux = &json["linux"];
        assert_eq!(linux["cgroupsPath"], "/skiff/pod1/c1");
        assert_eq!(linux["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(linux["resources"]["cpu"]["shares"], 512);
        assert_eq!(linux["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(linux["resources"]["pids"]["limit"], 100);
        let ns: Vec<_> = linux["namespaces"].as_array().unwrap().clone();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n["path"] == "/run/netns/x")
        );
        let mounts = json["mounts"].as_array().unwrap();
        let hosts = mounts
            .iter()
            .find(|m| m["destination"] == "/etc/hosts")
            .unwrap();
        assert_eq!(hosts["source"], "/var/pod/etc/hosts");
        assert!(hosts["options"].as_array().unwrap().contains(&"ro".into()));
        assert!(mounts.iter().any(|m| m["destination"] == "/proc"));
    }

    #[test]
    fn host_network_has_no_network_namespace_and_root_keeps_capabilities() {
        let mut spec = sample();
        spec.netns_path = None;
        spec.uid = 0;
        spec.env.push(("PATH".into(), "/bin".into()));
        let json = serde_json::to_value(build(&spec)).unwrap();
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
        assert_eq!(
            json["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        let env: Vec<String> = serde_json::from_value(json["process"]["env"].clone()).unwrap();
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }
}

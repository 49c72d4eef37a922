//! The OCI runtime spec (`config.json`) for a container: runc-like defaults (namespaces,
//! capabilities, mounts, masked paths, rlimits) plus the container's own settings.

use std::path::PathBuf;

use libcontainer::oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::ContainerSpec;
use super::security::{self, SeccompMode};

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

/// Why a container's settings cannot become an OCI spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Capability(#[from] security::UnknownCapability),
    #[error("building the OCI spec: {0}")]
    Oci(#[from] libcontainer::oci_spec::OciSpecError),
}

/// Builds the OCI spec; `root.path` is `rootfs` relative to the bundle (the state dir).
pub fn build(spec: &ContainerSpec) -> Result<Spec, SpecError> {
    let sec = &spec.security;
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let cwd = if spec.working_dir.is_empty() {
        "/".to_string()
    } else {
        spec.working_dir.clone()
    };
    let caps = security::capability_set(sec)?;
    let capabilities = security::capabilities(&caps, spec.uid);
    let mut user = UserBuilder::default().uid(spec.uid).gid(spec.gid);
    if !sec.additional_gids.is_empty() {
        user = user.additional_gids(sec.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user.build()?)
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
        .no_new_privileges(sec.no_new_privs && !sec.privileged)
        .build()?;
    // Privileged containers and `procMount: Unmasked` see /proc and /sys whole, as with runc.
    let masked = !sec.privileged && !sec.unmasked_proc;
    let list = |paths: &[&str]| -> Vec<String> {
        if masked {
            paths.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        }
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(spec)?)
        .cgroups_path(PathBuf::from(&spec.cgroup_path))
        .resources(resources(spec)?)
        .masked_paths(list(&MASKED_PATHS))
        .readonly_paths(list(&READONLY_PATHS));
    if sec.privileged {
        linux = linux.devices(security::host_devices());
    } else if sec.seccomp == SeccompMode::RuntimeDefault {
        linux = linux.seccomp(security::runtime_default(&caps)?);
    }
    let linux = linux.build()?;
    let mut builder = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(sec.read_only_root)
                .build()?,
        )
        .process(process)
        .mounts(mounts(spec)?)
        .linux(linux);
    if !spec.hostname.is_empty() {
        builder = builder.hostname(spec.hostname.clone());
    }
    Ok(builder.build()?)
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
    // A privileged container may use every device.
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(spec.security.privileged)
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
            if spec.security.privileged {
                &["nosuid", "noexec", "nodev", "rw"]
            } else {
                &["nosuid", "noexec", "nodev", "ro"]
            },
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
            security: Default::default(),
        }
    }

    #[test]
    fn spec_carries_the_container_settings() {
        let oci = build(&sample()).unwrap();
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
        let json = serde_json::to_value(build(&spec).unwrap()).unwrap();
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

    #[test]
    fn security_settings_reach_the_spec() {
        let mut spec = sample();
        spec.uid = 0;
        spec.security = crate::runtime::SecuritySpec {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["NET_BIND_SERVICE".into()],
            read_only_root: true,
            no_new_privs: true,
            seccomp: SeccompMode::RuntimeDefault,
            additional_gids: vec![2000],
            ..Default::default()
        };
        let json = serde_json::to_value(build(&spec).unwrap()).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(
            json["process"]["capabilities"]["effective"],
            serde_json::json!(["CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(
            json["process"]["user"]["additionalGids"],
            serde_json::json!([2000])
        );
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(!json["linux"]["maskedPaths"].as_array().unwrap().is_empty());

        spec.security = crate::runtime::SecuritySpec {
            privileged: true,
            seccomp: SeccompMode::RuntimeDefault,
            ..Default::default()
        };
        let json = serde_json::to_value(build(&spec).unwrap()).unwrap();
        assert!(
            json["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len()
                > 30
        );
        assert!(
            json["linux"].get("seccomp").is_none(),
            "privileged: unconfined"
        );
        assert_eq!(json["linux"]["maskedPaths"], serde_json::json!([]));
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], true);
        assert!(!json["linux"]["devices"].as_array().unwrap().is_empty());

        spec.security = crate::runtime::SecuritySpec {
            cap_add: vec!["NOPE".into()],
            ..Default::default()
        };
        assert!(matches!(build(&spec), Err(SpecError::Capability(_))));
    }
}

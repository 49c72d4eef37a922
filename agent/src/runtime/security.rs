//! A container's security settings as the OCI spec carries them: the capability sets (runc's
//! default set with the pod's add/drop, or everything when privileged), the built-in
//! RuntimeDefault seccomp profile, and the host devices a privileged container sees.

use std::collections::HashSet;

use libcontainer::oci_spec::OciSpecError;
use libcontainer::oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, LinuxSeccomp,
    LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};
use serde::{Deserialize, Serialize};

/// The capabilities runc and containerd give a container by default.
pub const DEFAULT_CAPS: [Capability; 14] = [
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

/// Every capability Linux 5.9+ defines, in capability-number order (bit 0 = CHOWN).
const ALL_CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Which seccomp filter the container runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompMode {
    /// No filter (Kubernetes' default when no profile is set).
    #[default]
    Unconfined,
    /// The built-in profile ([`runtime_default`]).
    RuntimeDefault,
}

/// The security settings of one container, resolved from the pod by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySpec {
    /// All capabilities, host devices, no seccomp, no masked paths, writable /sys.
    pub privileged: bool,
    /// Capability names (`NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`) added to the default set.
    pub cap_add: Vec<String>,
    /// Capability names removed from the default set (`ALL` drops them all).
    pub cap_drop: Vec<String>,
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
    pub seccomp: SeccompMode,
    /// `procMount: Unmasked`: no masked or read-only /proc paths.
    pub unmasked_proc: bool,
    /// supplementalGroups and fsGroup.
    pub additional_gids: Vec<u32>,
}

/// A capability name Linux does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

fn is_all(name: &str) -> bool {
    name.eq_ignore_ascii_case("ALL")
}

/// Parses `NET_ADMIN` / `CAP_NET_ADMIN` (any case).
pub fn parse_capability(name: &str) -> Result<Capability, UnknownCapability> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| UnknownCapability(name.to_string()))
}

/// This process's bounding set (`CapBnd` of /proc/self/status), a bit per capability number.
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Every capability this node can hand out: all Linux defines that the agent itself holds in
/// its bounding set (a sandboxed agent may lack some; asking for those fails the start), as
/// containerd does for privileged containers.
fn all_caps() -> HashSet<Capability> {
    let held = own_bounding_set();
    ALL_CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| held & (1 << bit) != 0)
        .filter_map(|(_, n)| parse_capability(n).ok())
        .collect()
}

/// The bounding set: the default set, minus drops, plus adds (containerd's order: `drop: [ALL]`
/// with `add: [X]` leaves exactly X).
pub fn capability_set(sec: &SecuritySpec) -> Result<HashSet<Capability>, UnknownCapability> {
    if sec.privileged {
        return Ok(all_caps());
    }
    let mut caps: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    for name in &sec.cap_drop {
        if is_all(name) {
            caps.clear();
        } else {
            caps.remove(&parse_capability(name)?);
        }
    }
    for name in &sec.cap_add {
        if is_all(name) {
            caps = all_caps();
        } else {
            caps.insert(parse_capability(name)?);
        }
    }
    Ok(caps)
}

/// The process capabilities: root holds the whole set; any other user only the bounding set,
/// as with containerd (no ambient capabilities).
pub fn capabilities(caps: &HashSet<Capability>, uid: u32) -> LinuxCapabilities {
    let held = if uid == 0 {
        caps.clone()
    } else {
        HashSet::new()
    };
    let mut out = LinuxCapabilities::default();
    out.set_bounding(Some(caps.clone()))
        .set_permitted(Some(held.clone()))
        .set_effective(Some(held))
        .set_inheritable(Some(HashSet::new()))
        .set_ambient(Some(HashSet::new()));
    out
}

/// System calls the RuntimeDefault profile refuses with EPERM, each with the capability that
/// would re-allow it (as containerd's default profile grants them to containers holding it).
/// Everything else is allowed: a deny list of the calls that break out of a container, change
/// the whole machine or are rarely used and historically buggy.
const DENIED: &[(Option<Capability>, &[&str])] = &[
    (
        Some(Capability::SysAdmin),
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "setns",
            "unshare",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
            "bpf",
            "perf_event_open",
            "syslog",
            "clone3",
        ],
    ),
    (
        Some(Capability::SysModule),
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
    ),
    (
        Some(Capability::SysBoot),
        &["reboot", "kexec_load", "kexec_file_load"],
    ),
    (
        Some(Capability::SysTime),
        &[
            "settimeofday",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "stime",
        ],
    ),
    (Some(Capability::SysPacct), &["acct"]),
    (Some(Capability::SysRawio), &["iopl", "ioperm"]),
    (Some(Capability::DacReadSearch), &["open_by_handle_at"]),
    (Some(Capability::SysTtyConfig), &["vhangup"]),
    (
        Some(Capability::SysPtrace),
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
    ),
    (
        None,
        &[
            "swapon",
            "swapoff",
            "add_key",
            "request_key",
            "keyctl",
            "userfaultfd",
            "nfsservctl",
            "uselib",
            "sysfs",
            "_sysctl",
            "ustat",
            "vm86",
            "vm86old",
        ],
    ),
];

/// The RuntimeDefault profile for a container holding `caps`.
pub fn runtime_default(caps: &HashSet<Capability>) -> Result<LinuxSeccomp, OciSpecError> {
    let names: Vec<String> = DENIED
        .iter()
        .filter(|(cap, _)| cap.is_none_or(|c| !caps.contains(&c)))
        .flat_map(|(_, names)| names.iter().map(|n| n.to_string()))
        .collect();
    let mut syscalls = vec![
        LinuxSyscallBuilder::default()
            .names(names)
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::EPERM as u32)
            .build()?,
    ];
    if !caps.contains(&Capability::SysAdmin) {
        // glibc falls back to clone(2) only on ENOSYS.
        if let Some(first) = syscalls.first_mut() {
            let names: Vec<String> = first
                .names()
                .iter()
                .filter(|n| *n != "clone3")
                .cloned()
                .collect();
            first.set_names(names);
        }
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls)
        .build()
}

/// The host's device nodes directly under `/dev` (and `/dev/*/`), for a privileged container.
pub fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            // /dev/pts, /dev/shm, /dev/mqueue are the container's own mounts.
            if ft.is_dir() && dir.as_os_str() == "/dev" {
                let name = entry.file_name();
                if !matches!(name.to_str(), Some("pts" | "shm" | "mqueue" | "fd")) {
                    dirs.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path.as_os_str() == "/dev/console" || path.as_os_str() == "/dev/ptmx" {
                continue;
            }
            let rdev = meta.rdev();
            let device = LinuxDeviceBuilder::default()
                .path(path)
                .typ(typ)
                .major(libc::major(rdev) as i64)
                .minor(libc::minor(rdev) as i64)
                .file_mode(meta.mode() & 0o7777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build();
            if let Ok(device) = device {
                out.push(device);
            }
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_all_then_add_leaves_only_the_added() {
        let sec = SecuritySpec {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["NET_ADMIN".into(), "CAP_chown".into()],
            ..Default::default()
        };
        let caps = capability_set(&sec).unwrap();
        assert_eq!(
            caps,
            [Capability::NetAdmin, Capability::Chown]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn default_set_with_drops_and_bad_names() {
        let sec = SecuritySpec {
            cap_drop: vec!["NET_RAW".into()],
            ..Default::default()
        };
        let caps = capability_set(&sec).unwrap();
        assert_eq!(caps.len(), 13);
        assert!(!caps.contains(&Capability::NetRaw));
        let bad = SecuritySpec {
            cap_add: vec!["FLY".into()],
            ..Default::default()
        };
        assert_eq!(
            capability_set(&bad).unwrap_err(),
            UnknownCapability("FLY".into())
        );
        let privileged = SecuritySpec {
            privileged: true,
            cap_drop: vec!["ALL".into()],
            ..Default::default()
        };
        let all = capability_set(&privileged).unwrap();
        assert_eq!(all.len() as u32, own_bounding_set().count_ones().min(41));
        assert!(
            all.contains(&Capability::SysAdmin) && all.contains(&Capability::CheckpointRestore)
        );
    }

    #[test]
    fn runtime_default_denies_mount_unless_sys_admin() {
        let plain: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
        let profile = serde_json::to_value(runtime_default(&plain).unwrap()).unwrap();
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
        let eperm = &profile["syscalls"][0];
        assert_eq!(eperm["errnoRet"], libc::EPERM);
        let names: Vec<String> = serde_json::from_value(eperm["names"].clone()).unwrap();
        for n in [
            "mount",
            "reboot",
            "kexec_load",
            "init_module",
            "keyctl",
            "ptrace",
        ] {
            assert!(names.contains(&n.to_string()), "{n} not denied");
        }
        assert!(!names.contains(&"clone3".to_string()));
        assert_eq!(profile["syscalls"][1]["names"][0], "clone3");
        assert_eq!(profile["syscalls"][1]["errnoRet"], libc::ENOSYS);

        let mut admin = plain.clone();
        admin.insert(Capability::SysAdmin);
        let profile = serde_json::to_value(runtime_default(&admin).unwrap()).unwrap();
        let names: Vec<String> =
            serde_json::from_value(profile["syscalls"][0]["names"].clone()).unwrap();
        assert!(!names.contains(&"mount".to_string()));
        assert!(names.contains(&"reboot".to_string()));
        assert_eq!(profile["syscalls"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn host_devices_include_null() {
        let devices = host_devices();
        let null = devices
            .iter()
            .find(|d| d.path().as_os_str() == "/dev/null")
            .expect("/dev/null listed");
        assert_eq!((null.major(), null.minor()), (1, 3));
    }
}

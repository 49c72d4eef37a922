//! Builds what the runtime runs for one container of a pod: argv from the image and the pod,
//! environment (see `env.rs`), user, resources, volume mounts and the pod's /etc files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

use super::objects::PodObjects;
use crate::cgroups::{milli_cpu_to_quota, milli_cpu_to_shares};
use crate::images::Image;
use crate::runtime::{ContainerResources, ContainerSpec};

/// A container whose configuration cannot be turned into a process
/// (Kubernetes reports these as `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum ContainerConfigError {
    /// The image and the pod together give no command to run.
    #[error("no command specified")]
    NoCommand,
    /// A referenced ConfigMap does not exist (and the reference is not optional).
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist (and the reference is not optional).
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A key reference names a key the object does not have.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// A resourceFieldRef names a resource the downward API does not expose.
    #[error("unsupported container resource : {0:?}")]
    UnknownResource(String),
    /// A resourceFieldRef or downwardAPI item names a container the pod does not have.
    #[error("container {0:?} not found in the pod")]
    NoSuchContainer(String),
    /// A volumeMount names a volume the pod does not declare (or that is not set up).
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    NoSuchVolume { volume: String, container: String },
    /// A volumeMount's subPath is absolute, climbs out of the volume, or cannot be created.
    #[error("invalid subPath {sub_path:?} of volume {volume:?}: {reason}")]
    BadSubPath {
        volume: String,
        sub_path: String,
        reason: String,
    },
    /// A fieldRef path Kubernetes does not define.
    #[error("env var {name}: unsupported fieldRef {path:?}")]
    UnknownField { name: String, path: String },
    /// The image names a user that is not numeric.
    #[error("image user {0:?} is not numeric (named users are not supported yet)")]
    NamedUser(String),
    /// The securityContext cannot be honoured (runAsNonRoot, unknown capability, …); the
    /// message is the kubelet's.
    #[error("{0}")]
    Security(String),
}

/// The per-pod facts a container needs.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    pub node_name: &'a str,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub netns_path: Option<PathBuf>,
    pub pod_cgroup: &'a str,
    /// Directory holding the pod's hosts, resolv.conf and hostname files.
    pub etc_dir: &'a Path,
    /// The ConfigMaps and Secrets the pod references, as read for this sync.
    pub objects: &'a PodObjects,
    /// Each set-up volume's directory on the host, by volume name.
    pub volumes: &'a HashMap<String, super::volumes::MountedVolume>,
}

/// The argv Kubernetes runs: `command` replaces the image's entrypoint, `args` its cmd.
pub fn argv(container: &Container, image: &Image) -> Vec<String> {
    match (&container.command, &container.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            cmd.iter().chain(args.iter().flatten()).cloned().collect()
        }
        (_, Some(args)) if !args.is_empty() => image
            .config
            .entrypoint
            .iter()
            .chain(args)
            .cloned()
            .collect(),
        _ => image
            .config
            .entrypoint
            .iter()
            .chain(&image.config.cmd)
            .cloned()
            .collect(),
    }
}

/// The pod's hostname: `spec.hostname`, else its name.
pub fn hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
}

/// CPU shares, quota and memory limit as the kubelet derives them from requests and limits.
pub fn resources(container: &Container) -> ContainerResources {
    let res = container.resources.clone().unwrap_or_default();
    let get = |m: &Option<std::collections::BTreeMap<String, Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k).cloned())
    };
    let millis = |q: Quantity| {
        parse_cpu_millis(&q)
            .ok()
            .and_then(|m| u64::try_from(m).ok())
    };
    let cpu_limit = get(&res.limits, "cpu").and_then(millis);
    let cpu_request = get(&res.requests, "cpu").and_then(millis).or(cpu_limit);
    let memory_limit = get(&res.limits, "memory")
        .and_then(|q| parse_bytes(&q).ok())
        .filter(|b| *b > 0);
    const PERIOD: u64 = 100_000;
    let cpu_quota = cpu_limit.and_then(|m| milli_cpu_to_quota(m, PERIOD));
    ContainerResources {
        cpu_shares: Some(milli_cpu_to_shares(cpu_request.unwrap_or(0))),
        cpu_period: cpu_quota.map(|_| PERIOD),
        cpu_quota,
        memory_limit,
        pids_limit: None,
    }
}

/// Writes the pod's /etc/hosts, /etc/resolv.conf and /etc/hostname under `etc_dir`.
pub fn write_etc_files(
    etc_dir: &Path,
    pod: &Pod,
    pod_ip: Option<&str>,
    cluster_dns: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(etc_dir)?;
    let name = hostname(pod);
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file (skiff).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(ip) = pod_ip {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    std::fs::write(etc_dir.join("hosts"), hosts)?;
    let resolv = format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {cluster_dns}\noptions ndots:5\n"
    );
    std::fs::write(etc_dir.join("resolv.conf"), resolv)?;
    std::fs::write(etc_dir.join("hostname"), format!("{name}\n"))
}

/// Everything the runtime needs to start attempt `attempt` of `container`.
pub fn spec(
    ctx: &PodContext<'_>,
    container: &Container,
    image: &Image,
    id: String,
    log_path: PathBuf,
) -> Result<ContainerSpec, ContainerConfigError> {
    let args = argv(container, image);
    if args.is_empty() {
        return Err(ContainerConfigError::NoCommand);
    }
    let super::security::Resolved { uid, gid, security } =
        super::security::resolve(ctx.pod, container, image)?;
    let working_dir = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut extra_mounts: Vec<(PathBuf, String, bool)> = ["hosts", "resolv.conf", "hostname"]
        .iter()
        .map(|f| (ctx.etc_dir.join(f), format!("/etc/{f}"), false))
        .collect();
    extra_mounts.extend(super::volumes::container_mounts(ctx.volumes, container)?);
    Ok(ContainerSpec {
        cgroup_path: format!("{}/{}", ctx.pod_cgroup.trim_end_matches('/'), id),
        id,
        rootfs_layers: image.layers.clone(),
        args,
        env: super::env::environment(ctx, container, image)?,
        working_dir,
        hostname: hostname(ctx.pod),
        netns_path: ctx.netns_path.clone(),
        log_path,
        resources: resources(container),
        uid,
        gid,
        extra_mounts,
        security,
    })
}

//! Builds what the runtime runs for one container of a pod: argv from the image and the pod,
//! environment, user, resources, and the pod's /etc files.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

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
    /// An environment variable source this agent does not support yet.
    #[error("env var {name}: {what} is not supported yet")]
    UnsupportedEnv { name: String, what: String },
    /// A fieldRef path Kubernetes does not define.
    #[error("env var {name}: unsupported fieldRef {path:?}")]
    UnknownField { name: String, path: String },
    /// The image names a user that is not numeric.
    #[error("image user {0:?} is not numeric (named users are not supported yet)")]
    NamedUser(String),
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

fn field_value(
    ctx: &PodContext<'_>,
    name: &str,
    path: &str,
) -> Result<String, ContainerConfigError> {
    let meta = &ctx.pod.metadata;
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ctx.pod_ip.unwrap_or_default().to_string(),
        "status.hostIP" => ctx.host_ip.to_string(),
        _ => {
            let key = |prefix: &str| {
                path.strip_prefix(prefix)
                    .map(|k| k.trim_end_matches(']').trim_matches('\''))
            };
            if let Some(k) = key("metadata.labels[") {
                return Ok(meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(k).cloned())
                    .unwrap_or_default());
            }
            if let Some(k) = key("metadata.annotations[") {
                return Ok(meta
                    .annotations
                    .as_ref()
                    .and_then(|l| l.get(k).cloned())
                    .unwrap_or_default());
            }
            return Err(ContainerConfigError::UnknownField {
                name: name.into(),
                path: path.into(),
            });
        }
    })
}

/// The environment: the image's, then Kubernetes' HOSTNAME, then the container's `env`
/// (later entries win, `$(VAR)` references expanded as Kubernetes does).
pub fn environment(
    ctx: &PodContext<'_>,
    container: &Container,
    image: &Image,
) -> Result<Vec<(String, String)>, ContainerConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| match env.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in &image.config.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k.to_string(), v.to_string());
    }
    set("HOSTNAME".into(), hostname(ctx.pod));
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => var.value.clone().unwrap_or_default(),
            Some(src) => {
                if let Some(f) = &src.field_ref {
                    field_value(ctx, &var.name, &f.field_path)?
                } else {
                    let what = if src.config_map_key_ref.is_some() {
                        "configMapKeyRef"
                    } else if src.secret_key_ref.is_some() {
                        "secretKeyRef"
                    } else {
                        "resourceFieldRef"
                    };
                    return Err(ContainerConfigError::UnsupportedEnv {
                        name: var.name.clone(),
                        what: what.into(),
                    });
                }
            }
        };
        set(var.name.clone(), value);
    }
    // Expand $(VAR) against the variables defined so far, in order.
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (k, v) in env {
        let expanded = expand(&v, &out);
        out.push((k, expanded));
    }
    Ok(out)
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` escapes, unknown stay as is.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
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
    let security = container.security_context.clone().unwrap_or_default();
    let pod_security = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let image_user = image.config.user.split(':').collect::<Vec<_>>();
    let image_uid = match image_user.first().copied().unwrap_or("") {
        "" => 0,
        u => u
            .parse::<u32>()
            .map_err(|_| ContainerConfigError::NamedUser(u.into()))?,
    };
    let image_gid = image_user
        .get(1)
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or(0);
    let uid = security
        .run_as_user
        .or(pod_security.run_as_user)
        .map_or(image_uid, |u| u as u32);
    let gid = security
        .run_as_group
        .or(pod_security.run_as_group)
        .map_or(image_gid, |g| g as u32);
    let working_dir = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let extra_mounts = ["hosts", "resolv.conf", "hostname"]
        .iter()
        .map(|f| (ctx.etc_dir.join(f), format!("/etc/{f}"), false))
        .collect();
    Ok(ContainerSpec {
        cgroup_path: format!("{}/{}", ctx.pod_cgroup.trim_end_matches('/'), id),
        id,
        rootfs_layers: image.layers.clone(),
        args,
        env: environment(ctx, container, image)?,
        working_dir,
        hostname: hostname(ctx.pod),
        netns_path: ctx.netns_path.clone(),
        log_path,
        resources: resources(container),
        uid,
        gid,
        extra_mounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_expansion_follows_kubernetes() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)", &env), "x-$(B)-$(A)");
        assert_eq!(expand("plain", &env), "plain");
        assert_eq!(expand("end$", &env), "end$");
    }
}

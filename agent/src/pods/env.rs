//! A container's environment as the kubelet builds it: the image's, HOSTNAME, `envFrom`
//! (ConfigMaps/Secrets, with prefix), then `env` (values, fieldRef, resourceFieldRef,
//! configMapKeyRef, secretKeyRef), with `$(VAR)` expansion. Missing non-optional references
//! fail with the kubelet's own messages (the pod shows CreateContainerConfigError).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

use super::containers::{ContainerConfigError, PodContext, hostname};
use crate::images::Image;

/// A pod field (`fieldRef.fieldPath`) as env and downwardAPI volumes read it.
pub fn field_value(
    ctx: &PodContext<'_>,
    name: &str,
    path: &str,
) -> Result<String, ContainerConfigError> {
    let meta = &ctx.pod.metadata;
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.unwrap_or_default().to_string(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
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

/// Labels/annotations the way the downward API writes them: `key="value"` lines, sorted, the
/// value quoted like Go's `%q`.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The node's CPU (millicores) and memory (bytes): what an unset limit means to the downward API.
fn node_capacity() -> (i64, i64) {
    static CAPACITY: std::sync::OnceLock<(i64, i64)> = std::sync::OnceLock::new();
    *CAPACITY.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        (cpus * 1000, memory)
    })
}

/// A `resourceFieldRef` of `container` (limits default to the node's capacity), divided by
/// the divisor and rounded up, as the kubelet does.
pub fn resource_value(
    container: &Container,
    sel: &ResourceFieldSelector,
) -> Result<String, ContainerConfigError> {
    let res = container.resources.clone().unwrap_or_default();
    let get = |m: &Option<BTreeMap<String, Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k).cloned())
    };
    let bad = || ContainerConfigError::UnknownResource(sel.resource.clone());
    let (section, resource) = sel.resource.split_once('.').ok_or_else(bad)?;
    let quantity = match section {
        "limits" => get(&res.limits, resource),
        "requests" => get(&res.requests, resource),
        _ => return Err(bad()),
    };
    let (cpu_cap, mem_cap) = node_capacity();
    let ceil_div = |v: i64, d: i64| if d <= 0 { v } else { (v + d - 1).div_euclid(d) };
    match resource {
        "cpu" => {
            let millis = match quantity {
                Some(q) => parse_cpu_millis(&q).map_err(|_| bad())?,
                None if section == "limits" => cpu_cap,
                None => 0,
            };
            let divisor = sel
                .divisor
                .as_ref()
                .map_or(Ok(1000), parse_cpu_millis)
                .map_err(|_| bad())?;
            Ok(ceil_div(millis, divisor).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match quantity {
                Some(q) => parse_bytes(&q).map_err(|_| bad())?,
                None if section == "limits" && resource == "memory" => mem_cap,
                None => 0,
            };
            let divisor = sel
                .divisor
                .as_ref()
                .map_or(Ok(1), parse_bytes)
                .map_err(|_| bad())?;
            Ok(ceil_div(bytes, divisor).to_string())
        }
        _ => Err(bad()),
    }
}

/// A valid environment variable name (what the API server accepts for `env[].name`).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The environment: the image's, then HOSTNAME, then `envFrom`, then `env` (later entries win,
/// `$(VAR)` references expanded as Kubernetes does).
pub fn environment(
    ctx: &PodContext<'_>,
    container: &Container,
    image: &Image,
) -> Result<Vec<(String, String)>, ContainerConfigError> {
    let objects = ctx.objects;
    let namespace = objects.namespace.clone();
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
    // envFrom first: `env` overrides what it brings.
    let mut from_sources: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match objects.config_map(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(ContainerConfigError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            match objects.secret(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(ContainerConfigError::SecretNotFound(r.name.clone())),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if valid_env_name(&key) {
                from_sources.push((key, String::from_utf8_lossy(&v).into_owned()));
            } else {
                tracing::debug!(%key, "envFrom: skipping an invalid variable name");
            }
        }
    }
    for (k, v) in from_sources {
        set(k, v);
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => var.value.clone().unwrap_or_default(),
            Some(src) => {
                if let Some(f) = &src.field_ref {
                    field_value(ctx, &var.name, &f.field_path)?
                } else if let Some(r) = &src.resource_field_ref {
                    let target = match r.container_name.as_deref() {
                        None | Some("") => container,
                        Some(name) => find_container(ctx, name)?,
                    };
                    resource_value(target, r)?
                } else if let Some(r) = &src.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match objects.config_map(&r.name) {
                        None if optional => continue,
                        None => {
                            return Err(ContainerConfigError::ConfigMapNotFound(r.name.clone()));
                        }
                        Some(data) => match data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(ContainerConfigError::KeyNotFound {
                                    key: r.key.clone(),
                                    kind: "ConfigMap",
                                    namespace,
                                    name: r.name.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &src.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match objects.secret(&r.name) {
                        None if optional => continue,
                        None => return Err(ContainerConfigError::SecretNotFound(r.name.clone())),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(ContainerConfigError::KeyNotFound {
                                    key: r.key.clone(),
                                    kind: "Secret",
                                    namespace,
                                    name: r.name.clone(),
                                });
                            }
                        },
                    }
                } else {
                    String::new()
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

/// The pod's container (or init container) named `name`.
pub fn find_container<'a>(
    ctx: &PodContext<'a>,
    name: &str,
) -> Result<&'a Container, ContainerConfigError> {
    ctx.pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == name)
        })
        .ok_or_else(|| ContainerConfigError::NoSuchContainer(name.into()))
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` escapes, unknown stay as is.
pub(crate) fn expand(value: &str, env: &[(String, String)]) -> String {
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

#[cfg(test)]
#[path = "env_tests.rs"]
pub(crate) mod tests;

//! What goes into configMap, secret, downwardAPI and projected volumes: the payload of files
//! (with `items`, `defaultMode`/`mode` and `optional` handled as the kubelet does).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};

use super::atomic::{FileData, Payload};
use crate::pods::containers::PodContext;
use crate::pods::env::{field_value, find_container, resource_value};

/// The mode of a file when neither `mode` nor `defaultMode` says otherwise.
pub const DEFAULT_MODE: i32 = 0o644;

fn mode_of(item: Option<i32>, default: Option<i32>) -> u32 {
    (item.or(default).unwrap_or(DEFAULT_MODE) & 0o7777) as u32
}

/// Files from one ConfigMap's or Secret's data. `what` is "configmap" or "secret" (for the
/// kubelet's messages). `data` is None when the object does not exist.
fn from_keys(
    what: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: Option<i32>,
    out: &mut Payload,
) -> Result<(), String> {
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        return Err(format!("{what} \"{name}\" not found"));
    };
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k,
                    FileData {
                        content: v,
                        mode: mode_of(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(v) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "{what} references non-existent {} key: {}",
                        if what == "secret" { "secret" } else { "config" },
                        item.key
                    ));
                };
                out.insert(
                    item.path.clone(),
                    FileData {
                        content: v.clone(),
                        mode: mode_of(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(())
}

fn from_downward(
    ctx: &PodContext<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    out: &mut Payload,
) -> Result<(), String> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.name"
                | "metadata.namespace"
                | "metadata.uid"
                | "metadata.labels"
                | "metadata.annotations" => {}
                p if p.starts_with("metadata.labels[")
                    || p.starts_with("metadata.annotations[") => {}
                p => {
                    return Err(format!(
                        "unsupported fieldPath {p:?} in a downwardAPI volume"
                    ));
                }
            }
            field_value(ctx, &item.path, &f.field_path).map_err(|e| e.to_string())?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let container = find_container(ctx, &name).map_err(|e| e.to_string())?;
            resource_value(container, r).map_err(|e| e.to_string())?
        } else {
            continue;
        };
        out.insert(
            item.path.clone(),
            FileData {
                content: value.into_bytes(),
                mode: mode_of(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

/// The payload of an atomic-writer volume, or None if `volume` is not one of those kinds.
pub fn payload(ctx: &PodContext<'_>, volume: &Volume) -> Option<Result<Payload, String>> {
    let mut out = Payload::new();
    let objects = ctx.objects;
    let result = if let Some(cm) = &volume.config_map {
        from_keys(
            "configmap",
            &cm.name,
            objects.config_map(&cm.name),
            cm.items.as_ref(),
            cm.optional == Some(true),
            cm.default_mode,
            &mut out,
        )
    } else if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        from_keys(
            "secret",
            &name,
            objects.secret(&name),
            s.items.as_ref(),
            s.optional == Some(true),
            s.default_mode,
            &mut out,
        )
    } else if let Some(d) = &volume.downward_api {
        from_downward(
            ctx,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode,
            &mut out,
        )
    } else if let Some(p) = &volume.projected {
        let mut result = Ok(());
        for source in p.sources.iter().flatten() {
            result = if let Some(cm) = &source.config_map {
                from_keys(
                    "configmap",
                    &cm.name,
                    objects.config_map(&cm.name),
                    cm.items.as_ref(),
                    cm.optional == Some(true),
                    p.default_mode,
                    &mut out,
                )
            } else if let Some(s) = &source.secret {
                from_keys(
                    "secret",
                    &s.name,
                    objects.secret(&s.name),
                    s.items.as_ref(),
                    s.optional == Some(true),
                    p.default_mode,
                    &mut out,
                )
            } else if let Some(d) = &source.downward_api {
                from_downward(
                    ctx,
                    d.items.as_deref().unwrap_or_default(),
                    p.default_mode,
                    &mut out,
                )
            } else {
                // serviceAccountToken and clusterTrustBundle sources are not served yet.
                tracing::debug!(volume = %volume.name, "skipping an unsupported projected source");
                Ok(())
            };
            if result.is_err() {
                break;
            }
        }
        result
    } else {
        return None;
    };
    Some(result.map(|()| out))
}

//! Pod volumes on the node: emptyDir (disk, or tmpfs for `medium: Memory`), configMap, secret
//! (tmpfs), downwardAPI and projected (written with the kubelet's atomic `..data` swap, so
//! updates reach running containers whole), hostPath (with `type` checks); the volumeMounts of a
//! container (readOnly, subPath) as bind mounts; teardown on pod removal.
//!
//! Layout: `<pod-dir>/volumes/<plugin>/<volume-name>`, plugin `empty-dir`, `configmap`,
//! `secret`, `downward-api` or `projected`. Projected `serviceAccountToken` sources are
//! skipped for now (the control plane does not issue tokens yet).

pub mod atomic;
pub mod mounts;
pub mod ownership;
pub mod project;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Volume};

use super::containers::{ContainerConfigError, PodContext};
use skiff_proto::quantity::parse_bytes;

/// One volume, ready to be bind-mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Its directory (or, for a hostPath, the file or directory) on the host.
    pub path: PathBuf,
    /// Mounted read-only whatever the volumeMount says (configMap, secret, downwardAPI,
    /// projected, as the kubelet does).
    pub read_only: bool,
}

/// A volume could not be set up; the pod's containers wait in ContainerCreating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

fn plugin_dir(volumes_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    volumes_dir.join(plugin).join(name)
}

fn set_up_one(
    ctx: &PodContext<'_>,
    volumes_dir: &Path,
    v: &Volume,
) -> Result<MountedVolume, String> {
    if let Some(e) = &v.empty_dir {
        let dir = plugin_dir(volumes_dir, "empty-dir", &v.name);
        if e.medium.as_deref() == Some("Memory") {
            let size = e.size_limit.as_ref().and_then(|q| parse_bytes(q).ok());
            mounts::ensure_tmpfs(&dir, size, 0o1777).map_err(|e| format!("mounting tmpfs: {e}"))?;
        } else if !dir.is_dir() {
            // World-writable like the kubelet's, so any container user can use it.
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| e.to_string())?;
        }
        return Ok(MountedVolume {
            path: dir,
            read_only: false,
        });
    }
    if let Some(h) = &v.host_path {
        mounts::check_host_path(&h.path, h.type_.as_deref().unwrap_or(""))?;
        return Ok(MountedVolume {
            path: PathBuf::from(&h.path),
            read_only: false,
        });
    }
    let plugin = if v.config_map.is_some() {
        "configmap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downward-api"
    } else if v.projected.is_some() {
        "projected"
    } else {
        return Err("this volume type is not supported by skiff yet".into());
    };
    let payload = project::payload(ctx, v).unwrap_or_else(|| Ok(Default::default()))?;
    let dir = plugin_dir(volumes_dir, plugin, &v.name);
    // Secrets (and projected volumes, which may hold them) never touch the disk.
    if plugin == "secret" || plugin == "projected" {
        mounts::ensure_tmpfs(&dir, None, 0o755).map_err(|e| format!("mounting tmpfs: {e}"))?;
    }
    if atomic::write(&dir, &payload).map_err(|e| format!("writing files: {e}"))? {
        tracing::info!(volume = %v.name, files = payload.len(), "volume contents updated");
    }
    Ok(MountedVolume {
        path: dir,
        read_only: true,
    })
}

/// Sets up (or refreshes: configMap/secret contents, downward API labels) every volume of the
/// pod under `volumes_dir`; idempotent, called on every sync.
pub fn set_up(
    ctx: &PodContext<'_>,
    volumes_dir: &Path,
) -> Result<HashMap<String, MountedVolume>, VolumeError> {
    let mut out = HashMap::new();
    for v in ctx.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let mounted = set_up_one(ctx, volumes_dir, v)
            .and_then(|m| {
                // fsGroup owns every volume but hostPaths, as with the kubelet.
                match super::security::fs_group(ctx.pod) {
                    Some(gid) if v.host_path.is_none() => {
                        ownership::apply(&m.path, gid, m.read_only)
                            .map_err(|e| format!("applying fsGroup {gid}: {e}"))?;
                    }
                    _ => {}
                }
                Ok(m)
            })
            .map_err(|message| VolumeError {
                volume: v.name.clone(),
                message,
            })?;
        out.insert(v.name.clone(), mounted);
    }
    Ok(out)
}

/// Unmounts every tmpfs of the pod's volumes (the directory itself is removed with the pod's).
pub fn tear_down(volumes_dir: &Path) -> std::io::Result<()> {
    mounts::unmount_all(volumes_dir)
}

/// The bind mounts (host path, container path, read-only) of `container`'s volumeMounts.
pub fn container_mounts(
    volumes: &HashMap<String, MountedVolume>,
    container: &Container,
) -> Result<Vec<(PathBuf, String, bool)>, ContainerConfigError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .get(&m.name)
            .ok_or_else(|| ContainerConfigError::NoSuchVolume {
                volume: m.name.clone(),
                container: container.name.clone(),
            })?;
        let read_only = volume.read_only || m.read_only == Some(true);
        let sub = m.sub_path.as_deref().unwrap_or("");
        let source = if sub.is_empty() {
            volume.path.clone()
        } else {
            sub_path_source(&volume.path, sub).map_err(|reason| {
                ContainerConfigError::BadSubPath {
                    volume: m.name.clone(),
                    sub_path: sub.into(),
                    reason,
                }
            })?
        };
        out.push((source, m.mount_path.clone(), read_only));
    }
    Ok(out)
}

/// The host path of `sub` inside a volume: created as a directory when missing (as the kubelet
/// does), resolved through symlinks, and refused if it leads out of the volume.
fn sub_path_source(volume: &Path, sub: &str) -> Result<PathBuf, String> {
    if Path::new(sub).is_absolute()
        || Path::new(sub)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err("must be a relative path without '..'".into());
    }
    let path = volume.join(sub);
    if std::fs::symlink_metadata(&path).is_err() {
        std::fs::create_dir_all(&path).map_err(|e| format!("creating it: {e}"))?;
    }
    let resolved = std::fs::canonicalize(&path).map_err(|e| e.to_string())?;
    let root = std::fs::canonicalize(volume).map_err(|e| e.to_string())?;
    if !resolved.starts_with(&root) {
        return Err("it resolves outside of the volume".into());
    }
    Ok(resolved)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "root_tests.rs"]
mod root_tests;

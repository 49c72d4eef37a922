//! A container's root filesystem: the image layers joined with overlayfs, the container's
//! writes kept in `upper/` of its state dir.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Errors mounting or unmounting the overlay root.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer {0} does not exist")]
    MissingLayer(PathBuf),
    #[error("layer path {0} cannot be used in overlay options (':' or ',')")]
    BadLayerPath(PathBuf),
    #[error("too many layers for one overlay mount ({0} bytes of options)")]
    TooManyLayers(usize),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mount overlay on {target}: {errno}")]
    Mount {
        target: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// The mount point of the container's root inside its state dir.
pub fn rootfs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("rootfs")
}

/// Mounts `layers` (bottom → top) at `<state_dir>/rootfs` with upper/work dirs beside it.
pub fn mount_overlay(state_dir: &Path, layers: &[PathBuf]) -> Result<(), RootfsError> {
    let io = |context: String| move |source| RootfsError::Io { context, source };
    let rootfs = rootfs_dir(state_dir);
    let upper = state_dir.join("upper");
    let work = state_dir.join("work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
    }
    let mut lower = Vec::with_capacity(layers.len());
    // overlayfs lists lower dirs top first.
    for layer in layers.iter().rev() {
        if !layer.is_dir() {
            return Err(RootfsError::MissingLayer(layer.clone()));
        }
        let s = layer
            .to_str()
            .ok_or_else(|| RootfsError::BadLayerPath(layer.clone()))?;
        if s.contains([':', ',']) {
            return Err(RootfsError::BadLayerPath(layer.clone()));
        }
        lower.push(s.to_string());
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel takes at most one page of mount options.
    if options.len() >= 4000 {
        return Err(RootfsError::TooManyLayers(options.len()));
    }
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|errno| RootfsError::Mount {
        target: rootfs.clone(),
        errno,
    })
}

/// Unmounts the container's root if it is mounted (lazily if it is still busy).
pub fn unmount(state_dir: &Path) -> Result<(), RootfsError> {
    let rootfs = rootfs_dir(state_dir);
    for _ in 0..2 {
        if !is_mount_point(&rootfs) {
            return Ok(());
        }
        match nix::mount::umount2(&rootfs, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => {
                nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH).map_err(|errno| {
                    RootfsError::Mount {
                        target: rootfs.clone(),
                        errno,
                    }
                })?;
            }
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return Ok(()),
            Err(errno) => {
                return Err(RootfsError::Mount {
                    target: rootfs.clone(),
                    errno,
                });
            }
        }
    }
    Ok(())
}

/// Whether `path` is a mount point, from /proc/self/mountinfo (field 5, octal-escaped).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn missing_layer_is_refused_before_mounting() {
        let dir = tempfile::tempdir().unwrap();
        let err = mount_overlay(dir.path(), &[dir.path().join("nope")]).unwrap_err();
        assert!(matches!(err, RootfsError::MissingLayer(_)), "{err}");
        assert!(!is_mount_point(&rootfs_dir(dir.path())));
    }
}

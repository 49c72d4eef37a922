//! The mount side of volumes: tmpfs for `medium: Memory` emptyDirs and secrets, hostPath type
//! checks, and unmounting everything under a pod's volume directory on teardown.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Mount points at or below `root`, from /proc/self/mountinfo, deepest first.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|mp| PathBuf::from(unescape(mp)))
        .filter(|mp| mp.starts_with(root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts a tmpfs on `dir` unless one is there already (`size` in bytes, None: the default).
pub fn ensure_tmpfs(dir: &Path, size: Option<i64>, mode: u32) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if mounts_under(dir).iter().any(|m| m == dir) {
        return Ok(());
    }
    let mut data = format!("mode={mode:o}");
    if let Some(size) = size.filter(|s| *s > 0) {
        data.push_str(&format!(",size={size}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmounts everything at or below `root` (deepest first; lazily if busy).
pub fn unmount_all(root: &Path) -> io::Result<()> {
    let mut result = Ok(());
    for mp in mounts_under(root) {
        if let Err(e) = nix::mount::umount2(&mp, MntFlags::empty()) {
            tracing::debug!(mount = %mp.display(), error = %e, "unmount failed; detaching");
            if let Err(e) = nix::mount::umount2(&mp, MntFlags::MNT_DETACH) {
                result = Err(io::Error::from(e));
            }
        }
    }
    result
}

/// Checks (and for the `…OrCreate` types, creates) a hostPath; the messages are the kubelet's.
pub fn check_host_path(path: &str, type_: &str) -> Result<(), String> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let fail = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(p).map_err(|e| format!("creating {path}: {e}"))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("a directory"),
        },
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("creating {path}: {e}"))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("a file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("a socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("a character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("a block device"),
        },
        other => Err(format!("invalid hostPath type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types_are_checked_and_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("made/deep");
        let d = dir.to_str().unwrap();
        assert!(check_host_path(d, "Directory").is_err());
        check_host_path(d, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        check_host_path(d, "Directory").unwrap();
        assert_eq!(
            check_host_path(d, "File").unwrap_err(),
            format!("hostPath type check failed: {d} is not a file")
        );
        let file = tmp.path().join("f");
        let f = file.to_str().unwrap();
        check_host_path(f, "FileOrCreate").unwrap();
        assert!(file.is_file());
        check_host_path(f, "File").unwrap();
        assert!(check_host_path(f, "DirectoryOrCreate").is_err());
        assert!(check_host_path(f, "Socket").is_err());
        check_host_path("/dev/null", "CharDevice").unwrap();
        assert!(check_host_path("/dev/null", "BlockDevice").is_err());
        check_host_path("/nonexistent/x", "").unwrap();
        assert!(check_host_path(f, "Bogus").is_err());
    }

    #[test]
    fn tmpfs_is_mounted_once_and_unmounted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mem");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = unmount_all(&self.0);
            }
        }
        let _guard = Unmount(tmp.path().to_path_buf());
        ensure_tmpfs(&dir, Some(1 << 20), 0o1777).unwrap();
        ensure_tmpfs(&dir, Some(1 << 20), 0o1777).unwrap();
        assert_eq!(mounts_under(tmp.path()), vec![dir.clone()]);
        let stat = nix::sys::statfs::statfs(&dir).unwrap();
        assert_eq!(stat.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
        assert_eq!(stat.blocks() * stat.block_size() as u64, 1 << 20);
        unmount_all(tmp.path()).unwrap();
        assert!(mounts_under(tmp.path()).is_empty());
    }
}

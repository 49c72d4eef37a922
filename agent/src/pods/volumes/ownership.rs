//! fsGroup: the group ownership the kubelet gives a pod's volumes (`SetVolumeOwnership`): every
//! file and directory gets the group, group read (and write, for writable volumes) access, and
//! directories the setgid bit so new files inherit the group.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// Applies `gid` to everything under `root` (symlinks are left alone, as the kubelet does).
/// Idempotent and cheap when nothing changed.
pub fn apply(root: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let mask = if read_only { RO_MASK } else { RW_MASK };
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.gid() != gid {
            std::os::unix::fs::lchown(&path, None, Some(gid))?;
        }
        let mut want = (meta.mode() & 0o7777) | mask;
        if meta.is_dir() {
            want |= SETGID | EXEC_MASK;
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
        if want != meta.mode() & 0o7777 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_get_the_group_and_its_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("link")).unwrap();
        apply(&root, 4321, false).unwrap();
        let f = std::fs::metadata(root.join("sub/f")).unwrap();
        assert_eq!(f.gid(), 4321);
        assert_eq!(f.mode() & 0o7777, 0o660);
        let d = std::fs::metadata(root.join("sub")).unwrap();
        assert_eq!(d.gid(), 4321);
        assert_eq!(d.mode() & 0o2000, 0o2000, "setgid on directories");
        assert_eq!(d.mode() & 0o070, 0o070);
        // Read-only volumes get group read only.
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::write(ro.join("f"), "x").unwrap();
        std::fs::set_permissions(ro.join("f"), std::fs::Permissions::from_mode(0o400)).unwrap();
        apply(&ro, 4321, true).unwrap();
        assert_eq!(
            std::fs::metadata(ro.join("f")).unwrap().mode() & 0o7777,
            0o440
        );
    }
}

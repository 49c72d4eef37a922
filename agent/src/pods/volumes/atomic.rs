//! The kubelet's atomic writer: a volume's files live in a timestamped directory
//! `..<time>`, `..data` is a symlink to it, and each top-level name the user sees is a symlink
//! through `..data`. An update writes a new timestamped directory and renames a fresh symlink
//! over `..data`, so a reader sees either the old set of files or the new one, never a mix.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// One file of a volume: content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path (`a/b` makes directory `a`).
pub type Payload = BTreeMap<String, FileData>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Whether `path` is an acceptable item path: relative, no `..` component, not starting with
/// `..` (those names belong to the writer).
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The payload currently visible through `..data` (None if there is none yet).
fn current(dir: &Path) -> Option<Payload> {
    let data = dir.join(DATA);
    std::fs::symlink_metadata(&data).ok()?;
    let mut out = Payload::new();
    fn walk(root: &Path, rel: &str, out: &mut Payload) -> io::Result<()> {
        for entry in std::fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                let content = std::fs::read(entry.path())?;
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(path, FileData { content, mode });
            }
        }
        Ok(())
    }
    walk(&data, "", &mut out).ok()?;
    Some(out)
}

/// Makes `dir` show exactly `payload`; returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        if !valid_path(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid file path {path:?}"),
            ));
        }
    }
    std::fs::create_dir_all(dir)?;
    if current(dir).as_ref() == Some(payload) {
        return Ok(false);
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let now = jiff::Timestamp::now();
    let stamp = format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir(&ts_dir)?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.content)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    // Swap `..data` in one rename.
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    // The user-visible names: one symlink per top-level component.
    let top: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("{DATA}/{name}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) && entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old
        && old.as_os_str() != stamp.as_str()
    {
        let old_dir = dir.join(old);
        if old_dir.starts_with(dir) {
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileData {
        FileData {
            content: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn update_swaps_the_data_link_and_prunes_old_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let mut payload = Payload::new();
        payload.insert("a".into(), file("one", 0o644));
        payload.insert("sub/b".into(), file("two", 0o600));
        assert!(write(&dir, &payload).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "two");
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            std::fs::symlink_metadata(dir.join("a"))
                .unwrap()
                .is_symlink()
        );
        let first = std::fs::read_link(dir.join(DATA)).unwrap();
        // Same payload: nothing is rewritten.
        assert!(!write(&dir, &payload).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), first);
        // New content, one name dropped.
        payload.insert("a".into(), file("changed", 0o644));
        payload.remove("sub/b");
        assert!(write(&dir, &payload).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "changed");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let second = std::fs::read_link(dir.join(DATA)).unwrap();
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists(), "old data dir kept");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}"); // a, ..data, ..<stamp>
    }

    #[test]
    fn mode_change_alone_is_an_update() {
        let tmp = tempfile::tempdir().unwrap();
        let mut payload = Payload::new();
        payload.insert("k".into(), file("v", 0o644));
        write(tmp.path(), &payload).unwrap();
        payload.insert("k".into(), file("v", 0o400));
        assert!(write(tmp.path(), &payload).unwrap());
        let mode = std::fs::metadata(tmp.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", ""] {
            assert!(!valid_path(bad), "{bad}");
        }
        assert!(valid_path("a/b.txt"));
        let tmp = tempfile::tempdir().unwrap();
        let mut payload = Payload::new();
        payload.insert("../evil".into(), file("x", 0o644));
        assert!(write(tmp.path(), &payload).is_err());
    }
}

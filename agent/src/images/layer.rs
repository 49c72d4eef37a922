//! Unpacking one image layer (tar, optionally gzip) into its content-addressed directory,
//! with OCI whiteouts turned into overlayfs whiteouts and unsafe entries refused.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Errors unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {0:?} escapes the layer root")]
    PathTraversal(String),
    #[error("layer entry {0:?} is a device file")]
    Device(String),
    #[error("layer digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("unsupported layer compression ({0})")]
    Unsupported(&'static str),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LayerError {
    let context = context.into();
    move |source| LayerError::Io { context, source }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the blob at `blob` (whose sha256 must be `expected_hex`) into `dest` via a temp
/// dir next to it, atomically. Does nothing if `dest` exists already.
pub fn unpack_blob(blob: &Path, expected_hex: &str, dest: &Path) -> Result<(), LayerError> {
    if dest.is_dir() {
        return Ok(());
    }
    let parent = dest
        .parent()
        .ok_or_else(|| LayerError::PathTraversal(dest.display().to_string()))?;
    std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    let tmp = parent.join(format!(
        ".{}.unpack-{}-{}",
        expected_hex,
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        let file = std::fs::File::open(blob).map_err(io(format!("open {}", blob.display())))?;
        let mut reader = Hashing {
            inner: std::io::BufReader::new(file),
            hasher: Sha256::new(),
        };
        unpack_stream(&mut reader, &tmp)?;
        // Hash what the tar reader left unread (end-of-archive padding).
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(io("read layer"))?;
        let actual = hex::encode(reader.hasher.finalize());
        if actual != expected_hex {
            return Err(LayerError::DigestMismatch {
                expected: format!("sha256:{expected_hex}"),
                actual: format!("sha256:{actual}"),
            });
        }
        match std::fs::rename(&tmp, dest) {
            Ok(()) => Ok(()),
            // Someone else unpacked the same layer meanwhile.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(io(format!("rename into {}", dest.display()))(e)),
        }
    })();
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Unpacks a tar stream (gzip detected by its magic bytes) into `root`.
pub fn unpack_stream(reader: &mut impl Read, root: &Path) -> Result<(), LayerError> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        let n = reader.read(&mut magic[got..]).map_err(io("read layer"))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = &magic[..got];
    let chained = head.chain(reader);
    if head.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(flate2::read::GzDecoder::new(chained), root)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(LayerError::Unsupported("zstd"))
    } else {
        unpack_tar(chained, root)
    }
}

fn unpack_tar(reader: impl Read, root: &Path) -> Result<(), LayerError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io("read layer"))? {
        let mut entry = entry.map_err(io("read layer entry"))?;
        let raw = entry.path().map_err(io("read entry path"))?.into_owned();
        let display = raw.display().to_string();
        let Some(rel) = clean_path(&raw) else {
            return Err(LayerError::PathTraversal(display));
        };
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = ensure_dirs(root, parent_rel, &display)?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(hidden) = name.strip_prefix(".wh.") {
            whiteout(&parent, hidden, &display)?;
            continue;
        }
        let dst = parent.join(rel.file_name().unwrap_or_default());
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(LayerError::Device(display));
            }
            tar::EntryType::Directory => {
                if let Ok(meta) = std::fs::symlink_metadata(&dst)
                    && !meta.is_dir()
                {
                    remove_any(&dst)?;
                }
            }
            _ => {
                if std::fs::symlink_metadata(&dst).is_ok() {
                    remove_any(&dst)?;
                }
            }
        }
        if kind == tar::EntryType::Link {
            let target = entry
                .link_name()
                .map_err(io("read link name"))?
                .ok_or_else(|| LayerError::PathTraversal(display.clone()))?
                .into_owned();
            let target_rel = clean_path(&target)
                .filter(|t| !t.as_os_str().is_empty())
                .ok_or_else(|| LayerError::PathTraversal(display.clone()))?;
            let target_parent =
                ensure_dirs(root, target_rel.parent().unwrap_or(Path::new("")), &display)?;
            let source = target_parent.join(target_rel.file_name().unwrap_or_default());
            std::fs::hard_link(&source, &dst).map_err(io(format!("hard link {display}")))?;
            continue;
        }
        entry
            .unpack(&dst)
            .map_err(io(format!("unpack {display}")))?;
    }
    Ok(())
}

/// Strips `./` and a leading `/`; None if the path has `..` (or anything but plain names).
fn clean_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir => return None,
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Creates `root/rel` as plain directories, refusing to pass through a symlink or file.
fn ensure_dirs(root: &Path, rel: &Path, display: &str) -> Result<PathBuf, LayerError> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(LayerError::PathTraversal(display.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(io(format!("create {}", at.display())))?;
            }
            Err(e) => return Err(io(format!("stat {}", at.display()))(e)),
        }
    }
    Ok(at)
}

/// `.wh..wh..opq` marks `dir` opaque; `.wh.<name>` hides `<name>` of lower layers.
fn whiteout(dir: &Path, hidden: &str, display: &str) -> Result<(), LayerError> {
    if hidden == ".wh..opq" {
        return xattr::set(dir, "trusted.overlay.opaque", b"y")
            .map_err(io(format!("mark {} opaque", dir.display())));
    }
    if hidden.starts_with(".wh.") {
        return Ok(()); // other AUFS metadata (.wh..wh.plnk, …) means nothing to overlayfs
    }
    if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
        return Err(LayerError::PathTraversal(display.to_string()));
    }
    let target = dir.join(hidden);
    if std::fs::symlink_metadata(&target).is_ok() {
        remove_any(&target)?;
    }
    nix::sys::stat::mknod(
        &target,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .map_err(|e| io(format!("create whiteout {display}"))(e.into()))
}

fn remove_any(path: &Path) -> Result<(), LayerError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(format!("stat {}", path.display())))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .map_err(io(format!("remove {}", path.display())))
}

#[cfg(test)]
mod tests;

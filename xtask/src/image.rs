//! The `busybox` test image: a deterministic one-layer OCI image built from Debian's
//! busybox-static binary (all applets as symlinks, a minimal /etc), ready to push.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Repository the image is pushed as (what `busybox` means on docker.io).
pub const REPO: &str = "library/busybox";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Every timestamp in the image, so that the same binary always gives the same digests.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Bytes with their media type and `sha256:` digest.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data,
        }
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.data.len() })
    }
}

/// A built image: its gzipped layer, config and manifest.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

/// What goes into the image: the busybox binary, its applet names and version.
#[derive(Clone, Debug)]
pub struct Busybox {
    pub binary: Vec<u8>,
    pub applets: Vec<String>,
    /// e.g. `1.35.0`, from the binary's banner.
    pub version: Option<String>,
}

impl Busybox {
    /// Reads a static busybox binary and asks it for its applets and version.
    pub fn load(path: &Path) -> Result<Self> {
        let binary = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let list = Command::new(path)
            .arg("--list")
            .output()
            .with_context(|| format!("running {} --list", path.display()))?;
        if !list.status.success() {
            bail!("{} --list failed", path.display());
        }
        let applets = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let banner = Command::new(path).output().ok();
        let version = banner.and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
        Ok(Self {
            binary,
            applets,
            version,
        })
    }

    /// Tags to push: `latest` and `<major>.<minor>` when the version is known.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = vec!["latest".to_string()];
        if let Some(v) = &self.version {
            let short: Vec<&str> = v.split('.').take(2).collect();
            if short.len() == 2 {
                tags.push(short.join("."));
            }
        }
        tags
    }
}

/// `BusyBox v1.35.0 (Debian ...) multi-call binary.` → `1.35.0`.
fn parse_version(banner: &str) -> Option<String> {
    let word = banner.split_whitespace().find(|w| w.starts_with('v'))?;
    let v = word.trim_start_matches('v');
    v.chars().next()?.is_ascii_digit().then(|| v.to_string())
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The uncompressed layer: sorted entries, root-owned, mtime 0.
pub fn layer_tar(bb: &Busybox) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dirs = [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
    ];
    for (dir, mode) in dirs {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
    }
    let mut applets: Vec<&str> = bb
        .applets
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "busybox" && !a.contains('/'))
        .collect();
    applets.sort_unstable();
    applets.dedup();
    let mut h = header(tar::EntryType::Regular, 0o755, bb.binary.len() as u64);
    tar.append_data(&mut h, "bin/busybox", &bb.binary[..])?;
    for applet in applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
    let group = "root:x:0:\nnobody:x:65534:\n";
    for (path, text) in [("etc/group", group), ("etc/passwd", passwd)] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        tar.append_data(&mut h, path, text.as_bytes())?;
    }
    Ok(tar.into_inner()?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    // GzBuilder writes mtime 0 and no file name unless told otherwise: deterministic output.
    let mut enc = GzBuilder::new().write(Vec::new(), Compression::default());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Builds layer, config and manifest.
pub fn build(bb: &Busybox) -> Result<BuiltImage> {
    let tar = layer_tar(bb)?;
    let diff_id = sha256_digest(&tar);
    let layer = Blob::new(LAYER_MEDIA_TYPE, gzip(&tar)?);
    let created_by = format!(
        "cargo xtask: busybox-static {}",
        bb.version.as_deref().unwrap_or("unknown")
    );
    let config = json!({
        "created": EPOCH,
        "architecture": oci_arch(),
        "os": "linux",
        "config": { "Env": [PATH_ENV], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": EPOCH, "created_by": created_by }],
    });
    let config = Blob::new(CONFIG_MEDIA_TYPE, serde_json::to_vec(&config)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let manifest = Blob::new(MANIFEST_MEDIA_TYPE, serde_json::to_vec(&manifest)?);
    Ok(BuiltImage {
        layer,
        config,
        manifest,
    })
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;

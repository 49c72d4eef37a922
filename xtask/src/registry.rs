//! The local image registry: Debian's `docker-registry` process and a small client for the
//! OCI distribution API (blob uploads, manifest put/get) used to push the busybox image.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::image::{Blob, BuiltImage};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Writes a registry config: filesystem storage in `data_dir`, plain HTTP on `addr`, no auth.
pub fn write_config(config: &Path, data_dir: &Path, addr: &str) -> Result<()> {
    // JSON strings are valid YAML scalars, which quotes any odd characters in the path.
    let root = serde_json::to_string(&data_dir.to_string_lossy())?;
    let addr = serde_json::to_string(addr)?;
    let text = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  \
         delete:\n    enabled: true\nhttp:\n  addr: {addr}\n"
    );
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::write(config, text).with_context(|| format!("writing {}", config.display()))
}

/// The command that serves a registry with `config`.
pub fn serve_command(config: &Path) -> Command {
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve").arg(config);
    cmd
}

/// Outcome of pushing an image.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Every tag already pointed at this manifest digest; nothing was sent.
    AlreadyPresent,
    /// Blobs and manifest were uploaded.
    Uploaded,
}

/// A blocking client for one registry, e.g. `http://127.0.0.1:5000`.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A proxy from the environment must never see local traffic.
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Self {
            agent,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Whether `GET /v2/` answers 200.
    pub fn ping(&self) -> bool {
        self.agent
            .get(format!("{}/v2/", self.base))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }

    /// The digest the registry reports for `repo:reference`, if it has it.
    pub fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
    ) -> Result<Option<String>> {
        let resp = self
            .agent
            .head(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("Accept", media_type)
            .call()
            .context("HEAD manifest")?;
        match resp.status().as_u16() {
            200 => Ok(header(&resp, "Docker-Content-Digest")),
            404 => Ok(None),
            s => bail!("HEAD manifest {repo}:{reference}: HTTP {s}"),
        }
    }

    /// Uploads a blob unless the registry has it; returns whether it was uploaded.
    pub fn push_blob(&self, repo: &str, blob: &Blob) -> Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{}", self.base, blob.digest);
        let head = self.agent.head(&url).call().context("HEAD blob")?;
        if head.status() == 200 {
            return Ok(false);
        }
        let start = self
            .agent
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send_empty()
            .context("starting a blob upload")?;
        if start.status() != 202 {
            bail!("starting a blob upload to {repo}: HTTP {}", start.status());
        }
        let location = header(&start, "Location").context("upload response without Location")?;
        let mut location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str("digest=");
        location.push_str(&blob.digest);
        let done = self
            .agent
            .put(&location)
            .header("Content-Type", "application/octet-stream")
            .send(&blob.data[..])
            .context("uploading a blob")?;
        if done.status() != 201 {
            bail!(
                "uploading blob {} to {repo}: HTTP {}",
                blob.digest,
                done.status()
            );
        }
        Ok(true)
    }

    /// Puts `manifest` under `tag`; returns the digest the registry computed.
    pub fn put_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> Result<String> {
        let resp = self
            .agent
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("Content-Type", &manifest.media_type)
            .send(&manifest.data[..])
            .context("putting a manifest")?;
        if resp.status() != 201 {
            bail!("putting manifest {repo}:{tag}: HTTP {}", resp.status());
        }
        Ok(header(&resp, "Docker-Content-Digest").unwrap_or_else(|| manifest.digest.clone()))
    }

    /// Pushes `image` as `repo:tag` for every tag, skipping it all if every tag already
    /// points at the same manifest digest.
    pub fn push_image(&self, repo: &str, tags: &[String], image: &BuiltImage) -> Result<Pushed> {
        let media_type = &image.manifest.media_type;
        let mut current = true;
        for tag in tags {
            let digest = self.manifest_digest(repo, tag, media_type)?;
            current &= digest.as_deref() == Some(image.manifest.digest.as_str());
        }
        if current {
            return Ok(Pushed::AlreadyPresent);
        }
        self.push_blob(repo, &image.layer)?;
        self.push_blob(repo, &image.config)?;
        for tag in tags {
            let digest = self.put_manifest(repo, tag, &image.manifest)?;
            if digest != image.manifest.digest {
                bail!(
                    "registry stored {repo}:{tag} as {digest}, expected {}",
                    image.manifest.digest
                );
            }
        }
        Ok(Pushed::Uploaded)
    }
}

/// Reads back what was pushed (for tests).
#[cfg(test)]
impl Client {
    /// Fetches a manifest by tag or digest.
    pub fn get_manifest(&self, repo: &str, reference: &str, media_type: &str) -> Result<Vec<u8>> {
        self.get(&format!("manifests/{reference}"), repo, Some(media_type))
    }

    /// Fetches a blob by digest.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        self.get(&format!("blobs/{digest}"), repo, None)
    }

    fn get(&self, what: &str, repo: &str, accept: Option<&str>) -> Result<Vec<u8>> {
        let mut req = self.agent.get(format!("{}/v2/{repo}/{what}", self.base));
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        let mut resp = req.call().with_context(|| format!("GET {repo}/{what}"))?;
        if resp.status() != 200 {
            bail!("GET {repo}/{what}: HTTP {}", resp.status());
        }
        Ok(resp
            .body_mut()
            .with_config()
            .limit(512 * 1024 * 1024)
            .read_to_vec()?)
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

//! Images: pulls from OCI registries (with mirrors), a content-addressed layer store, overlay roots.
//!
//! Layout under the store root (`<root-dir>/images`):
//! `layers/sha256/<hex>/` (one unpacked layer per blob digest, written once, atomically),
//! `images/<sha256 of the name>.json` (an [`ImageRecord`] per normalized name) and `tmp/`
//! (downloads and unpacks in progress; emptied at start-up).

pub mod auth;
mod layer;
mod pull;
pub mod reference;
pub mod registries;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use layer::LayerError;
pub use reference::ImageRef;
pub use registries::{RegistryConfig, RegistryConfigError};

/// Kubernetes' imagePullPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// What a container needs from the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// An image present on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Normalized, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// Unpacked layer dirs, bottom → top.
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
    /// Compressed size (config + layers) in bytes, as registries and containerd count it.
    pub size: u64,
}

/// Errors of the image store; their messages end up in pod statuses (like containerd's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The reference cannot be parsed (Kubernetes: InvalidImageName).
    #[error("failed to parse image reference \"{reference}\": {reason}")]
    InvalidReference { reference: String, reason: String },
    /// No registry or mirror has the image (Kubernetes: ErrImagePull).
    #[error(
        "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
    )]
    NotFound { image: String },
    /// Pull policy Never and the image is not on the node (Kubernetes: ErrImageNeverPull).
    #[error("container image \"{image}\" is not present with pull policy of Never")]
    NotPresent { image: String },
    /// Any other pull failure (Kubernetes: ErrImagePull).
    #[error("failed to pull and unpack image \"{image}\": {message}")]
    Pull { image: String, message: String },
    /// The local store failed.
    #[error("image store: {message}")]
    Store { message: String },
}

/// What the store keeps per image name (`images/<sha256 of name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ImageRecord {
    name: String,
    digest: String,
    /// Layer blob digests (hex), bottom → top.
    layers: Vec<String>,
    config: ImageConfig,
    size: u64,
}

impl ImageRecord {
    fn path(root: &Path, name: &str) -> PathBuf {
        root.join("images")
            .join(format!("{}.json", hex::encode(sha2::Sha256::digest(name))))
    }

    fn load(root: &Path, name: &str) -> Option<ImageRecord> {
        let record: ImageRecord =
            serde_json::from_slice(&std::fs::read(Self::path(root, name)).ok()?).ok()?;
        (record.name == name).then_some(record)
    }

    fn save(&self, root: &Path) -> std::io::Result<()> {
        let path = Self::path(root, &self.name);
        let tmp = root
            .join("tmp")
            .join(format!("{}.record", uuid::Uuid::new_v4().simple()));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    fn image(&self, root: &Path) -> Image {
        Image {
            name: self.name.clone(),
            digest: self.digest.clone(),
            layers: self.layers.iter().map(|hex| layer_dir(root, hex)).collect(),
            config: self.config.clone(),
            size: self.size,
        }
    }

    /// All layers are still unpacked on disk.
    fn complete(&self, root: &Path) -> bool {
        self.layers.iter().all(|hex| layer_dir(root, hex).is_dir())
    }
}

fn layer_dir(root: &Path, hex: &str) -> PathBuf {
    root.join("layers").join("sha256").join(hex)
}

type PullFuture = Shared<BoxFuture<'static, Result<Image, ImageError>>>;

struct Inner {
    root: PathBuf,
    registries: RegistryConfig,
    /// Pulls in progress by normalized name; concurrent `ensure` calls share one.
    inflight: Mutex<HashMap<String, PullFuture>>,
}

/// The node's image store.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

impl ImageStore {
    /// Opens (creating) the store at `root` (`<root-dir>/images`).
    pub fn new(root: PathBuf, registries: RegistryConfig) -> Result<Self, ImageError> {
        // The registry client uses rustls without a built-in provider; use ring, as tonic does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store_err = |e: std::io::Error| ImageError::Store {
            message: format!("{}: {e}", root.display()),
        };
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(store_err)?;
        }
        for dir in [root.join("images"), root.join("layers").join("sha256"), tmp] {
            std::fs::create_dir_all(dir).map_err(store_err)?;
        }
        // Half-unpacked layers of a crashed pull.
        if let Ok(entries) = std::fs::read_dir(root.join("layers").join("sha256")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root,
                registries,
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Makes `image` present according to `policy` and returns it (pulling anonymously).
    pub async fn ensure(&self, image: &str, policy: PullPolicy) -> Result<Image, ImageError> {
        self.ensure_with(image, policy, &auth::Credentials::default())
            .await
    }

    /// [`ensure`](Self::ensure) with registry credentials (the pod's pull secrets).
    pub async fn ensure_with(
        &self,
        image: &str,
        policy: PullPolicy,
        creds: &auth::Credentials,
    ) -> Result<Image, ImageError> {
        let parsed = ImageRef::parse(image).map_err(|reason| ImageError::InvalidReference {
            reference: image.to_string(),
            reason,
        })?;
        let name = parsed.to_string();
        let root = &self.inner.root;
        let present = ImageRecord::load(root, &name).filter(|r| r.complete(root));
        match (policy, present) {
            (PullPolicy::Never, Some(record)) | (PullPolicy::IfNotPresent, Some(record)) => {
                return Ok(record.image(root));
            }
            (PullPolicy::Never, None) => return Err(ImageError::NotPresent { image: name }),
            _ => {}
        }
        self.shared_pull(parsed, creds.clone()).await
    }

    fn shared_pull(&self, image: ImageRef, creds: auth::Credentials) -> PullFuture {
        // Pulls with different credentials do not share a result (one may be refused).
        let name = format!("{image}#{}", creds.fingerprint());
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = inflight.get(&name) {
            return existing.clone();
        }
        let inner = Arc::clone(&self.inner);
        let key = name.clone();
        // A task, so the pull finishes even if the caller that started it goes away.
        let task = tokio::spawn(async move {
            let result = pull::pull(&inner.root, &inner.registries, &image, &creds)
                .await
                .map(|r| r.image(&inner.root));
            inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            result
        });
        let fut: PullFuture = async move {
            task.await.unwrap_or_else(|e| {
                Err(ImageError::Store {
                    message: format!("pull task failed: {e}"),
                })
            })
        }
        .boxed()
        .shared();
        inflight.insert(name, fut.clone());
        fut
    }

    /// Every image on the node (for Node.status.images).
    pub fn list(&self) -> Vec<Image> {
        let root = &self.inner.root;
        let Ok(entries) = std::fs::read_dir(root.join("images")) else {
            return Vec::new();
        };
        let mut images: Vec<Image> = entries
            .flatten()
            .filter_map(|e| {
                serde_json::from_slice::<ImageRecord>(&std::fs::read(e.path()).ok()?).ok()
            })
            .filter(|r| r.complete(root))
            .map(|r| r.image(root))
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        images
    }
}

#[cfg(test)]
mod tests;

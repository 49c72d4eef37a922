//! Pulling one image: resolve the manifest through the mirrors and then the registry itself,
//! download each missing layer blob and unpack it into the layer store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciImageManifest;
use oci_client::{Client, Reference};

use super::auth::Credentials;
use super::reference::ImageRef;
use super::registries::RegistryConfig;
use super::{ImageConfig, ImageError, ImageRecord, layer};

/// Where the manifest was found.
struct Resolved {
    reference: Reference,
    manifest: OciImageManifest,
    digest: String,
    config: String,
    /// The client that resolved it (it holds the registry's credentials for the blobs).
    client: Client,
}

/// Pulls `image` into the store under `root`; returns its record (already saved).
pub(super) async fn pull(
    root: &Path,
    registries: &RegistryConfig,
    image: &ImageRef,
    creds: &Credentials,
) -> Result<ImageRecord, ImageError> {
    let name = image.to_string();
    let resolved = resolve(registries, image, creds).await?;
    let pull_err = |message: String| ImageError::Pull {
        image: name.clone(),
        message,
    };
    let client = resolved.client.clone();
    let mut layers = Vec::with_capacity(resolved.manifest.layers.len());
    let mut size = resolved.manifest.config.size.max(0) as u64;
    for desc in &resolved.manifest.layers {
        if desc.media_type.contains("zstd") {
            return Err(pull_err(format!(
                "layer {}: zstd layers are not supported",
                desc.digest
            )));
        }
        let hex = sha256_hex(&desc.digest)
            .ok_or_else(|| pull_err(format!("unsupported layer digest {:?}", desc.digest)))?;
        size += desc.size.max(0) as u64;
        let dest = super::layer_dir(root, &hex);
        if !dest.is_dir() {
            let blob = root
                .join("tmp")
                .join(format!("{hex}.{}.blob", uuid::Uuid::new_v4().simple()));
            let downloaded = download(&client, &resolved.reference, desc, &blob).await;
            let unpacked = match downloaded {
                Ok(()) => {
                    let (blob, hex, dest) = (blob.clone(), hex.clone(), dest.clone());
                    tokio::task::spawn_blocking(move || layer::unpack_blob(&blob, &hex, &dest))
                        .await
                        .map_err(|e| pull_err(format!("unpack task failed: {e}")))
                        .and_then(|r| {
                            r.map_err(|e| {
                                pull_err(format!("failed to extract layer {}: {e}", desc.digest))
                            })
                        })
                }
                Err(message) => Err(pull_err(format!(
                    "failed to copy layer {}: {message}",
                    desc.digest
                ))),
            };
            let _ = tokio::fs::remove_file(&blob).await;
            unpacked?;
        }
        layers.push(hex);
    }
    let record = ImageRecord {
        name: name.clone(),
        digest: resolved.digest,
        layers,
        config: parse_config(&resolved.config),
        size,
    };
    record.save(root).map_err(|e| ImageError::Store {
        message: format!("save image record: {e}"),
    })?;
    Ok(record)
}

/// Tries each mirror endpoint, then the registry; the first manifest wins.
async fn resolve(
    registries: &RegistryConfig,
    image: &ImageRef,
    creds: &Credentials,
) -> Result<Resolved, ImageError> {
    let name = image.to_string();
    let client = client_for(registries, image);
    let mut sources: Vec<Option<String>> = registries
        .endpoints(&image.domain)
        .into_iter()
        .map(|e| Some(e.host))
        .collect();
    sources.push(None);
    let mut not_found = false;
    let mut errors = Vec::new();
    for mirror in sources {
        let mut reference = base_reference(image);
        if let Some(host) = &mirror {
            reference.set_mirror_registry(host.clone());
        }
        let from = mirror.as_deref().unwrap_or(&image.domain).to_string();
        match client
            .pull_manifest_and_config(
                &reference,
                &creds.auth_for(&format!("{from}/{}", image.path)),
            )
            .await
        {
            Ok((manifest, digest, config)) => {
                tracing::debug!(image = %name, from, %digest, "resolved image");
                return Ok(Resolved {
                    reference,
                    manifest,
                    digest,
                    config,
                    client,
                });
            }
            Err(e) if is_not_found(&e) => {
                tracing::debug!(image = %name, from, "not found");
                not_found = true;
            }
            Err(e) => {
                let message = match &e {
                    // containerd's wording, so users see the status code.
                    OciDistributionError::UnauthorizedError { url } => {
                        format!("unexpected status from GET request to {url}: 401 Unauthorized")
                    }
                    e => error_text(e),
                };
                tracing::debug!(image = %name, from, error = %message, "resolve failed");
                errors.push(if mirror.is_some() {
                    format!("mirror {from}: {message}")
                } else {
                    message
                });
            }
        }
    }
    if not_found {
        return Err(ImageError::NotFound { image: name });
    }
    Err(ImageError::Pull {
        message: format!(
            "failed to resolve reference \"{name}\": {}",
            errors.join("; ")
        ),
        image: name,
    })
}

fn base_reference(image: &ImageRef) -> Reference {
    match (&image.tag, &image.digest) {
        (Some(tag), Some(digest)) => Reference::with_tag_and_digest(
            image.domain.clone(),
            image.path.clone(),
            tag.clone(),
            digest.clone(),
        ),
        (_, Some(digest)) => {
            Reference::with_digest(image.domain.clone(), image.path.clone(), digest.clone())
        }
        (tag, None) => Reference::with_tag(
            image.domain.clone(),
            image.path.clone(),
            tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

/// A client that speaks plain HTTP to `http://` mirrors and to loopback registries (which
/// Docker also treats as insecure), HTTPS to everything else.
fn client_for(registries: &RegistryConfig, image: &ImageRef) -> Client {
    let mut insecure = registries.insecure_hosts();
    if is_loopback(&image.domain) {
        insecure.push(image.domain.clone());
    }
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(120)),
        ..ClientConfig::default()
    })
}

fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn download(
    client: &Client,
    reference: &Reference,
    desc: &oci_client::manifest::OciDescriptor,
    path: &PathBuf,
) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| e.to_string())?;
    }
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut writer = tokio::io::BufWriter::new(file);
    client
        .pull_blob(reference, desc, &mut writer)
        .await
        .map_err(|e| error_text(&e))?;
    tokio::io::AsyncWriteExt::flush(&mut writer)
        .await
        .map_err(|e| e.to_string())
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

/// An error with its causes (reqwest hides the useful part in its sources).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn sha256_hex(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// The parts of the image config a container needs (`config` of the OCI image config).
pub(super) fn parse_config(json: &str) -> ImageConfig {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let c = &value["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    ImageConfig {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
        user: c["User"].as_str().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_fields_are_read() {
        let c = parse_config(
            r#"{"architecture":"amd64","config":{"Entrypoint":null,"Cmd":["sh"],"Env":["PATH=/bin"],"WorkingDir":"/w","User":"1000:1000"}}"#,
        );
        assert_eq!(c.cmd, vec!["sh"]);
        assert!(c.entrypoint.is_empty());
        assert_eq!(c.env, vec!["PATH=/bin"]);
        assert_eq!(
            (c.working_dir.as_str(), c.user.as_str()),
            ("/w", "1000:1000")
        );
        assert_eq!(parse_config("not json"), ImageConfig::default());
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}

//! The ConfigMaps and Secrets one pod uses, read once per sync so env and volumes see the same
//! versions. A missing object is recorded as `None`; whether that is an error depends on the
//! reference's `optional`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use skiff_proto::refs::{ObjectKind, referenced_objects};

use crate::node::objects::{ObjectCache, ObjectFetchError};

/// The objects a pod references, by name (`None`: does not exist).
#[derive(Debug, Clone, Default)]
pub struct PodObjects {
    pub namespace: String,
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
}

impl PodObjects {
    /// Reads every object `pod` references.
    pub async fn fetch(cache: &ObjectCache, pod: &Pod) -> Result<PodObjects, ObjectFetchError> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut out = PodObjects {
            namespace: namespace.clone(),
            ..Default::default()
        };
        for (kind, name) in referenced_objects(pod) {
            let value = cache.get(kind, &namespace, &name).await?;
            let decode_err = |e: serde_json::Error| ObjectFetchError::Unavailable {
                kind: kind.as_str(),
                namespace: namespace.clone(),
                name: name.clone(),
                message: format!("undecodable object: {e}"),
            };
            match kind {
                ObjectKind::ConfigMap => {
                    let obj = value
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(decode_err)?;
                    out.config_maps.insert(name, obj);
                }
                ObjectKind::Secret => {
                    let obj = value
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(decode_err)?;
                    out.secrets.insert(name, obj);
                }
            }
        }
        Ok(out)
    }

    /// The ConfigMap's keys and values (`data` and `binaryData`), or `None` if it is missing.
    pub fn config_map(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let cm = self.config_maps.get(name)?.as_ref()?;
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, ByteString(v)) in cm.binary_data.iter().flatten() {
            out.insert(k.clone(), v.clone());
        }
        Some(out)
    }

    /// The Secret's keys and decoded values (`data`, then `stringData`), or `None`.
    pub fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.secrets.get(name)?.as_ref()?;
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, ByteString(v)) in s.data.iter().flatten() {
            out.insert(k.clone(), v.clone());
        }
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Some(out)
    }
}

impl PodObjects {
    /// Registry credentials from the pod's `imagePullSecrets` (dockerconfigjson / dockercfg
    /// secrets); a missing or unreadable secret is skipped with a warning, as the kubelet does.
    pub fn pull_credentials(&self, pod: &Pod) -> crate::images::auth::Credentials {
        let mut creds = crate::images::auth::Credentials::default();
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten());
        for r in names {
            let Some(data) = self.secret(&r.name) else {
                tracing::warn!(secret = %r.name, "image pull secret not found");
                continue;
            };
            for key in [".dockerconfigjson", ".dockercfg"] {
                if let Some(doc) = data.get(key)
                    && let Err(e) = creds.add_docker_config(doc)
                {
                    tracing::warn!(secret = %r.name, error = %e, "unreadable image pull secret");
                }
            }
        }
        creds
    }
}

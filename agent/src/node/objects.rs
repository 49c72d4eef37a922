//! ConfigMaps and Secrets read through the node protocol's `GetObject`, behind a short-lived
//! cache: pod workers ask on every sync (about once a second), the control plane sees at most
//! one read per object per [`OBJECT_TTL`]. The TTL is how quickly volume updates propagate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_proto::node::ObjectRequest;
use skiff_proto::refs::ObjectKind;

use super::Client;

/// How long a read (or a NotFound) is reused.
pub const OBJECT_TTL: Duration = Duration::from_secs(2);

/// Why an object could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectFetchError {
    /// The control plane refused (the object is not referenced by this node's pods).
    #[error("{kind} {namespace}/{name} is not readable by this node: {message}")]
    Forbidden {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
    /// The control plane could not be asked or failed.
    #[error("reading {kind} {namespace}/{name}: {message}")]
    Unavailable {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
}

type Key = (ObjectKind, String, String);

/// The cache, shared by every pod worker.
pub struct ObjectCache {
    client: Client,
    node_name: String,
    entries: Mutex<HashMap<Key, (Instant, Option<serde_json::Value>)>>,
}

impl ObjectCache {
    pub fn new(client: Client, node_name: String) -> ObjectCache {
        ObjectCache {
            client,
            node_name,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The object as JSON, `None` if it does not exist. A failed refresh falls back to the last
    /// good answer, so a control plane outage does not empty volumes.
    pub async fn get(
        &self,
        kind: ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ObjectFetchError> {
        let key = (kind, namespace.to_string(), name.to_string());
        let cached = self.lock().get(&key).cloned();
        if let Some((at, value)) = &cached
            && at.elapsed() < OBJECT_TTL
        {
            return Ok(value.clone());
        }
        let req = ObjectRequest {
            node_name: self.node_name.clone(),
            kind: kind.as_str().into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let answer = match self.client.clone().get_object(req).await {
            Ok(reply) => serde_json::from_slice(&reply.into_inner().object_json)
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                self.lock().remove(&key);
                return Err(ObjectFetchError::Forbidden {
                    kind: kind.as_str(),
                    namespace: namespace.into(),
                    name: name.into(),
                    message: status.message().into(),
                });
            }
            Err(status) => Err(status.message().to_string()),
        };
        match answer {
            Ok(value) => {
                let mut entries = self.lock();
                entries.insert(key, (Instant::now(), value.clone()));
                if entries.len() > 1024 {
                    // Forget objects no pod has asked for in a while.
                    entries.retain(|_, (at, _)| at.elapsed() < OBJECT_TTL * 30);
                }
                Ok(value)
            }
            Err(message) => match cached {
                Some((_, value)) => {
                    tracing::debug!(%message, %namespace, %name, "using a stale object");
                    Ok(value)
                }
                None => Err(ObjectFetchError::Unavailable {
                    kind: kind.as_str(),
                    namespace: namespace.into(),
                    name: name.into(),
                    message,
                }),
            },
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Option<serde_json::Value>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

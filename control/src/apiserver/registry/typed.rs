//! The typed convenience API over the JSON registry, for in-process callers (scheduler, node
//! protocol server): `registry.get::<Pod>(Some("ns"), "x")` and friends, with k8s-openapi types.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    DeleteParams, ListParams, PatchType, Registry, Subresource, WatchEventType, WriteParams,
    object, resource,
};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;

/// A typed list: items plus the list's resourceVersion (a watch from it misses nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    pub resource_version: String,
    pub continue_token: Option<String>,
}

fn def_of<K: Resource>() -> Result<&'static ResourceDef, ApiError> {
    resource(K::GROUP, K::URL_PATH_SEGMENT)
}

fn from_json<K: DeserializeOwned>(v: Value) -> Result<K, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::internal(format!("decoding object: {e}")))
}

fn to_json<K: Serialize>(k: &K) -> Result<Value, ApiError> {
    serde_json::to_value(k).map_err(|e| ApiError::bad_request(format!("encoding object: {e}")))
}

/// One typed watch event.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    /// The object's last state (or, for a selector watch, its state when it stopped matching).
    Deleted(K),
    /// A resourceVersion the watch has seen everything up to.
    Bookmark(String),
    /// The watch failed (e.g. 410 Gone: re-list and watch again); the stream ends after it.
    Error(ApiError),
}

/// A stream of typed watch events.
pub type TypedWatchStream<K> = Pin<Box<dyn Stream<Item = WatchEvent<K>> + Send>>;

impl Registry {
    pub async fn get<K: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<K, ApiError> {
        from_json(self.get_json(def_of::<K>()?, namespace, name).await?)
    }

    pub async fn list<K: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<K>, ApiError> {
        let list = self.list_json(def_of::<K>()?, namespace, params).await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(from_json)
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version.to_string(),
            continue_token: list.continue_token,
        })
    }

    /// Creates `obj` in the namespace named by its metadata.
    pub async fn create<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        let v = to_json(obj)?;
        let ns = object::namespace(&v).map(str::to_string);
        from_json(
            self.create_json(def_of::<K>()?, ns.as_deref(), v, WriteParams::default())
                .await?,
        )
    }

    /// Replaces `obj` (409 Conflict when its resourceVersion is stale).
    pub async fn replace<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        self.replace_sub(obj, Subresource::Main).await
    }

    /// Replaces only `obj`'s status.
    pub async fn replace_status<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
    ) -> Result<K, ApiError> {
        self.replace_sub(obj, Subresource::Status).await
    }

    async fn replace_sub<K: Resource + Serialize + DeserializeOwned>(
        &self,
        obj: &K,
        sub: Subresource,
    ) -> Result<K, ApiError> {
        let v = to_json(obj)?;
        let ns = object::namespace(&v).map(str::to_string);
        let name = object::name(&v).to_string();
        from_json(
            self.update_json(
                def_of::<K>()?,
                ns.as_deref(),
                &name,
                v,
                sub,
                WriteParams::default(),
            )
            .await?,
        )
    }

    pub async fn patch<K: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
    ) -> Result<K, ApiError> {
        from_json(
            self.patch_json(
                def_of::<K>()?,
                namespace,
                name,
                kind,
                patch,
                Subresource::Main,
                WriteParams::default(),
            )
            .await?,
        )
    }

    pub async fn patch_status<K: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
    ) -> Result<K, ApiError> {
        from_json(
            self.patch_json(
                def_of::<K>()?,
                namespace,
                name,
                kind,
                patch,
                Subresource::Status,
                WriteParams::default(),
            )
            .await?,
        )
    }

    /// Deletes (or, for a bound pod, marks terminating); returns the object.
    pub async fn delete<K: Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<K, ApiError> {
        from_json(
            self.delete_json(def_of::<K>()?, namespace, name, params)
                .await?,
        )
    }

    /// Watches objects of kind `K` (see [`Registry::watch_json`]); `resource_version` None
    /// starts with the current objects as `Added`.
    pub async fn watch<K: Resource + DeserializeOwned + Send + 'static>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: Option<String>,
    ) -> Result<TypedWatchStream<K>, ApiError> {
        let s = self
            .watch_json(
                def_of::<K>()?,
                namespace,
                params,
                resource_version.as_deref(),
            )
            .await?;
        Ok(s.map(|ev| match ev.kind {
            WatchEventType::Bookmark => WatchEvent::Bookmark(
                ev.object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            WatchEventType::Error => WatchEvent::Error(status_error(&ev.object)),
            kind => match from_json::<K>(ev.object) {
                Ok(k) if kind == WatchEventType::Added => WatchEvent::Added(k),
                Ok(k) if kind == WatchEventType::Modified => WatchEvent::Modified(k),
                Ok(k) => WatchEvent::Deleted(k),
                Err(e) => WatchEvent::Error(e),
            },
        })
        .boxed())
    }
}

/// Rebuilds the error an ERROR event's Status describes.
fn status_error(status: &Value) -> ApiError {
    let message = status["message"].as_str().unwrap_or_default().to_string();
    match status["code"].as_i64() {
        Some(410) => ApiError::gone(message),
        Some(400) => ApiError::bad_request(message),
        _ => ApiError::internal(message),
    }
}

impl Registry {
    /// Assigns a pod to a node (what `POST pods/{name}/binding` does). 409 Conflict when the
    /// pod is already bound or terminating.
    pub async fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        node_name: &str,
    ) -> Result<k8s_openapi::api::core::v1::Pod, ApiError> {
        from_json(self.bind_pod_json(namespace, name, node_name).await?)
    }
}

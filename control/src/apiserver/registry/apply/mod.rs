//! Server-side apply (`application/apply-patch+yaml`) and `metadata.managedFields`, following
//! upstream's structured-merge-diff to the degree users see it: applied configurations merge into
//! the live object by the schema's list and map types, every write records the fields it changed
//! under its field manager, fields an applier stops applying are removed unless someone else
//! owns them, and applying a value over another manager's field is a conflict unless forced.
//!
//! Layout: `schema` (list/map types of every upstream field), `fieldset` (field sets and the
//! `FieldsV1` encoding), `merge` (field sets of values, merge and removal), `managed` (the
//! entries, update recording, apply and its conflicts).

mod fieldset;
mod managed;
mod merge;
mod schema;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod kubectl_tests;
#[cfg(test)]
mod tests;

use serde_json::Value;

use super::{RETRIES, Registry, Subresource, WriteParams, object};
use crate::apiserver::error::{ApiError, FieldError};
use crate::apiserver::resources::ResourceDef;

pub use fieldset::FieldSet;
pub(crate) use managed::record_update;

/// The manager internal writes (controllers, scheduler, node protocol) are recorded under when
/// they name none.
pub const DEFAULT_MANAGER: &str = "skiff-control";

/// The longest field manager name upstream accepts.
const MAX_MANAGER: usize = 128;

/// Who makes a write, for `managedFields` (the `fieldManager` parameter, else from the
/// User-Agent). Inline and `Copy` so `WriteParams` stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FieldManager {
    buf: [u8; MAX_MANAGER],
    len: u8,
    /// The object's managedFields were computed by an apply already; keep them.
    pub(crate) applied: bool,
    /// The subresource the write came through when it is not the registry's own (`scale`).
    subresource: Option<&'static str>,
}

impl std::fmt::Debug for FieldManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldManager({:?})", self.as_str())
    }
}

impl FieldManager {
    /// A manager named by a request's `fieldManager` (1–128 bytes, else 400 as upstream).
    pub fn new(name: &str) -> Result<Self, ApiError> {
        if name.len() > MAX_MANAGER {
            return Err(ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER} bytes"
            )));
        }
        Ok(Self::truncated(name))
    }

    fn truncated(name: &str) -> Self {
        let mut end = name.len().min(MAX_MANAGER);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; MAX_MANAGER];
        buf[..end].copy_from_slice(&name.as_bytes()[..end]);
        FieldManager {
            buf,
            len: end as u8,
            applied: false,
            subresource: None,
        }
    }

    /// The manager upstream derives from a User-Agent: the part before the first `/`
    /// (`kubectl/v1.33.0 (linux/amd64)` → `kubectl`).
    pub fn from_user_agent(user_agent: &str) -> Self {
        Self::truncated(user_agent.split('/').next().unwrap_or_default())
    }

    /// From a request: `fieldManager` if given, else the User-Agent's prefix.
    pub fn from_request(
        field_manager: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Option<Self>, ApiError> {
        match field_manager.filter(|m| !m.is_empty()) {
            Some(m) => Self::new(m).map(Some),
            None => Ok(user_agent
                .map(Self::from_user_agent)
                .filter(|m| !m.as_str().is_empty())),
        }
    }

    /// The same manager writing through subresource `name` (recorded as `subresource`).
    pub fn via(self, name: &'static str) -> Self {
        FieldManager {
            subresource: Some(name),
            ..self
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// The manager name a write is recorded under.
pub(crate) fn manager_name(manager: &Option<FieldManager>) -> &str {
    manager
        .as_ref()
        .map_or(DEFAULT_MANAGER, FieldManager::as_str)
}

/// The subresource a write is recorded under.
pub(crate) fn subresource_of(manager: &Option<FieldManager>, sub: Subresource) -> &'static str {
    match (manager.and_then(|m| m.subresource), sub) {
        (Some(s), _) => s,
        (None, Subresource::Main) => "",
        (None, Subresource::Status) => "status",
    }
}

/// Whether the write carries managedFields an apply computed.
pub(crate) fn is_applied(manager: Option<FieldManager>) -> bool {
    manager.is_some_and(|m| m.applied)
}

/// The 422 upstream answers an apply without `fieldManager`.
pub fn manager_required() -> ApiError {
    let cause = FieldError {
        detail: "is required for apply patch".into(),
        ..FieldError::required("fieldManager")
    };
    match ApiError::invalid("meta.k8s.io", "PatchOptions", "", vec![cause]) {
        ApiError::Invalid {
            message,
            subject,
            causes,
        } => ApiError::Invalid {
            // Upstream qualifies the kind with its group here.
            message: message.replacen("PatchOptions", "PatchOptions.meta.k8s.io", 1),
            subject,
            causes,
        },
        other => other,
    }
}

/// Checks an applied configuration against the URL: an object of this kind and name.
fn check_config(def: &ResourceDef, name: &str, config: &Value) -> Result<(), ApiError> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        ));
    }
    let gv = def.group_version();
    match (config["apiVersion"].as_str(), config["kind"].as_str()) {
        (Some(v), Some(k)) if v == gv && k == def.kind => {}
        (Some(v), Some(k)) if !v.is_empty() && !k.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the apiVersion and kind of the applied configuration ({v}, {k}) do not match the resource ({gv}, {})",
                def.kind
            )));
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an applied configuration",
            ));
        }
    }
    match config["metadata"]["name"].as_str() {
        Some(n) if n == name => Ok(()),
        Some(n) if !n.is_empty() => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

impl Registry {
    /// Server-side apply of `config` by `manager` (required): creates the object if it does not
    /// exist, else merges it into the live one; 409 on conflicts with other managers unless
    /// `force`.
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the apply request's parts"
    )]
    pub async fn apply_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        config: &Value,
        force: bool,
        sub: Subresource,
        params: WriteParams,
        manager: Option<FieldManager>,
    ) -> Result<Value, ApiError> {
        let Some(mut manager) = manager else {
            return Err(manager_required());
        };
        check_config(def, name, config)?;
        let mut config = config.clone();
        config["metadata"]["name"] = Value::from(name);
        if let (true, Some(ns)) = (def.namespaced, namespace) {
            config["metadata"]["namespace"] = Value::from(ns);
        }
        let pinned = object::resource_version(&config)?;
        manager.applied = true;
        for _ in 0..RETRIES {
            let (old, rev) = match self.get_with_revision(def, namespace, name).await {
                Ok(found) => found,
                Err(ApiError::NotFound { .. }) if sub == Subresource::Main => {
                    let obj = managed::apply(def, None, &config, manager.as_str(), force, sub)?;
                    match self
                        .create_json_as(def, namespace, obj, params, Some(manager))
                        .await
                    {
                        Err(ApiError::AlreadyExists { .. }) => continue,
                        other => return other,
                    }
                }
                Err(e) => return Err(e),
            };
            if pinned.is_some_and(|p| p != rev) {
                return Err(ApiError::conflict(def.group, def.plural, name));
            }
            let new = managed::apply(def, Some(&old), &config, manager.as_str(), force, sub)?;
            match self
                .write_update(
                    def,
                    namespace,
                    name,
                    new,
                    &old,
                    (rev, sub),
                    params,
                    Some(manager),
                )
                .await
            {
                Err(ApiError::Conflict { .. }) if pinned.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }
}

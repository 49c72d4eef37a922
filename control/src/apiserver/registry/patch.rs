//! PATCH: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the `json-patch` crate) and
//! strategic merge patch.
//!
//! Limitation: strategic merge patch is applied as a JSON merge patch for now, after dropping
//! its `$`-directives (`$setElementOrder/...`, `$retainKeys`, `$patch`, `$deleteFromPrimitiveList`).
//! Lists are therefore replaced, not merged by their patch-merge-key (`containers` by `name`,
//! ...). This is right for the common `kubectl label/annotate/scale/cordon` patches; full SMP
//! follows the OpenAPI patch-strategy markers and comes with the OpenAPI work.

use serde_json::Value;

use super::{RETRIES, Registry, Subresource, WriteParams, object};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;

/// The PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json` (applied as a merge patch, see module docs)
    StrategicMerge,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            _ => None,
        }
    }
}

/// Removes strategic-merge directives (keys starting with `$`) recursively.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Applies a patch document to `target`.
pub fn apply_patch(target: &mut Value, kind: PatchType, patch: &Value) -> Result<(), ApiError> {
    match kind {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &p).map_err(|e| ApiError::Invalid {
                message: format!(
                    "the server rejected our request due to an error in our request: {e}"
                ),
                subject: Default::default(),
                causes: Vec::new(),
            })
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchType::StrategicMerge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let mut p = patch.clone();
            strip_directives(&mut p);
            json_patch::merge(target, &p);
            Ok(())
        }
    }
}

impl Registry {
    /// Patches an object (or its status). A `metadata.resourceVersion` in the result acts as a
    /// precondition; without one, a concurrent change retries the patch on the new object.
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the PATCH request's parts"
    )]
    pub async fn patch_json(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
        sub: Subresource,
        params: WriteParams,
    ) -> Result<Value, ApiError> {
        for _ in 0..RETRIES {
            let (old, rev) = self.get_with_revision(def, namespace, name).await?;
            let mut new = old.clone();
            apply_patch(&mut new, kind, patch)?;
            let expected = object::resource_version(&new)?;
            if expected.is_some_and(|e| e != rev) {
                return Err(ApiError::conflict(def.group, def.plural, name));
            }
            object::set_type_meta(def, &mut new)?;
            if object::name(&new) != name
                || (def.namespaced && object::namespace(&new) != namespace)
            {
                return Err(ApiError::bad_request(
                    "a patch may not change metadata.name or metadata.namespace",
                ));
            }
            let pinned = patch["metadata"]["resourceVersion"].is_string();
            match self
                .write_update(def, namespace, name, new, &old, rev, sub, params)
                .await
            {
                Err(ApiError::Conflict { .. }) if !pinned => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(def.group, def.plural, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_json_and_strategic() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        apply_patch(
            &mut o,
            PatchType::Merge,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        apply_patch(
            &mut o,
            PatchType::Json,
            &json!([{"op": "add", "path": "/spec/x/-", "value": 3}]),
        )
        .unwrap();
        assert_eq!(o["spec"]["x"], json!([1, 2, 3]));
        let e = apply_patch(
            &mut o,
            PatchType::Json,
            &json!([{"op": "test", "path": "/spec/x/0", "value": 9}]),
        )
        .unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(
            apply_patch(&mut o, PatchType::Json, &json!({"op": "x"}))
                .unwrap_err()
                .code(),
            400
        );
        apply_patch(
            &mut o,
            PatchType::StrategicMerge,
            &json!({"$setElementOrder/x": [], "metadata": {"labels": {"d": "4", "$patch": "merge"}}}),
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"]["d"], "4");
        assert!(o.get("$setElementOrder/x").is_none());
        assert!(o["metadata"]["labels"].get("$patch").is_none());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            None
        );
    }
}

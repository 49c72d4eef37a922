//! PATCH: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the `json-patch` crate) and
//! strategic merge patch (the `strategic` module, driven by the upstream patch metadata of each
//! field). Kinds without an upstream type reject strategic merge patches with 415, as upstream
//! does for custom resources. Server-side apply (`application/apply-patch+yaml`) is the `apply`
//! module's.

use serde_json::Value;

use super::{FieldManager, RETRIES, Registry, Subresource, WriteParams, object};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;

#[path = "strategic/mod.rs"]
pub(crate) mod strategic;

/// The PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
}

/// The content type of a server-side apply (`application/apply-patch+yaml`; the CBOR form is
/// not served).
pub fn is_apply_content_type(ct: &str) -> bool {
    ct.split(';').next().unwrap_or_default().trim() == "application/apply-patch+yaml"
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

    /// The strategic-merge metadata (strategy, merge key) of `property` of the OpenAPI
    /// definition `definition`, for `x-kubernetes-patch-strategy` / `-merge-key` in the served
    /// documents; `None` when the field has none.
    pub fn strategic_field_meta(
        definition: &str,
        property: &str,
    ) -> Option<(&'static str, &'static str)> {
        strategic::definition_patch_meta(definition, property).map(|m| (m.strategy, m.merge_key))
    }
}

/// The 415 upstream answers a strategic merge patch of a kind it has no type for.
fn strategic_unsupported() -> ApiError {
    ApiError::UnsupportedMediaType {
        message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
    }
}

/// Applies a patch document to `target`, an object of kind `def`.
pub fn apply_patch(
    def: &ResourceDef,
    target: &mut Value,
    kind: PatchType,
    patch: &Value,
) -> Result<(), ApiError> {
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
            let schema = strategic::KindSchema::for_kind(&def.group_version(), def.kind)
                .ok_or_else(strategic_unsupported)?;
            let Value::Object(patch) = patch else {
                return Err(ApiError::bad_request("invalid JSON document"));
            };
            strategic::apply(target, patch, &schema)?;
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
        self.patch_json_as(def, namespace, name, kind, patch, sub, params, None)
            .await
    }

    /// [`Registry::patch_json`] recorded in `managedFields` under `manager`.
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the PATCH request's parts"
    )]
    pub async fn patch_json_as(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch: &Value,
        sub: Subresource,
        params: WriteParams,
        manager: Option<FieldManager>,
    ) -> Result<Value, ApiError> {
        for _ in 0..RETRIES {
            let (old, rev) = self.get_with_revision(def, namespace, name).await?;
            let mut new = old.clone();
            apply_patch(def, &mut new, kind, patch)?;
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
                .write_update(def, namespace, name, new, &old, (rev, sub), params, manager)
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
    use crate::apiserver::resources::find;
    use serde_json::json;

    fn pods() -> &'static ResourceDef {
        find("", "v1", "pods").unwrap()
    }

    #[test]
    fn merge_and_json_patches() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        apply_patch(
            pods(),
            &mut o,
            PatchType::Merge,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(o["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        apply_patch(
            pods(),
            &mut o,
            PatchType::Json,
            &json!([{"op": "add", "path": "/spec/x/-", "value": 3}]),
        )
        .unwrap();
        assert_eq!(o["spec"]["x"], json!([1, 2, 3]));
        let e = apply_patch(
            pods(),
            &mut o,
            PatchType::Json,
            &json!([{"op": "test", "path": "/spec/x/0", "value": 9}]),
        )
        .unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(
            apply_patch(pods(), &mut o, PatchType::Json, &json!({"op": "x"}))
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [
            {"name": "a", "image": "busybox:1"},
            {"name": "b", "image": "busybox:1"},
        ]}});
        apply_patch(
            pods(),
            &mut pod,
            PatchType::StrategicMerge,
            &json!({"metadata": {"labels": {"b": "2"}}, "spec": {"containers": [{"name": "b", "image": "busybox:2"}]}}),
        )
        .unwrap();
        assert_eq!(pod["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:2"}])
        );
        // A merge patch replaces the list.
        apply_patch(
            pods(),
            &mut pod,
            PatchType::Merge,
            &json!({"spec": {"containers": [{"name": "b", "image": "busybox:3"}]}}),
        )
        .unwrap();
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "b", "image": "busybox:3"}])
        );
    }

    #[test]
    fn strategic_errors_answer_like_upstream() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        // `$patch: merge` is not a map directive upstream.
        let e = apply_patch(
            pods(),
            &mut pod,
            PatchType::StrategicMerge,
            &json!({"metadata": {"labels": {"$patch": "merge", "d": "4"}}}),
        );
        // labels is absent: the value is taken whole, the directive map dropped.
        assert!(e.is_ok());
        assert!(pod["metadata"].get("labels").is_none());
        let mut pod = json!({"metadata": {"labels": {"a": "1"}}});
        let e = apply_patch(
            pods(),
            &mut pod,
            PatchType::StrategicMerge,
            &json!({"metadata": {"labels": {"$patch": "merge", "d": "4"}}}),
        )
        .unwrap_err();
        assert_eq!(e.code(), 500);
        assert!(
            e.to_string()
                .starts_with("unknown patch type: merge in map"),
            "{e}"
        );
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let e = apply_patch(
            pods(),
            &mut pod,
            PatchType::StrategicMerge,
            &json!({"spec": {"containers": [{"image": "y"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "map: map[image:y] does not contain declared merge key: name"
        );
        let e = apply_patch(
            pods(),
            &mut pod,
            PatchType::StrategicMerge,
            &json!({"spec": {"$retainKeys": "x"}}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (400, "invalid patch format of retainKeys")
        );
    }

    #[test]
    fn strategic_patch_of_a_kind_without_upstream_type_is_415() {
        let widgets = ResourceDef {
            group: "example.com",
            version: "v1",
            plural: "widgets",
            kind: "Widget",
            ..*pods()
        };
        let mut o = json!({"spec": {"a": 1}});
        let e = apply_patch(
            &widgets,
            &mut o,
            PatchType::StrategicMerge,
            &json!({"spec": {"a": 2}}),
        )
        .unwrap_err();
        assert_eq!(e.code(), 415);
        assert!(
            e.to_string().contains("application/merge-patch+json"),
            "{e}"
        );
        apply_patch(
            &widgets,
            &mut o,
            PatchType::Merge,
            &json!({"spec": {"a": 2}}),
        )
        .unwrap();
        assert_eq!(o, json!({"spec": {"a": 2}}));
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

    #[test]
    fn openapi_field_meta_comes_from_upstream_markers() {
        let meta = PatchType::strategic_field_meta;
        assert_eq!(
            meta("io.k8s.api.core.v1.PodSpec", "containers"),
            Some(("merge", "name"))
        );
        assert_eq!(
            meta("io.k8s.api.core.v1.PodSpec", "volumes"),
            Some(("merge,retainKeys", "name"))
        );
        assert_eq!(meta("io.k8s.api.core.v1.PodSpec", "tolerations"), None);
        assert_eq!(
            meta("io.k8s.api.core.v1.Container", "ports"),
            Some(("merge", "containerPort"))
        );
        // EphemeralContainer embeds its common fields inline.
        assert_eq!(
            meta("io.k8s.api.core.v1.EphemeralContainer", "env"),
            Some(("merge", "name"))
        );
        assert_eq!(
            meta(
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "finalizers"
            ),
            Some(("merge", ""))
        );
        assert_eq!(
            meta("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
            Some(("retainKeys", ""))
        );
        assert_eq!(
            meta("io.k8s.api.storage.v1.CSINodeSpec", "drivers"),
            Some(("merge", "name"))
        );
        assert_eq!(
            meta("io.k8s.api.core.v1.ServiceSpec", "ports"),
            Some(("merge", "port"))
        );
    }
}

//! Helpers on the JSON form of objects: store encoding (resourceVersion lives outside the
//! stored bytes), metadata accessors, timestamps, generated names, continue tokens.

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;
use crate::store::{KeyValue, Revision};

/// Decodes a stored value and stamps `metadata.resourceVersion` with `revision`.
pub fn decode(bytes: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))?;
    set_resource_version(&mut v, revision);
    Ok(v)
}

/// Decodes a key-value at its mod revision.
pub fn decode_kv(kv: &KeyValue) -> Result<Value, ApiError> {
    decode(&kv.value, kv.mod_revision)
}

/// Encodes an object for the store (without `metadata.resourceVersion`).
pub fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).map_err(|e| ApiError::internal(e.to_string()))
}

pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["resourceVersion"] = json!(revision.to_string());
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"]
        .as_str()
        .filter(|s| !s.is_empty())
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The client's `metadata.resourceVersion`, if it sent one.
pub fn resource_version(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match obj["metadata"]["resourceVersion"].as_str() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}"))),
    }
}

pub fn is_terminating(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

pub fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// RFC 3339 in seconds, as Kubernetes writes `metav1.Time`.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now() -> String {
    format_time(jiff::Timestamp::now())
}

/// `generateName` plus five random characters from Kubernetes' alphabet.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Kubernetes trims the prefix so the result fits 63 characters.
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// Checks `kind`/`apiVersion` against the resource and fills them in.
pub fn set_type_meta(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let gv = def.group_version();
    if let Some(v) = obj["apiVersion"].as_str()
        && !v.is_empty()
        && v != gv
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({gv})"
        )));
    }
    if let Some(k) = obj["kind"].as_str()
        && !k.is_empty()
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    obj["apiVersion"] = json!(gv);
    obj["kind"] = json!(def.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    Ok(())
}

/// Sets the namespace from the request (namespaced kinds) or removes it (cluster kinds).
pub fn set_namespace(
    def: &ResourceDef,
    obj: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if !def.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let Some(ns) = namespace else {
        return Err(ApiError::bad_request(
            "a namespace is required for namespaced resources",
        ));
    };
    match self::namespace(obj) {
        Some(given) if given != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            obj["metadata"]["namespace"] = json!(ns);
            Ok(())
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    start: String,
    rv: Revision,
}

pub fn encode_continue(last_key: &str, revision: Revision) -> String {
    let json = serde_json::to_vec(&ContinueToken {
        start: last_key.to_string(),
        rv: revision,
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The key to continue after; it must lie under `prefix`.
pub fn decode_continue(token: &str, prefix: &str) -> Result<String, ApiError> {
    decode_continue_at(token, prefix).map(|(start, _)| start)
}

/// The key to continue after and the revision of the list's first page.
pub fn decode_continue_at(token: &str, prefix: &str) -> Result<(String, Revision), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if !t.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((t.start, t.rv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_is_not_stored() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode(&obj).unwrap();
        assert!(
            !String::from_utf8(bytes.clone())
                .unwrap()
                .contains("resourceVersion")
        );
        let back = decode(&bytes, 9).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn generated_names() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        assert_eq!(generate_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn continue_tokens_round_trip_and_stay_in_prefix() {
        let t = encode_continue("/registry/pods/ns/b", 4);
        assert_eq!(
            decode_continue(&t, "/registry/pods/ns/").unwrap(),
            "/registry/pods/ns/b"
        );
        assert_eq!(
            decode_continue(&t, "/registry/nodes/").unwrap_err().code(),
            400
        );
        assert_eq!(decode_continue("???", "/").unwrap_err().code(), 400);
    }

    #[test]
    fn time_format() {
        let t: jiff::Timestamp = "2024-03-04T05:06:07.89Z".parse().unwrap();
        assert_eq!(format_time(t), "2024-03-04T05:06:07Z");
    }
}

//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`): the `k8s\0` envelope, the
//! `runtime.Unknown` wrapper and a generic, descriptor-driven decoding of the typed message into
//! the JSON the JSON path would have produced.
//!
//! The descriptors are built at compile time (control/build.rs) from the prost code of the
//! `k8s-pb` crate and the JSON field names of `k8s-openapi`, so every upstream kind decodes
//! without per-kind code.

mod json;

use std::sync::LazyLock;

use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

use crate::apiserver::error::ApiError;

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/k8s_descriptors.bin"))[..])
        .expect("the descriptors built by build.rs are valid")
});

/// apiVersion → protobuf package of its kinds (from k8s-pb's `Resource` impls).
static API_VERSIONS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/k8s_api_versions.rs"));

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NoMagic,
    /// The `runtime.Unknown` envelope is malformed.
    #[error("unable to decode the protobuf envelope: {0}")]
    Envelope(#[source] prost::DecodeError),
    /// The envelope names no apiVersion/kind.
    #[error("the protobuf envelope carries no apiVersion and kind")]
    NoTypeMeta,
    /// No protobuf message is known for the kind.
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    /// The typed message is malformed.
    #[error("unable to decode {message} from protobuf: {source}")]
    Message {
        message: String,
        #[source]
        source: prost::DecodeError,
    },
    /// The envelope's payload is compressed or in another encoding.
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// The payload was declared JSON and is not.
    #[error("unable to decode the embedded JSON object: {0}")]
    EmbeddedJson(#[source] serde_json::Error),
}

impl From<ProtobufError> for ApiError {
    /// Kubernetes answers 400 BadRequest for every body it cannot decode, including a kind it
    /// has no type for ("the object provided is unrecognized ... no kind ... is registered").
    fn from(e: ProtobufError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// The protobuf message of `kind` in `api_version`, if Kubernetes defines one.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let package = API_VERSIONS
        .iter()
        .find(|(v, _)| *v == api_version)
        .map(|(_, p)| *p)?;
    POOL.get_message_by_name(&format!("{package}.{kind}"))
}

/// Decodes a protobuf request body (magic + `runtime.Unknown`) into the object's JSON, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let unknown = Unknown::decode(rest).map_err(ProtobufError::Envelope)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = match (type_meta.api_version, type_meta.kind) {
        (Some(v), Some(k)) if !v.is_empty() && !k.is_empty() => (v, k),
        _ => return Err(ProtobufError::NoTypeMeta),
    };
    if let Some(enc) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(enc));
    }
    let raw = unknown.raw.unwrap_or_default();
    let mut object = match unknown.content_type.as_deref() {
        Some(ct) if ct.starts_with("application/json") => {
            serde_json::from_slice(&raw).map_err(ProtobufError::EmbeddedJson)?
        }
        _ => {
            let desc =
                message_for(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownKind {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                })?;
            let msg = DynamicMessage::decode(desc.clone(), raw.as_slice()).map_err(|source| {
                ProtobufError::Message {
                    message: desc.full_name().to_string(),
                    source,
                }
            })?;
            json::message_to_json(&msg)
        }
    };
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kubectl_tests;

//! The node protocol between skiff-control and skiff-agent, and the Kubernetes types both share.

/// Generated tonic/prost code for `skiff.node.v1`.
#[allow(
    clippy::allow_attributes_without_reason,
    reason = "the generated code carries its own allows"
)]
pub mod node {
    tonic::include_proto!("skiff.node.v1");
}

pub mod events;
pub mod quantity;
pub mod refs;

/// The Kubernetes API types (k8s-openapi, one pinned API version) used on both sides.
pub use k8s_openapi;

/// Encodes a Kubernetes object for the wire.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Kubernetes types always serialize")
}

/// Decodes a Kubernetes object from the wire.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(DecodeError)
}

/// A protocol message carried JSON that is not the Kubernetes object it should be.
#[derive(Debug, thiserror::Error)]
#[error("malformed object in node protocol message: {0}")]
pub struct DecodeError(#[source] pub serde_json::Error);

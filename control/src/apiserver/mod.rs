//! The Kubernetes-compatible REST API server (HTTPS, discovery, resources, watch, Status errors).
//!
//! Layout: `registry` holds the object semantics (the one implementation the HTTP handlers, the
//! scheduler and the node-protocol server share); `resources` is the table of served kinds with
//! their per-kind rules; `http` parses requests and encodes responses; `pki` and `serve` give the
//! HTTPS endpoint; `streams` is the seam to the nodes for logs.

use std::net::SocketAddr;
use std::path::PathBuf;

pub mod auth;
pub mod authz;
pub mod crd;
pub mod error;
pub mod http;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod serve;
pub mod streams;
pub mod table;
pub mod validation;

pub use auth::Auth;
pub use error::{ApiError, FieldError};
pub use http::{router, version_info};
pub use pki::{Pki, PkiError};
pub use registry::{
    DeleteParams, ListParams, ObjectList, PatchType, Preconditions, Registry, WriteParams,
};
pub use serve::serve;
pub use streams::{LogRequest, NoNodeStreams, NodeStreams};

/// The Kubernetes minor version skiff reports by default.
pub const DEFAULT_VERSION_MINOR: u32 = 33;

/// How the control plane binary configures the API server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Extra IPs / DNS names for the server certificate.
    pub extra_sans: Vec<String>,
    /// The minor version `/version` reports (kubectl's dispatcher picks its client by it).
    pub version_minor: u32,
    pub kubeconfig_path: PathBuf,
    /// The URL written into the kubeconfig, e.g. `https://127.0.0.1:6443`.
    pub server_url: String,
}

#[cfg(test)]
mod kubectl_tests;
#[cfg(test)]
mod test_server;

//! Cluster DNS in the agent (the job of kube-dns/CoreDNS on a node): a small authoritative
//! server for `cluster.local` ([`zone`]) fed from the Services stream the load balancer already
//! follows ([`records`]: what a Service and its EndpointSlices mean in DNS), listening on UDP
//! and TCP ([`server`]).
//!
//! Pods reach it at the cluster DNS address their resolv.conf names: the agent adds a static
//! socket-LB entry mapping that address's port 53 to the server's listener on the pod bridge
//! address (see ARCHITECTURE.md), so no interface carries the service address.

pub mod records;
pub mod server;
pub mod zone;
#[cfg(test)]
mod zone_tests;

use std::net::SocketAddr;

pub use records::{ServiceRecord, service_record};
pub use server::DnsServer;
pub use zone::{CLUSTER_DOMAIN, Lookup, Zone};

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Binding the listening sockets failed.
    #[error("binding the DNS server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Another socket error.
    #[error("dns socket: {0}")]
    Io(#[from] std::io::Error),
}

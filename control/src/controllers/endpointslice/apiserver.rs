//! The endpoints of the `default/kubernetes` Service: the API server's own address, written
//! as the Endpoints and the EndpointSlice named `kubernetes` (upstream's apiserver endpoint
//! reconciler), and re-asserted periodically.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{self as discovery, Endpoint, EndpointConditions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::SERVICE_NAME;
use crate::apiserver::registry::Registry;
use crate::controllers::{ControllerError, not_found_ok};

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
/// Keeps the EndpointSlice mirroring controller away from this Endpoints object.
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// How often the address is re-asserted.
pub const INTERVAL: Duration = Duration::from_secs(10);

fn meta(labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NAMESPACE.into()),
        labels: Some(labels),
        ..Default::default()
    }
}

fn label(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_string(), v.to_string())])
}

/// The Endpoints object for an API server at `ip:port`.
pub fn endpoints(ip: IpAddr, port: u16) -> Endpoints {
    Endpoints {
        metadata: meta(label(SKIP_MIRROR, "true")),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: ip.to_string(),
                ..Default::default()
            }]),
            not_ready_addresses: None,
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: port.into(),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]),
        }]),
    }
}

/// The EndpointSlice for an API server at `ip:port`.
pub fn slice(ip: IpAddr, port: u16) -> discovery::EndpointSlice {
    discovery::EndpointSlice {
        metadata: meta(label(SERVICE_NAME, NAME)),
        address_type: if ip.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![discovery::EndpointPort {
            name: Some("https".into()),
            port: Some(port.into()),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }
}

/// Writes the `kubernetes` Endpoints and EndpointSlice for `ip:port` unless they already say
/// so.
pub async fn publish(registry: &Registry, ip: IpAddr, port: u16) -> Result<(), ControllerError> {
    let want = endpoints(ip, port);
    match not_found_ok(registry.get::<Endpoints>(Some(NAMESPACE), NAME).await)? {
        None => {
            registry.create(&want).await?;
        }
        Some(mut cur)
            if cur.subsets != want.subsets || cur.metadata.labels != want.metadata.labels =>
        {
            cur.subsets = want.subsets;
            cur.metadata.labels = want.metadata.labels;
            registry.replace(&cur).await?;
        }
        Some(_) => {}
    }
    let want = slice(ip, port);
    match not_found_ok(
        registry
            .get::<discovery::EndpointSlice>(Some(NAMESPACE), NAME)
            .await,
    )? {
        None => {
            registry.create(&want).await?;
        }
        Some(cur) if cur.address_type != want.address_type => {
            // addressType is immutable: replace the slice.
            registry
                .delete::<discovery::EndpointSlice>(Some(NAMESPACE), NAME, &Default::default())
                .await?;
            registry.create(&want).await?;
        }
        Some(mut cur)
            if cur.endpoints != want.endpoints
                || cur.ports != want.ports
                || cur.metadata.labels != want.metadata.labels =>
        {
            cur.endpoints = want.endpoints;
            cur.ports = want.ports;
            cur.metadata.labels = want.metadata.labels;
            registry.replace(&cur).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// The address to advertise for an API server listening on `listen`: none for an unspecified
/// address (0.0.0.0 / ::), which clients cannot dial.
pub fn advertised(listen: SocketAddr) -> Option<SocketAddr> {
    (!listen.ip().is_unspecified()).then_some(listen)
}

/// Publishes `addr` now and every [`INTERVAL`] (repairing edits and deletions), forever.
pub async fn run(registry: Registry, addr: SocketAddr) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = publish(&registry, addr.ip(), addr.port()).await {
            tracing::warn!(error = %e, "publishing the kubernetes service endpoints failed");
        }
    }
}

//! The agent's side of ClusterIP services (kube-proxy's job): follows the control plane's
//! `Services` stream, keeps the desired state ([`desired`]: Services × EndpointSlices → per
//! service port backend lists) and programs the eBPF maps incrementally ([`program`]), timing
//! each change ([`stats`]); it also keeps the cluster DNS zone ([`crate::dns`]) in step.
//!
//! Until the first snapshot arrives the pinned maps keep whatever an earlier agent wrote, so
//! connections keep working across an agent restart; the snapshot then reconciles them.

pub mod desired;
#[cfg(test)]
mod desired_tests;
pub mod program;
#[cfg(test)]
mod program_tests;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_proto::node::service_update::Update;
use skiff_proto::node::{ServiceObjectKind, ServicesRequest};

pub use desired::{Affinity, Desired, Entries, NsName};
pub use program::{Change, Maps, Programmer, Writes};
pub use stats::ProgrammingStats;

use crate::lb::ServiceLb;
use crate::node::Client;

/// The versions of the last applied snapshot or change, to resume after on reconnect.
#[derive(Debug, Default, Clone)]
struct Versions {
    services: String,
    slices: String,
}

/// What the agent adds to the services it is told about.
#[derive(Default)]
pub struct Extras {
    /// Cluster DNS, kept in step with the Services stream.
    pub zone: Option<Arc<crate::dns::Zone>>,
    /// Entries of the agent's own (the cluster DNS address → the agent's DNS listener).
    pub statics: Vec<(NsName, Entries)>,
}

/// Follows the Services stream forever (reconnecting), programming `lb`.
pub async fn run(
    mut client: Client,
    node_name: String,
    lb: ServiceLb,
    stats: Arc<ProgrammingStats>,
    extras: Extras,
) {
    let mut programmer = Programmer::new(lb, stats);
    if let Some(zone) = extras.zone {
        programmer = programmer.with_zone(zone);
    }
    for (key, entries) in extras.statics {
        if let Err(e) = programmer.set_static(key.clone(), entries) {
            tracing::error!(service = %key, error = %e, "programming a static entry failed");
        }
    }
    let mut versions = Versions::default();
    loop {
        follow_once(&mut client, &node_name, &mut programmer, &mut versions).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn decode<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    skiff_proto::from_json(json)
        .map_err(|e| tracing::warn!(error = %e, "ignoring undecodable object"))
        .ok()
}

/// What one message means for the programmer; updates `versions`.
fn change_of(update: Update, versions: &mut Versions) -> Option<Change> {
    match update {
        Update::Snapshot(_) => None,
        Update::Upsert(u) => {
            let kind = ServiceObjectKind::try_from(u.kind).ok()?;
            match kind {
                ServiceObjectKind::Service => {
                    versions.services = u.resource_version;
                    decode(&u.object_json).map(|s| Change::Service(Box::new(s)))
                }
                ServiceObjectKind::EndpointSlice => {
                    versions.slices = u.resource_version;
                    decode(&u.object_json).map(|s| Change::Slice(Box::new(s)))
                }
                ServiceObjectKind::Unspecified => None,
            }
        }
        Update::Removed(r) => {
            let key = NsName::new(&r.namespace, &r.name);
            match ServiceObjectKind::try_from(r.kind).ok()? {
                ServiceObjectKind::Service => {
                    versions.services = r.resource_version;
                    Some(Change::ServiceRemoved(key))
                }
                ServiceObjectKind::EndpointSlice => {
                    versions.slices = r.resource_version;
                    Some(Change::SliceRemoved(key))
                }
                ServiceObjectKind::Unspecified => None,
            }
        }
    }
}

async fn follow_once<M: Maps>(
    client: &mut Client,
    node_name: &str,
    programmer: &mut Programmer<M>,
    versions: &mut Versions,
) {
    let request = ServicesRequest {
        node_name: node_name.to_string(),
        services_resource_version: versions.services.clone(),
        endpoint_slices_resource_version: versions.slices.clone(),
    };
    let mut stream = match client.services(request).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => {
            tracing::warn!(%status, "opening the services stream failed");
            return;
        }
    };
    while let Some(message) = stream.next().await {
        let received = Instant::now();
        let update = match message {
            Ok(m) => m.update,
            Err(status) => {
                tracing::warn!(%status, "services stream broke; reconnecting");
                return;
            }
        };
        let result = match update {
            Some(Update::Snapshot(s)) => {
                versions.services = s.services_resource_version;
                versions.slices = s.endpoint_slices_resource_version;
                let services = s.services_json.iter().filter_map(|j| decode(j)).collect();
                let slices = s
                    .endpoint_slices_json
                    .iter()
                    .filter_map(|j| decode(j))
                    .collect();
                programmer.snapshot(services, slices, received)
            }
            Some(u) => match change_of(u, versions) {
                Some(change) => programmer.apply(change, received),
                None => Ok(Writes::default()),
            },
            None => Ok(Writes::default()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "programming the service maps failed; reconciling");
            if let Err(e) = programmer.resync() {
                tracing::error!(error = %e, "reconciling the service maps failed");
            }
        }
    }
    tracing::info!("services stream ended; reconnecting");
}

/// Starts following services for this node (a task that runs until the process exits).
pub fn spawn(
    client: Client,
    node_name: String,
    lb: ServiceLb,
    extras: Extras,
) -> (tokio::task::JoinHandle<()>, Arc<ProgrammingStats>) {
    let stats = Arc::new(ProgrammingStats::default());
    let handle = tokio::spawn(run(client, node_name, lb, stats.clone(), extras));
    (handle, stats)
}

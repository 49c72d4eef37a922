//! Pod-level helpers shared by the worker and orphan cleanup: recording events, and removing
//! what a pod had on the node besides its containers (volumes' mounts, network, cgroup).

use super::Deps;
use super::state::PodRecord;

/// Records an Event through the control plane (best effort).
pub async fn send_event(deps: &Deps, event: &k8s_openapi::api::core::v1::Event) {
    let record = skiff_proto::node::EventRecord {
        event_json: skiff_proto::to_json(event),
    };
    if let Err(status) = deps.client.clone().record_event(record).await {
        tracing::debug!(%status, "recording event failed");
    }
}

/// Removes the pod's volume mounts, network and cgroup (idempotent). Call before removing the
/// pod directory: a tmpfs still mounted there would make that fail.
pub async fn cleanup_sandbox(deps: &Deps, uid: &str, record: &PodRecord) {
    let volumes = super::state::PodDir::new(&deps.pods_root, uid)
        .dir
        .join("volumes");
    if let Err(e) = super::volumes::tear_down(&volumes) {
        tracing::warn!(error = %e, "unmounting pod volumes failed");
    }
    if let Err(e) = deps.network.remove_pod(uid).await {
        tracing::warn!(error = %e, "removing pod network failed");
    }
    let qos = match record.qos.as_str() {
        "Guaranteed" => crate::cgroups::QosClass::Guaranteed,
        "Burstable" => crate::cgroups::QosClass::Burstable,
        _ => crate::cgroups::QosClass::BestEffort,
    };
    if let Err(e) = deps.cgroups.remove_pod(uid, qos) {
        tracing::warn!(error = %e, "removing pod cgroup failed");
    }
}

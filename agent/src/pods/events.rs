//! Events the agent records about pods (Pulling, Pulled, Created, Started, Failed, BackOff,
//! Killing), reported as the kubelet on this node.

use k8s_openapi::api::core::v1::{Event, Pod};
use skiff_proto::events::Reporter;

/// An Event about `pod` (and one of its containers, if given), from the kubelet on `node`.
pub fn pod_event(
    pod: &Pod,
    node: &str,
    container: Option<&str>,
    type_: &str,
    reason: &str,
    message: String,
) -> Event {
    let reporter = Reporter {
        component: "kubelet",
        host: Some(node),
    };
    skiff_proto::events::pod_event(pod, reporter, container, type_, reason, message)
}

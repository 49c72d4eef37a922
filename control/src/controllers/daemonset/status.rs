//! A DaemonSet's status from its nodes and pods (upstream's updateDaemonSetStatus): desired,
//! current, misscheduled, ready, available, updated and unavailable counts.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};

use super::nodes::placement;
use super::plan::{min_ready, oldest_first, pod_hash, pods_by_node};
use crate::controllers::common::{is_available, is_ready, is_terminating, phase};

/// The status; `hash` is the current revision's hash.
pub fn compute(
    ds: &DaemonSet,
    spec: &PodSpec,
    nodes: &[Node],
    pods: &[Pod],
    hash: &str,
    collision_count: i32,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    // Finished pods on their way out are no longer the node's daemon pod.
    let counted: Vec<Pod> = pods
        .iter()
        .filter(|p| !(is_terminating(&p.metadata) && matches!(phase(p), "Failed" | "Succeeded")))
        .cloned()
        .collect();
    let (by_node, _) = pods_by_node(&counted);
    let min_ready = min_ready(ds);
    let mut st = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: (collision_count > 0).then_some(collision_count),
        ..Default::default()
    };
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut here: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
        let scheduled = !here.is_empty();
        if !placement(spec, node).should_run {
            if scheduled {
                st.number_misscheduled += 1;
            }
            continue;
        }
        st.desired_number_scheduled += 1;
        if !scheduled {
            continue;
        }
        st.current_number_scheduled += 1;
        here.sort_by(oldest_first);
        let pod = here[0];
        if is_ready(pod) {
            st.number_ready += 1;
            if is_available(pod, min_ready, now) {
                *st.number_available.get_or_insert(0) += 1;
            }
        }
        if pod_hash(pod) == Some(hash) {
            *st.updated_number_scheduled.get_or_insert(0) += 1;
        }
    }
    let available = st.number_available.unwrap_or(0);
    st.number_available = Some(available);
    st.updated_number_scheduled = Some(st.updated_number_scheduled.unwrap_or(0));
    st.number_unavailable = Some(st.desired_number_scheduled - available);
    st.conditions = ds.status.as_ref().and_then(|s| s.conditions.clone());
    st
}

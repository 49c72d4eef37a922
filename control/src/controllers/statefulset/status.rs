//! A StatefulSet's status from its pods (upstream's computeReplicaStatus and
//! completeRollingUpdate): replicas, ready, available, current and updated counts, and the
//! current/update revisions.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::plan::Shape;
use super::pods::{revision, running_and_available, running_and_ready};
use crate::controllers::common::is_terminating;

/// The status; `pods` are the set's members, `current`/`update` the revision names.
pub fn compute(
    set: &StatefulSet,
    pods: &[Pod],
    current: &str,
    update: &str,
    collision_count: i32,
    now: jiff::Timestamp,
) -> StatefulSetStatus {
    let shape = Shape::of(set);
    let (mut replicas, mut ready, mut available, mut on_current, mut on_update) = (0, 0, 0, 0, 0);
    for p in pods {
        replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            if running_and_available(p, shape.min_ready, now) {
                available += 1;
            }
        }
        if !is_terminating(&p.metadata) {
            let rev = revision(p);
            if rev == Some(current) {
                on_current += 1;
            }
            if rev == Some(update) {
                on_update += 1;
            }
        }
    }
    let mut st = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(on_current),
        updated_replicas: Some(on_update),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // A finished rolling update: the update revision becomes the current one.
    if shape.rolling && on_update == replicas && ready == replicas {
        st.current_replicas = Some(on_update);
        st.current_revision = Some(update.to_string());
    }
    st
}

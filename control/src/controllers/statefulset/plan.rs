//! The steps of one StatefulSet sync as a pure function (upstream's updateStatefulSet): fill
//! and repair ordinals `0..replicas` in order, remove condemned ordinals from the highest, then
//! roll pods at or above `partition` onto the update revision from the highest ordinal, one
//! at a time. OrderedReady stops at the first step that must be waited on; Parallel does not.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::pods::{
    healthy, identity_matches, is_finished, ordinal, revision, running_and_available,
    running_and_ready,
};
use crate::controllers::common::is_terminating;

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It failed or finished; it is recreated under the same name.
    Finished,
    /// Its ordinal is beyond `replicas`.
    Condemned,
    /// It is not at the update revision.
    Update,
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the pod for `ordinal` from the current revision (`update == false`) or the update
    /// revision.
    Create {
        ordinal: i32,
        update: bool,
    },
    Delete {
        pod: Pod,
        why: Why,
    },
    /// Put the identity labels back on a pod.
    Relabel(Pod),
}

/// The spec values the algorithm reads.
#[derive(Debug, Clone)]
pub struct Shape {
    pub replicas: i32,
    pub start: i32,
    pub ordered: bool,
    pub rolling: bool,
    pub partition: i32,
    pub min_ready: i32,
}

impl Shape {
    pub fn of(set: &StatefulSet) -> Shape {
        let spec = set.spec.clone().unwrap_or_default();
        let strategy = spec.update_strategy.unwrap_or_default();
        Shape {
            replicas: spec.replicas.unwrap_or(1).max(0),
            start: spec.ordinals.and_then(|o| o.start).unwrap_or(0).max(0),
            ordered: spec.pod_management_policy.as_deref() != Some("Parallel"),
            rolling: strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate",
            partition: strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
            min_ready: spec.min_ready_seconds.unwrap_or(0),
        }
    }
}

/// The steps for `pods` (the set's claimed pods); `update_rev` names the update revision.
pub fn plan(set: &StatefulSet, pods: &[Pod], update_rev: &str, now: jiff::Timestamp) -> Vec<Step> {
    let s = Shape::of(set);
    let mut slots: Vec<Option<&Pod>> = vec![None; s.replicas as usize];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let Some(ord) = ordinal(set, p) else { continue };
        if ord >= s.start && ord < s.start + s.replicas {
            slots[(ord - s.start) as usize] = Some(p);
        } else {
            condemned.push((ord, p));
        }
    }
    condemned.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));
    // The first unhealthy pod: replicas in order, then condemned from the lowest ordinal.
    let first_unhealthy: Option<&Pod> = slots
        .iter()
        .flatten()
        .chain(condemned.iter().rev().map(|(_, p)| p))
        .find(|p| !healthy(p))
        .copied();
    let mut steps = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let ord = s.start + i as i32;
        let Some(p) = slot else {
            let update = !(s.rolling && (i as i32) < s.partition);
            steps.push(Step::Create {
                ordinal: ord,
                update,
            });
            if s.ordered {
                return steps;
            }
            continue;
        };
        if is_finished(p) {
            if !is_terminating(&p.metadata) {
                steps.push(Step::Delete {
                    pod: (*p).clone(),
                    why: Why::Finished,
                });
            }
            if s.ordered {
                return steps;
            }
            continue;
        }
        if is_terminating(&p.metadata) {
            if s.ordered {
                return steps;
            }
            continue;
        }
        if s.ordered && !running_and_available(p, s.min_ready, now) {
            return steps;
        }
        if !identity_matches(p) {
            steps.push(Step::Relabel((*p).clone()));
        }
    }
    for (_, p) in &condemned {
        if is_terminating(&p.metadata) {
            if s.ordered {
                return steps;
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.is_some_and(|f| std::ptr::eq(f, *p));
        if s.ordered
            && !is_first_unhealthy
            && (!running_and_ready(p) || !running_and_available(p, s.min_ready, now))
        {
            return steps;
        }
        steps.push(Step::Delete {
            pod: (*p).clone(),
            why: Why::Condemned,
        });
        if s.ordered {
            return steps;
        }
    }
    if !s.rolling {
        return steps;
    }
    for i in (s.partition.max(0)..s.replicas).rev() {
        let Some(p) = slots[i as usize].filter(|p| !is_finished(p)) else {
            return steps;
        };
        if revision(p) != Some(update_rev) && !is_terminating(&p.metadata) {
            steps.push(Step::Delete {
                pod: p.clone(),
                why: Why::Update,
            });
            return steps;
        }
        if !healthy(p) {
            return steps;
        }
    }
    steps
}

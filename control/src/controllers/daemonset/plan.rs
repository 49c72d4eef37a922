//! What one DaemonSet sync should change, as pure functions over nodes and pods: the manage
//! step (create on eligible nodes, delete failed, excess, misplaced and evicted pods) and the
//! rolling-update step (maxUnavailable / maxSurge), both after upstream's daemon controller.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::history::REVISION_HASH_LABEL;
use super::nodes::{Placement, placement, target_node};
use crate::controllers::common::{is_available, is_ready, is_terminating, phase};

/// The changes one step asks for.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Nodes that get a new daemon pod.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Pod>,
    /// Failed pods among `delete`, with their node (for the Warning Event).
    pub failed: Vec<(String, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// The claimed pods grouped by the node they are for (terminating ones included), and those
/// pinned to no node at all.
pub fn pods_by_node(pods: &[Pod]) -> (BTreeMap<String, Vec<&Pod>>, Vec<&Pod>) {
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut loose = Vec::new();
    for p in pods {
        match target_node(p) {
            Some(n) => by_node.entry(n).or_default().push(p),
            None => loose.push(p),
        }
    }
    (by_node, loose)
}

fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn is_scheduled(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Upstream's podByCreationTimestampAndPhase: scheduled first, then oldest, then by name.
pub fn oldest_first(a: &&Pod, b: &&Pod) -> Ordering {
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    is_scheduled(b)
        .cmp(&is_scheduled(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

pub fn pod_hash(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .map(String::as_str)
}

fn scaled(v: Option<&IntOrString>, total: i32, default: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            ((pct * i64::from(total) + 99) / 100) as i32
        }
        None => default,
    }
}

/// (maxSurge, maxUnavailable) against the number of nodes that should run the pod, rounded up;
/// both zero becomes (0, 1).
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, 0);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, 1);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge.max(0), unavailable.max(0))
    }
}

pub fn min_ready(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The manage step: `spec` is the template spec with default tolerations, `hash` the current
/// revision's hash.
pub fn manage(
    ds: &DaemonSet,
    spec: &PodSpec,
    nodes: &[Node],
    pods: &[Pod],
    hash: &str,
    now: jiff::Timestamp,
) -> Changes {
    let (by_node, loose) = pods_by_node(pods);
    let (surge, _) = surge_and_unavailable(ds, 1);
    let allows_surge = is_rolling(ds) && surge > 0;
    let mut out = Changes::default();
    for node in nodes {
        let name = node_name(node);
        let here: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
        let Placement {
            should_run,
            should_continue,
        } = placement(spec, node);
        if should_run && here.is_empty() {
            out.create.push(name);
            continue;
        }
        if !should_continue {
            out.delete.extend(
                here.iter()
                    .filter(|p| !is_terminating(&p.metadata))
                    .map(|p| (*p).clone()),
            );
            continue;
        }
        let mut running: Vec<&Pod> = Vec::new();
        for p in here.iter().filter(|p| !is_terminating(&p.metadata)) {
            if matches!(phase(p), "Failed" | "Succeeded") {
                out.failed
                    .push((p.metadata.name.clone().unwrap_or_default(), name.clone()));
                out.delete.push((*p).clone());
            } else {
                running.push(p);
            }
        }
        running.sort_by(oldest_first);
        if !allows_surge {
            out.delete
                .extend(running.iter().skip(1).map(|p| (*p).clone()));
            continue;
        }
        if running.is_empty() {
            // Surging does not wait for a terminating pod to go.
            if should_run {
                out.create.push(name);
            }
            continue;
        }
        // Surging: keep the oldest current pod and the oldest old pod while the new one is
        // not yet available; everything else goes.
        let mut newest: Option<&Pod> = None;
        let mut oldest_old: Option<&Pod> = None;
        for p in running {
            let slot = if pod_hash(p) == Some(hash) {
                &mut newest
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(p);
            } else {
                out.delete.push(p.clone());
            }
        }
        if let (Some(new), Some(old)) = (newest, oldest_old)
            && (!is_ready(old) || is_available(new, min_ready(ds), now))
        {
            out.delete.push(old.clone());
        }
    }
    // Pods pinned to no node or to a node that no longer exists.
    let known: Vec<String> = nodes.iter().map(node_name).collect();
    for (node, here) in &by_node {
        if !known.contains(node) {
            out.delete.extend(
                here.iter()
                    .filter(|p| !is_terminating(&p.metadata))
                    .map(|p| (*p).clone()),
            );
        }
    }
    out.delete.extend(
        loose
            .iter()
            .filter(|p| !is_terminating(&p.metadata))
            .map(|p| (*p).clone()),
    );
    out
}

pub fn is_rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// The current and the old pod on a node (None when the node has more than one of either:
/// the manage step sorts that out first).
fn new_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let mut new = None;
    let mut old = None;
    for p in pods.iter().filter(|p| !is_terminating(&p.metadata)) {
        let slot = if pod_hash(p) == Some(hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// The rolling-update step (upstream's rollingUpdate): replace old pods within maxUnavailable,
/// or surge new pods next to old ones within maxSurge.
pub fn rolling_update(
    ds: &DaemonSet,
    spec: &PodSpec,
    nodes: &[Node],
    pods: &[Pod],
    hash: &str,
    now: jiff::Timestamp,
) -> Changes {
    let desired = nodes
        .iter()
        .filter(|n| placement(spec, n).should_run)
        .count() as i32;
    let (max_surge, max_unavailable) = surge_and_unavailable(ds, desired);
    let min_ready = min_ready(ds);
    let (by_node, _) = pods_by_node(pods);
    let mut out = Changes::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut must_replace = Vec::new();
        let mut candidates = Vec::new();
        for here in by_node.values() {
            let Some(pair) = new_and_old(here, hash) else {
                unavailable += 1;
                continue;
            };
            match pair {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !is_available(new, min_ready, now) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !is_available(old, min_ready, now) {
                        must_replace.push(old.clone());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        out.delete = must_replace;
        out.delete.extend(candidates.into_iter().take(room));
        return out;
    }
    let mut surging = 0;
    let mut must_surge = Vec::new();
    let mut candidates = Vec::new();
    for node in nodes {
        let name = node_name(node);
        let Some(here) = by_node.get(&name) else {
            continue;
        };
        let Some((new, old)) = new_and_old(here, hash) else {
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !is_available(old, min_ready, now) {
                    if placement(spec, node).should_run {
                        must_surge.push(name);
                    }
                } else {
                    candidates.push(name);
                }
            }
            (Some(new), Some(old)) => {
                if is_available(new, min_ready, now) {
                    out.delete.push(old.clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = (max_surge - surging).clamp(0, candidates.len() as i32) as usize;
    out.create = must_surge;
    out.create.extend(candidates.into_iter().take(room));
    out
}

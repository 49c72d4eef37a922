//! Preemption (the DefaultPreemption post-filter): when a pod fits nowhere, find the node where
//! evicting the fewest, least important lower-priority pods makes it fit — reprieving every
//! pod that can stay, PodDisruptionBudget-protected pods first — and name the victims.

use std::collections::HashMap;
use std::sync::Arc;

use super::algorithm::Profile;
use super::cache::{Cache, NodeInfo};
use super::framework::{FitError, Rejection, histogram};
use super::labels::opt_selector_matches;
use super::pod_info::PodInfo;

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Where the pod can go once the victims are gone.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

impl Candidate {
    /// Upstream's order of preference: fewer PDB violations, a lower most-important victim,
    /// a smaller sum of priorities, fewer victims.
    fn rank(&self) -> (usize, i64, i64, usize) {
        let highest = self
            .victims
            .iter()
            .map(|v| i64::from(v.priority))
            .max()
            .unwrap_or(i64::MIN);
        // Offset so negative priorities still add up to a larger cost per victim.
        let sum = self
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (self.pdb_violations, highest, sum, self.victims.len())
    }
}

fn reject(reason: &str) -> Rejection {
    Rejection::new("DefaultPreemption", reason)
}

/// Budgets left per PDB, and whether taking `victim` would break one.
struct Budgets<'a> {
    cache: &'a Cache,
    left: HashMap<(String, String), i32>,
}

impl Budgets<'_> {
    fn take(&mut self, victim: &PodInfo) -> bool {
        let mut violates = false;
        for pdb in self.cache.pdbs() {
            let ns = pdb.metadata.namespace.clone().unwrap_or_default();
            if ns != victim.namespace {
                continue;
            }
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
            if !opt_selector_matches(selector, &victim.labels) {
                continue;
            }
            let status = pdb.status.as_ref();
            if status
                .and_then(|s| s.disrupted_pods.as_ref())
                .is_some_and(|d| d.contains_key(&victim.name))
            {
                continue;
            }
            let key = (ns, pdb.metadata.name.clone().unwrap_or_default());
            let left = self
                .left
                .entry(key)
                .or_insert_with(|| status.map_or(0, |s| s.disruptions_allowed));
            *left -= 1;
            violates |= *left < 0;
        }
        violates
    }
}

/// Finds which pods to evict on one node, if evicting lower-priority pods can help at all.
fn victims_on(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    node: &NodeInfo,
    err: &FitError,
) -> Option<Candidate> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return None;
    }
    // Most important first: higher priority, then the older pod.
    potential.sort_by(|a, b| {
        b.priority.cmp(&a.priority).then_with(|| {
            a.pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
    });
    let mut sim = node.clone();
    let mut state = err.state.clone();
    for v in &potential {
        sim.remove_pod(&v.uid);
        for f in &profile.filters {
            f.remove_pod(&mut state, pod, v, &sim);
        }
    }
    if profile.run_filters(pod, &state, &sim).is_err() {
        return None;
    }
    let mut budgets = Budgets {
        cache,
        left: HashMap::new(),
    };
    let (violating, safe): (Vec<_>, Vec<_>) = potential.into_iter().partition(|v| budgets.take(v));
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (group, violates) in [(violating, true), (safe, false)] {
        for v in group {
            sim.add_pod(v.clone());
            for f in &profile.filters {
                f.add_pod(&mut state, pod, &v, &sim);
            }
            if profile.run_filters(pod, &state, &sim).is_err() {
                sim.remove_pod(&v.uid);
                for f in &profile.filters {
                    f.remove_pod(&mut state, pod, &v, &sim);
                }
                pdb_violations += usize::from(violates);
                victims.push(v);
            }
        }
    }
    Some(Candidate {
        node: node.name.clone(),
        victims,
        pdb_violations,
    })
}

fn nominated_node(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The best candidate, or the `preemption: ...` message saying why there is none.
pub fn preempt(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    err: &FitError,
) -> Result<Candidate, String> {
    if pod.never_preempts() {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    // Victims already leaving the nominated node: wait for them instead of preempting more.
    if let Some(n) = nominated_node(pod).and_then(|n| cache.node(n))
        && n.pods
            .iter()
            .any(|p| p.terminating && p.priority < pod.priority)
    {
        return Err(
            "preemption: not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    let mut why: Vec<Rejection> = Vec::new();
    let mut best: Option<Candidate> = None;
    for node in cache.nodes() {
        match err.rejections.get(&node.name) {
            Some(r) if r.resolvable => {}
            _ => {
                why.push(reject(NOT_HELPFUL));
                continue;
            }
        }
        match victims_on(profile, cache, pod, node, err) {
            Some(c) => {
                if best.as_ref().is_none_or(|b| c.rank() < b.rank()) {
                    best = Some(c);
                }
            }
            None => why.push(reject(NO_VICTIMS)),
        }
    }
    best.ok_or_else(|| {
        format!(
            "preemption: 0/{} nodes are available: {}.",
            err.num_nodes,
            histogram(why.iter())
        )
    })
}

//! The plugin framework: named filter and score plugins over a per-cycle state, the rejection
//! a filter gives (with kube-scheduler's reason strings), and the `FailedScheduling` message
//! built from the rejections of every node.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::cache::{Cache, NodeInfo};
use super::pod_info::PodInfo;

/// The best a normalized score can be.
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a filter turned a node down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    /// Reason strings as kube-scheduler words them (`Insufficient cpu`).
    pub reasons: Vec<String>,
    /// Removing pods from the node could help (Unschedulable), or not
    /// (UnschedulableAndUnresolvable).
    pub resolvable: bool,
}

impl Rejection {
    pub fn new(plugin: &'static str, reason: impl Into<String>) -> Rejection {
        Rejection {
            plugin,
            reasons: vec![reason.into()],
            resolvable: true,
        }
    }

    pub fn unresolvable(plugin: &'static str, reason: impl Into<String>) -> Rejection {
        Rejection {
            resolvable: false,
            ..Rejection::new(plugin, reason)
        }
    }
}

/// Data a plugin computes once per cycle (or per preemption simulation, which clones it).
pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Per-cycle data, one slot per type.
#[derive(Default)]
pub struct CycleState {
    slots: HashMap<TypeId, Box<dyn StateData>>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            slots: self
                .slots
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
        }
    }
}

impl CycleState {
    pub fn write<T: Any + Clone + Send + Sync>(&mut self, value: T) {
        self.slots.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn read<T: Any>(&self) -> Option<&T> {
        self.slots
            .get(&TypeId::of::<T>())
            .and_then(|v| (**v).as_any().downcast_ref())
    }

    pub fn read_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.slots
            .get_mut(&TypeId::of::<T>())
            .and_then(|v| (**v).as_any_mut().downcast_mut())
    }
}

/// What a PreFilter may decide for the whole cycle.
pub enum PreFilterResult {
    /// Evaluate every node.
    AllNodes,
    /// Only these nodes can pass (e.g. `spec.nodeName`, or node affinity on `metadata.name`);
    /// the others are rejected with this plugin's reason.
    Only(HashSet<String>, Rejection),
}

/// A filter: can `pod` go on `node`?
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Computes per-cycle data; may narrow the nodes to evaluate.
    fn pre_filter(
        &self,
        _pod: &PodInfo,
        _cache: &Cache,
        _state: &mut CycleState,
    ) -> PreFilterResult {
        PreFilterResult::AllNodes
    }

    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection>;

    /// Preemption simulates removing `victim` from `node`: keep the cycle data in step.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _victim: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// ... and adding it back.
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _victim: &PodInfo,
        _node: &NodeInfo,
    ) {
    }
}

/// A score: how good is `node` for `pod` (higher is better), normalized to 0–100.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;

    /// Computes per-cycle data over the feasible nodes.
    fn pre_score(
        &self,
        _pod: &PodInfo,
        _cache: &Cache,
        _nodes: &[&NodeInfo],
        _state: &mut CycleState,
    ) {
    }

    fn score(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64;

    /// Maps raw scores to 0–100 (default: already in range).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Upstream's default normalization: scale so the largest is 100; `reverse` flips it.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// "3 Insufficient cpu, 2 node(s) were unschedulable": reasons counted and sorted.
pub fn histogram<'a>(rejections: impl Iterator<Item = &'a Rejection>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejections {
        for reason in &r.reasons {
            *counts.entry(reason.as_str()).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a pod fits no node: each rejected node's rejection, and what preemption said.
#[derive(Clone)]
pub struct FitError {
    pub num_nodes: usize,
    /// Node name → rejection.
    pub rejections: HashMap<String, Rejection>,
    /// `preemption: ...` when preemption ran and did not help (or was not allowed).
    pub post_filter: Option<String>,
    /// The cycle data, for preemption.
    pub state: CycleState,
}

impl fmt::Debug for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FitError({self})")
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.num_nodes,
            histogram(self.rejections.values())
        )?;
        if let Some(p) = &self.post_filter {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

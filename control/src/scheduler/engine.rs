//! The scheduler's synchronous core: applies watch events to the cache and the queue, runs one
//! cycle per popped pod (assume on success, preemption on failure) and takes back the results
//! of bindings. No I/O: the async loop in `mod.rs` feeds it and carries out its decisions, and
//! tests drive it directly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::SCHEDULER_NAME;
use super::algorithm::{self, Profile};
use super::cache::Cache;
use super::pod_info::PodInfo;
use super::preemption;
use super::queue::{Popped, SchedulingQueue};

/// Pods to evict so a pending pod fits on `node`.
#[derive(Debug, Clone)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<Arc<Pod>>,
}

/// What a cycle decided.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Bind the pod (already assumed on the node); report back with [`Core::bind_done`].
    Bind { pod: Arc<Pod>, node: String },
    /// Fits nowhere: record `message`; evict the victims and nominate the node if preemption
    /// found room.
    Unschedulable {
        pod: Arc<Pod>,
        message: String,
        preemption: Option<Preemption>,
    },
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn assigned_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// A pending pod this scheduler is responsible for.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let scheduler = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or(SCHEDULER_NAME);
    assigned_node(pod).is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && scheduler == SCHEDULER_NAME
        && !terminal(pod)
}

/// Whether a node change can make pending pods fit (heartbeats alone cannot).
fn node_change_matters(old: Option<&Node>, new: &Node) -> bool {
    let Some(old) = old else { return true };
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    let alloc = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    let images = |n: &Node| n.status.as_ref().map(|s| s.images.is_some());
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || ready(old) != ready(new)
        || alloc(old) != alloc(new)
        || images(old) != images(new)
}

fn depends_on_other_pods(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.topology_spread_constraints.is_some()
            || s.affinity
                .as_ref()
                .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    })
}

/// Cache, queue and plugins.
pub struct Core {
    pub cache: Cache,
    pub queue: SchedulingQueue,
    profile: Profile,
    next_start: usize,
    /// Assumed pods whose binding is under way.
    in_flight: HashMap<String, Popped>,
}

impl Core {
    pub fn new(profile: Profile) -> Core {
        Core {
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            profile,
            next_start: 0,
            in_flight: HashMap::new(),
        }
    }

    /// A pod was added or changed.
    pub fn pod_applied(&mut self, pod: Pod, now: Instant) {
        self.apply_pod(pod, now, true);
    }

    fn apply_pod(&mut self, pod: Pod, now: Instant, react: bool) {
        let id = uid(&pod);
        if terminal(&pod) {
            self.pod_gone(&id, now, react);
            return;
        }
        if let Some(node) = assigned_node(&pod).map(str::to_string) {
            self.queue.delete(&id);
            let new_here = !self.cache.contains_pod(&id) || self.cache.is_assumed(&id);
            let depends = react && new_here;
            self.cache.upsert_pod(PodInfo::new(Arc::new(pod)), &node);
            if depends {
                self.queue.move_unschedulable(now, depends_on_other_pods);
            }
            return;
        }
        if !wants_scheduling(&pod) {
            self.queue.delete(&id);
            self.cache.clear_nominated(&id);
            return;
        }
        if self.in_flight.contains_key(&id) || self.cache.contains_pod(&id) {
            return;
        }
        let pod = Arc::new(pod);
        match pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(n) => self
                .cache
                .set_nominated(Arc::new(PodInfo::new(pod.clone())), n),
            None => self.cache.clear_nominated(&id),
        }
        self.queue.add_or_update(pod);
    }

    fn pod_gone(&mut self, id: &str, now: Instant, react: bool) {
        self.queue.delete(id);
        self.cache.clear_nominated(id);
        self.in_flight.remove(id);
        if self.cache.remove_pod(id).is_some() && react {
            self.queue.move_unschedulable(now, |_| true);
        }
    }

    pub fn pod_deleted(&mut self, pod: &Pod, now: Instant) {
        self.pod_gone(&uid(pod), now, true);
    }

    /// A fresh list of every pod.
    pub fn pods_reset(&mut self, pods: Vec<Pod>, now: Instant) {
        let present: HashSet<String> = pods.iter().map(uid).collect();
        self.cache.clear_confirmed_pods();
        let stale: Vec<String> = self
            .in_flight
            .keys()
            .filter(|u| !present.contains(*u))
            .cloned()
            .collect();
        for u in stale {
            self.in_flight.remove(&u);
            self.cache.forget(&u);
        }
        self.queue.retain(|u| present.contains(u));
        for p in pods {
            self.apply_pod(p, now, false);
        }
        self.queue.move_unschedulable(now, |_| true);
    }

    pub fn node_applied(&mut self, node: Node, now: Instant) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let matters = node_change_matters(
            self.cache.node(&name).and_then(|n| n.node.as_deref()),
            &node,
        );
        self.cache.upsert_node(node);
        if matters {
            self.queue.move_unschedulable(now, |_| true);
        }
    }

    pub fn node_deleted(&mut self, name: &str) {
        self.cache.remove_node(name);
    }

    pub fn nodes_reset(&mut self, nodes: Vec<Node>, now: Instant) {
        self.cache.reset_nodes(nodes);
        self.queue.move_unschedulable(now, |_| true);
    }

    pub fn namespace_applied(&mut self, ns: &Namespace) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        self.cache
            .upsert_namespace(&name, ns.metadata.labels.clone().unwrap_or_default());
    }

    pub fn namespace_deleted(&mut self, ns: &Namespace) {
        self.cache
            .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default());
    }

    pub fn pdb_applied(&mut self, pdb: PodDisruptionBudget) {
        self.cache.upsert_pdb(pdb);
    }

    pub fn pdb_deleted(&mut self, pdb: &PodDisruptionBudget) {
        self.cache.remove_pdb(
            pdb.metadata.namespace.as_deref().unwrap_or_default(),
            pdb.metadata.name.as_deref().unwrap_or_default(),
        );
    }

    /// Whether a pod is ready to be scheduled now.
    pub fn has_work(&mut self, now: Instant) -> bool {
        self.queue.flush(now);
        self.queue.has_active()
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queue.next_wakeup()
    }

    /// Runs one scheduling cycle for the next pod, if any.
    pub fn schedule_one(&mut self, now: Instant) -> Option<Decision> {
        self.queue.flush(now);
        let popped = self.queue.pop()?;
        let pod = popped.pod.clone();
        let info = Arc::new(PodInfo::new(pod.clone()));
        match algorithm::schedule(&self.profile, &self.cache, &info, &mut self.next_start) {
            Ok(node) => {
                self.cache.assume(info, &node);
                self.in_flight.insert(uid(&pod), popped);
                Some(Decision::Bind { pod, node })
            }
            Err(mut fit) => {
                let mut preemption = None;
                if fit.num_nodes > 0 {
                    match preemption::preempt(&self.profile, &self.cache, &info, &fit) {
                        Ok(c) => {
                            self.cache.set_nominated(info.clone(), &c.node);
                            preemption = Some(Preemption {
                                node: c.node,
                                victims: c.victims.iter().map(|v| v.pod.clone()).collect(),
                            });
                        }
                        Err(why) => fit.post_filter = Some(why),
                    }
                }
                let message = fit.to_string();
                self.queue.requeue_failed(popped, now);
                Some(Decision::Unschedulable {
                    pod,
                    message,
                    preemption,
                })
            }
        }
    }

    /// The binding of an assumed pod finished: on failure the assumption is undone and the
    /// pod goes back to the queue.
    pub fn bind_done(&mut self, uid: &str, ok: bool, now: Instant) {
        let popped = self.in_flight.remove(uid);
        if ok {
            return;
        }
        self.cache.forget(uid);
        if let Some(p) = popped {
            self.queue.requeue_backoff(p, now);
        }
    }

    /// Pods whose binding is under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

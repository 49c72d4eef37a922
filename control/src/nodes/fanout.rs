//! One watch of all pods shared by every node's command stream. Each pod event is decoded and
//! encoded once and routed only to the node the pod is bound to (and the node it left), so the
//! cost of an event does not grow with the number of connected nodes. A node whose channel is
//! full, or every node after the watch had to re-list, is cut off: its agent reconnects and
//! gets a fresh snapshot, so nothing is ever silently skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use skiff_proto::node::node_command::Command;
use skiff_proto::node::{NodeCommand, PodRef, PodSnapshot, PodUpsert};
use tokio::sync::{mpsc, oneshot, watch};

use crate::apiserver::registry::{Registry, WatchEvent};

/// A pod bound to a node, encoded for the wire.
struct Bound {
    node: String,
    json: Arc<Vec<u8>>,
    pod_ref: PodRef,
}

/// A connected node: where its commands go, and how it is told it was cut off.
struct Subscriber {
    tx: mpsc::Sender<NodeCommand>,
    cut: Option<oneshot::Sender<()>>,
}

impl Subscriber {
    /// Queues `command`; a full or closed channel cuts the subscriber off (returns false).
    fn send(&mut self, command: Command) -> bool {
        let ok = self
            .tx
            .try_send(NodeCommand {
                command: Some(command),
            })
            .is_ok();
        if !ok && let Some(cut) = self.cut.take() {
            let _ = cut.send(());
        }
        ok
    }
}

#[derive(Default)]
struct State {
    /// Every bound pod by uid.
    pods: HashMap<String, Bound>,
    /// uids bound to each node.
    by_node: HashMap<String, Vec<String>>,
    subscribers: HashMap<String, Vec<Subscriber>>,
}

impl State {
    fn unbind(&mut self, uid: &str) -> Option<Bound> {
        let old = self.pods.remove(uid)?;
        if let Some(uids) = self.by_node.get_mut(&old.node) {
            uids.retain(|u| u != uid);
            if uids.is_empty() {
                self.by_node.remove(&old.node);
            }
        }
        Some(old)
    }

    fn send(&mut self, node: &str, command: Command) {
        if let Some(subs) = self.subscribers.get_mut(node) {
            subs.retain_mut(|s| s.send(command.clone()));
        }
    }

    /// A pod was added or changed.
    fn apply(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let previous = self.pods.get(&uid).map(|b| b.node.clone());
        if previous.is_some()
            && previous != node
            && let Some(old) = self.unbind(&uid)
        {
            self.send(&old.node, Command::PodRemoved(old.pod_ref));
        }
        let Some(node) = node else { return };
        let json = Arc::new(skiff_proto::to_json(pod));
        let pod_ref = PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
        };
        if !self.pods.contains_key(&uid) {
            self.by_node
                .entry(node.clone())
                .or_default()
                .push(uid.clone());
        }
        self.pods.insert(
            uid,
            Bound {
                node: node.clone(),
                json: json.clone(),
                pod_ref,
            },
        );
        self.send(
            &node,
            Command::Pod(PodUpsert {
                pod_json: json.as_ref().clone(),
            }),
        );
    }

    fn delete(&mut self, pod: &Pod) {
        if let Some(old) = self.unbind(pod.metadata.uid.as_deref().unwrap_or_default()) {
            self.send(&old.node, Command::PodRemoved(old.pod_ref));
        }
    }

    fn snapshot(&self, node: &str) -> PodSnapshot {
        let pods_json = self
            .by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.pods.get(uid))
            .map(|b| b.json.as_ref().clone())
            .collect();
        PodSnapshot { pods_json }
    }

    /// Cuts every subscriber off (after a re-list their view may have gaps).
    fn cut_all(&mut self) {
        for mut s in self.subscribers.drain().flat_map(|(_, subs)| subs) {
            if let Some(cut) = s.cut.take() {
                let _ = cut.send(());
            }
        }
    }
}

/// The shared pod watch; cheap to clone.
#[derive(Clone)]
pub struct PodFanout {
    state: Arc<Mutex<State>>,
    /// True once the first list is in.
    ready: watch::Receiver<bool>,
}

impl PodFanout {
    /// Starts the watch in the background.
    pub fn start(registry: Registry) -> PodFanout {
        let state = Arc::new(Mutex::new(State::default()));
        let (ready_tx, ready) = watch::channel(false);
        tokio::spawn(run(registry, state.clone(), ready_tx));
        PodFanout { state, ready }
    }

    /// Sends `node`'s snapshot into `tx`, then every change of its pods. The returned receiver
    /// fires when the node is cut off (its channel overflowed or the watch re-listed); the
    /// caller must then end the stream so the agent reconnects for a fresh snapshot.
    pub async fn subscribe(
        &self,
        node: &str,
        tx: mpsc::Sender<NodeCommand>,
    ) -> oneshot::Receiver<()> {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
        let (cut_tx, cut_rx) = oneshot::channel();
        let mut sub = Subscriber {
            tx,
            cut: Some(cut_tx),
        };
        let mut state = self.state.lock().expect("fanout lock");
        let snapshot = state.snapshot(node);
        let pods = snapshot.pods_json.len();
        if sub.send(Command::Snapshot(snapshot)) {
            state
                .subscribers
                .entry(node.to_string())
                .or_default()
                .push(sub);
            tracing::info!(node, pods, "node connected; snapshot sent");
        }
        cut_rx
    }

    /// Forgets `node`'s subscriptions whose channel is closed.
    pub fn prune(&self, node: &str) {
        let mut state = self.state.lock().expect("fanout lock");
        if let Some(subs) = state.subscribers.get_mut(node) {
            subs.retain(|s| !s.tx.is_closed());
            if subs.is_empty() {
                state.subscribers.remove(node);
            }
        }
    }
}

/// Lists all pods, then follows the watch; re-lists (cutting every node off) when it breaks.
async fn run(registry: Registry, state: Arc<Mutex<State>>, ready: watch::Sender<bool>) {
    loop {
        let list = match registry.list::<Pod>(None, &Default::default()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "listing pods for the node streams failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        {
            let mut s = state.lock().expect("fanout lock");
            s.cut_all();
            s.pods.clear();
            s.by_node.clear();
            list.items.iter().for_each(|p| s.apply(p));
        }
        ready.send_replace(true);
        let mut events = match registry
            .watch::<Pod>(None, &Default::default(), Some(list.resource_version))
            .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "watching pods for the node streams failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let mut s = state.lock().expect("fanout lock");
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => s.apply(&pod),
                WatchEvent::Deleted(pod) => s.delete(&pod),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => {
                    tracing::info!(error = %e, "pod watch for the node streams ended; re-listing");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;

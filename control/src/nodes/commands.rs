//! One node's command stream: a snapshot of the pods bound to it, then every change (from a
//! registry watch), interleaved with stream requests; re-listed from scratch if the watch breaks.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use skiff_proto::node::node_command::Command;
use skiff_proto::node::{NodeCommand, PodRef, PodSnapshot, PodUpsert};
use tokio::sync::mpsc;

use super::StreamHub;
use crate::apiserver::registry::{Registry, WatchEvent};

fn on_node(pod: &Pod, node: &str) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

fn command(c: Command) -> NodeCommand {
    NodeCommand { command: Some(c) }
}

/// Starts following `node`'s pods; the receiver ends when the node disconnects.
pub fn follow(registry: Registry, hub: StreamHub, node: String) -> mpsc::Receiver<NodeCommand> {
    let (tx, rx) = mpsc::channel(256);
    hub.connect(&node, tx.clone());
    tokio::spawn(async move {
        let span = tracing::info_span!("node-commands", %node);
        let _ = tracing::Instrument::instrument(run(&registry, &node, &tx), span).await;
        hub.disconnect(&node, &tx);
    });
    rx
}

async fn run(registry: &Registry, node: &str, tx: &mpsc::Sender<NodeCommand>) -> Result<(), ()> {
    loop {
        let list = match registry.list::<Pod>(None, &Default::default()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "listing pods for node failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mine: Vec<&Pod> = list.items.iter().filter(|p| on_node(p, node)).collect();
        let mut sent: HashSet<String> =
            mine.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let snapshot = PodSnapshot {
            pods_json: mine.iter().map(|p| skiff_proto::to_json(*p)).collect(),
        };
        tx.send(command(Command::Snapshot(snapshot)))
            .await
            .map_err(|_| ())?;
        tracing::info!(pods = sent.len(), "node connected; snapshot sent");
        let mut watch = match registry
            .watch::<Pod>(None, &Default::default(), Some(list.resource_version))
            .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "watching pods failed; re-listing");
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = tx.closed() => return Err(()),
                event = watch.next() => {
                    let Some(event) = event else { break };
                    match event {
                        WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                            let uid = pod.metadata.uid.clone().unwrap_or_default();
                            if on_node(&pod, node) {
                                sent.insert(uid);
                                tx.send(command(Command::Pod(PodUpsert { pod_json: skiff_proto::to_json(&pod) }))).await.map_err(|_| ())?;
                            } else if sent.remove(&uid) {
                                tx.send(command(Command::PodRemoved(pod_ref(&pod)))).await.map_err(|_| ())?;
                            }
                        }
                        WatchEvent::Deleted(pod) => {
                            if sent.remove(pod.metadata.uid.as_deref().unwrap_or_default()) {
                                tx.send(command(Command::PodRemoved(pod_ref(&pod)))).await.map_err(|_| ())?;
                            }
                        }
                        WatchEvent::Bookmark(_) => {}
                        WatchEvent::Error(e) => {
                            tracing::info!(error = %e, "pod watch ended; re-listing");
                            break;
                        }
                    }
                }
            }
        }
    }
}

//! One node's command stream: its pods from the shared [`PodFanout`] (a snapshot, then every
//! change) interleaved with stream requests from the [`StreamHub`]. The stream ends when the
//! node disconnects or the fan-out cuts it off; the agent then reconnects for a fresh snapshot.

use skiff_proto::node::NodeCommand;
use tokio::sync::mpsc;

use super::StreamHub;
use super::fanout::PodFanout;

/// Commands queued for one node before it counts as too slow and is cut off.
const BUFFER: usize = 1024;

/// Starts following `node`'s pods; the receiver ends when the node disconnects or is cut off.
pub fn follow(fanout: PodFanout, hub: StreamHub, node: String) -> mpsc::Receiver<NodeCommand> {
    let (tx, rx) = mpsc::channel(BUFFER);
    hub.connect(&node, tx.clone());
    tokio::spawn(async move {
        let cut = fanout.subscribe(&node, tx.clone()).await;
        tokio::select! {
            _ = tx.closed() => {}
            _ = cut => tracing::info!(%node, "node command stream cut off; the agent reconnects"),
        }
        hub.disconnect(&node, &tx);
        fanout.prune(&node);
        // Dropping the last senders (ours, the hub's and the fan-out's) ends the stream.
    });
    rx
}

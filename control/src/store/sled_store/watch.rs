//! Watches on the sled store: replay of the revision log, then live events from the broadcast
//! channel, with the seam between them at a revision read under the publisher's lock.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::sync::{broadcast, mpsc};

use super::codec::{decode_event, decode_rev, rev_key};
use super::{Shared, blocking};
use crate::store::{Revision, StoreError, WatchEvent};

/// Log entries read per blocking call during replay.
const REPLAY_CHUNK: usize = 256;

/// Events buffered between the watch task and the stream's reader.
pub(super) const STREAM_BUFFER: usize = 64;

type Sink = mpsc::Sender<Result<WatchEvent, StoreError>>;

/// A live subscription and the newest revision published before it started: every event with a
/// larger revision arrives on `rx`, every one up to `published` is in the log.
pub(super) struct Subscription {
    pub(super) rx: broadcast::Receiver<Arc<WatchEvent>>,
    pub(super) published: Revision,
}

/// Feeds `sink` with events under `prefix` after revision `after`, starting from `sub`.
/// Ends when the reader goes away, the store closes, or the history it needs is compacted.
pub(super) async fn run(
    shared: Weak<Shared>,
    prefix: String,
    mut after: Revision,
    mut sub: Subscription,
    sink: Sink,
) {
    loop {
        match replay(&shared, &prefix, after, sub.published, &sink).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = sink.send(Err(e)).await;
                return;
            }
        }
        after = after.max(sub.published);
        match live(&mut sub.rx, &prefix, &mut after, &sink).await {
            Live::Lagged => {
                // Fell behind the channel: catch up from the log again, from the last revision
                // seen, with a fresh subscription.
                let Some(fresh) = shared.upgrade().and_then(|s| s.subscribe()) else {
                    return;
                };
                sub = fresh;
            }
            Live::Done => return,
        }
    }
}

/// Sends logged events in `(after, upto]` under `prefix`. `Ok(false)`: the reader is gone or
/// the store closed.
///
/// Holds the store only inside each blocking read, never across an await, so a slow watcher
/// cannot keep a dropped store's directory open.
async fn replay(
    shared: &Weak<Shared>,
    prefix: &str,
    after: Revision,
    upto: Revision,
    sink: &Sink,
) -> Result<bool, StoreError> {
    let mut next = after + 1;
    while next <= upto {
        let weak = Weak::clone(shared);
        let read = blocking(move || match weak.upgrade() {
            Some(s) => Ok(Some((
                read_log(&s, next, upto)?,
                s.compacted.load(Ordering::Acquire),
            ))),
            None => Ok(None),
        })
        .await?;
        let Some((chunk, compacted)) = read else {
            return Ok(false);
        };
        // Every revision has exactly one log entry, so a gap (or nothing at all) means that
        // compaction removed what this watcher still needed.
        let gone = |next: Revision| StoreError::Compacted {
            requested: next - 1,
            oldest: compacted + 1,
        };
        if chunk.is_empty() {
            return Err(gone(next));
        }
        for (rev, ev) in chunk {
            if rev != next {
                return Err(gone(next));
            }
            next += 1;
            if ev.kv.key.starts_with(prefix) && sink.send(Ok(ev)).await.is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Reads up to [`REPLAY_CHUNK`] log entries in `[from, upto]`.
fn read_log(
    shared: &Shared,
    from: Revision,
    upto: Revision,
) -> Result<Vec<(Revision, WatchEvent)>, StoreError> {
    let mut out = Vec::new();
    for item in shared
        .log
        .range(rev_key(from)..=rev_key(upto))
        .take(REPLAY_CHUNK)
    {
        let (k, v) = item.map_err(|e| StoreError::Engine(e.to_string()))?;
        out.push((decode_rev(&k)?, decode_event(&v)?));
    }
    Ok(out)
}

enum Live {
    Lagged,
    Done,
}

/// Forwards broadcast events newer than `after`, advancing it.
async fn live(
    rx: &mut broadcast::Receiver<Arc<WatchEvent>>,
    prefix: &str,
    after: &mut Revision,
    sink: &Sink,
) -> Live {
    loop {
        let received = tokio::select! {
            () = sink.closed() => return Live::Done,
            r = rx.recv() => r,
        };
        match received {
            Ok(ev) => {
                let rev = ev.kv.mod_revision;
                if rev <= *after {
                    continue;
                }
                *after = rev;
                if ev.kv.key.starts_with(prefix) && sink.send(Ok((*ev).clone())).await.is_err() {
                    return Live::Done;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => return Live::Lagged,
            Err(broadcast::error::RecvError::Closed) => return Live::Done,
        }
    }
}

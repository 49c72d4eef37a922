//! The sled store's flusher thread: group commit (one fsync for every write committed before it
//! started), then publishing those writes to watchers and acknowledging them, then compaction of
//! the revision log.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{debug, warn};

use super::codec::rev_key;
use super::{META_COMPACTED, Shared};
use crate::store::{Revision, WatchEvent};

/// Writes committed to sled but not yet flushed, in revision order.
#[derive(Default)]
pub(super) struct FlushQueue {
    pub(super) pending: Vec<WatchEvent>,
    pub(super) shutdown: bool,
}

/// What writers wait on: the newest revision that is on disk and published.
#[derive(Debug, Clone, Default)]
pub(super) struct Durable {
    pub(super) revision: Revision,
    /// The last flush failed (cleared by the next successful one).
    pub(super) failed: Option<Arc<str>>,
}

/// Runs until the store is dropped; the last round flushes whatever is still queued.
pub(super) fn run(shared: Arc<Shared>) {
    let mut retry: Vec<WatchEvent> = Vec::new();
    loop {
        let (mut batch, shutdown) = {
            let mut q = shared.lock_queue();
            while q.pending.is_empty() && !q.shutdown && retry.is_empty() {
                q = shared.queue_cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut q.pending), q.shutdown)
        };
        if !retry.is_empty() {
            retry.append(&mut batch);
            batch = std::mem::take(&mut retry);
        }
        // Every write in `batch` committed before this flush started, so this one fsync covers
        // all of them.
        let flushed = {
            let _gate = shared.flush_gate.lock().unwrap_or_else(|e| e.into_inner());
            shared.db.flush()
        };
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        match flushed {
            Ok(_) => {
                if let Some(last) = batch.last().map(|e| e.kv.mod_revision) {
                    shared.publish(batch);
                    shared.durable.send_modify(|d| {
                        d.revision = last;
                        d.failed = None;
                    });
                    compact(&shared, last);
                }
            }
            Err(e) => {
                warn!(error = %e, "sled flush failed; retrying");
                let msg: Arc<str> = Arc::from(e.to_string());
                shared.durable.send_modify(|d| d.failed = Some(msg));
                retry = batch;
                if !shutdown {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        if shutdown {
            shared.close_hub();
            return;
        }
    }
}

/// Drops log entries older than the newest `history` revisions once enough have piled up.
fn compact(shared: &Shared, newest: Revision) {
    let history = shared.history;
    let old = shared.compacted.load(Ordering::Acquire);
    let slack = (history / 10).max(1);
    if newest <= old + history + slack {
        return;
    }
    let upto = newest - history;
    // Watchers read `compacted` before trusting a replay, so publish it before deleting.
    shared.compacted.store(upto, Ordering::Release);
    if let Err(e) = shared.meta.insert(META_COMPACTED, &rev_key(upto)) {
        warn!(error = %e, "recording the compacted revision failed");
    }
    match remove_log_range(shared, old, upto) {
        Ok(n) => debug!(upto, removed = n, "compacted the revision log"),
        Err(e) => warn!(error = %e, "compacting the revision log failed"),
    }
}

/// Removes log entries with revision in `(after, upto]`.
pub(super) fn remove_log_range(
    shared: &Shared,
    after: Revision,
    upto: Revision,
) -> Result<usize, sled::Error> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for item in shared.log.range(rev_key(after + 1)..=rev_key(upto)) {
        let (k, _) = item?;
        batch.remove(k);
        n += 1;
    }
    shared.log.apply_batch(batch)?;
    Ok(n)
}

//! etcd watches as store watches: one etcd watch per call, with `prev_kv`, its responses
//! turned into `WatchEvent`s; a compacted start or a cancelled watch ends the stream with an
//! error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::StreamExt;

use super::{Inner, engine};
use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent, WatchStream};

/// State of one converted stream.
struct State {
    inner: Arc<Inner>,
    etcd: etcd_client::WatchStream,
    pending: VecDeque<WatchEvent>,
    /// The last revision delivered (or the start point).
    last: Revision,
    done: bool,
}

/// Starts watching `prefix` after revision `after` (0: from now). Returns once etcd confirmed
/// the watch, so a write made after this returns is seen.
pub(super) async fn start(
    inner: Arc<Inner>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let mut options = WatchOptions::new().with_prefix().with_prev_key();
    if after > 0 {
        options = options.with_start_revision(after as i64 + 1);
    }
    let full = inner.full(prefix);
    let mut etcd = inner
        .client
        .watch_client()
        .watch(full, Some(options))
        .await
        .map_err(engine)?;
    let first = etcd.message().await.map_err(engine)?;
    let last = match first {
        Some(resp) if resp.compact_revision() > 0 => {
            return Err(compacted(&inner, after, resp.compact_revision()));
        }
        Some(resp) if resp.created() && !resp.canceled() => {
            let rev = inner.seen(resp.header());
            if after == 0 { rev } else { after }
        }
        Some(resp) => {
            return Err(StoreError::Engine(format!(
                "etcd refused the watch: {}",
                resp.cancel_reason()
            )));
        }
        None => return Err(StoreError::Engine("etcd closed the watch".into())),
    };
    let state = State {
        inner,
        etcd,
        pending: VecDeque::new(),
        last,
        done: false,
    };
    Ok(futures::stream::unfold(state, next).boxed())
}

async fn next(mut s: State) -> Option<(Result<WatchEvent, StoreError>, State)> {
    loop {
        if let Some(ev) = s.pending.pop_front() {
            s.last = ev.kv.mod_revision;
            return Some((Ok(ev), s));
        }
        if s.done {
            return None;
        }
        let resp = match s.etcd.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return None,
            Err(e) => {
                s.done = true;
                return Some((Err(engine(e)), s));
            }
        };
        if resp.compact_revision() > 0 {
            s.done = true;
            let err = compacted(&s.inner, s.last, resp.compact_revision());
            return Some((Err(err), s));
        }
        if resp.canceled() {
            s.done = true;
            let why = format!("etcd cancelled the watch: {}", resp.cancel_reason());
            return Some((Err(StoreError::Engine(why)), s));
        }
        s.inner.seen(resp.header());
        s.pending.extend(convert(&s.inner, &resp));
    }
}

fn compacted(inner: &Inner, requested: Revision, compact_revision: i64) -> StoreError {
    let oldest = compact_revision.max(0) as Revision;
    inner.compacted.fetch_max(oldest, Ordering::AcqRel);
    StoreError::Compacted { requested, oldest }
}

fn convert(inner: &Inner, resp: &WatchResponse) -> Vec<WatchEvent> {
    resp.events()
        .iter()
        .filter_map(|ev| {
            let kv = ev.kv()?;
            let prev = ev.prev_kv();
            let rev = kv.mod_revision().max(0) as Revision;
            inner.revision.fetch_max(rev, Ordering::AcqRel);
            Some(match ev.event_type() {
                EventType::Put => WatchEvent {
                    kind: EventKind::Put,
                    kv: inner.kv(kv),
                    prev: prev.map(|p| p.value().to_vec()),
                },
                // etcd's delete event carries only the key; the last value is `prev_kv`.
                EventType::Delete => WatchEvent {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: inner.strip(kv.key()),
                        value: prev.map(|p| p.value().to_vec()).unwrap_or_default(),
                        create_revision: prev.map_or(0, |p| p.create_revision() as Revision),
                        mod_revision: rev,
                    },
                    prev: prev.map(|p| p.value().to_vec()),
                },
            })
        })
        .collect()
}

//! One write to the sled store: checks, the next revision, and a single transaction over the
//! objects, log and meta trees; then hands the event to the flusher.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::codec::{decode_object, encode_event, encode_object, rev_key};
use super::{META_REVISION, Shared};
use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// What a write does to its key.
pub(super) enum Op {
    Create(Vec<u8>),
    Update {
        value: Vec<u8>,
        expected: Option<Revision>,
    },
    Delete {
        expected: Option<Revision>,
    },
}

/// Applies `op` to `key` (blocking). The returned event is committed in sled but not yet
/// flushed; its `kv.mod_revision` is the write's revision.
pub(super) fn apply(shared: &Shared, key: &str, op: &Op) -> Result<WatchEvent, StoreError> {
    let mut committed = shared.writer.write().unwrap_or_else(|e| e.into_inner());
    let rev = *committed + 1;
    let trees = (&shared.objects, &shared.log, &shared.meta);
    let result = trees.transaction(|(objects, log, meta)| {
        let current = match objects.get(key.as_bytes())? {
            Some(v) => Some(decode_object(key, &v).map_err(|e| abort(e.into()))?),
            None => None,
        };
        let ev = event(key, rev, op, current).map_err(abort)?;
        match ev.kind {
            EventKind::Put => {
                let stored = encode_object(ev.kv.create_revision, rev, &ev.kv.value);
                objects.insert(key.as_bytes(), stored)?;
            }
            EventKind::Delete => {
                objects.remove(key.as_bytes())?;
            }
        }
        log.insert(&rev_key(rev), encode_event(&ev))?;
        meta.insert(META_REVISION, &rev_key(rev))?;
        Ok(ev)
    });
    let ev = match result {
        Ok(ev) => ev,
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(StoreError::Engine(e.to_string())),
    };
    *committed = rev;
    // Queue while still holding the write lock, so the flusher sees revision order.
    shared.lock_queue().pending.push(ev.clone());
    shared.queue_cv.notify_one();
    Ok(ev)
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// The event `op` makes at revision `rev`, given the key's current state.
fn event(
    key: &str,
    rev: Revision,
    op: &Op,
    current: Option<KeyValue>,
) -> Result<WatchEvent, StoreError> {
    let check = |current: &KeyValue, expected: Option<Revision>| match expected {
        Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            current: current.mod_revision,
        }),
        _ => Ok(()),
    };
    let not_found = || StoreError::NotFound(key.to_owned());
    match (op, current) {
        (Op::Create(_), Some(_)) => Err(StoreError::AlreadyExists(key.to_owned())),
        (Op::Create(value), None) => Ok(WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_owned(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
            },
            prev: None,
        }),
        (Op::Update { value, expected }, Some(current)) => {
            check(&current, *expected)?;
            Ok(WatchEvent {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.to_owned(),
                    value: value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: rev,
                },
                prev: Some(current.value),
            })
        }
        (Op::Delete { expected }, Some(current)) => {
            check(&current, *expected)?;
            let prev = current.value.clone();
            Ok(WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    mod_revision: rev,
                    ..current
                },
                prev: Some(prev),
            })
        }
        (Op::Update { .. } | Op::Delete { .. }, None) => Err(not_found()),
    }
}

//! A tiny in-memory `Store` for the API server's tests: a BTreeMap, a full change history for
//! watch-from-revision, and a broadcast channel for live events. Test-only.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use crate::store::{
    EventKind, KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchEvent,
    WatchStream,
};

struct Inner {
    data: BTreeMap<String, KeyValue>,
    history: Vec<WatchEvent>,
    revision: Revision,
    /// Revisions at or below this one are compacted.
    compacted: Revision,
}

pub struct MemStore {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<WatchEvent>,
}

impl MemStore {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        MemStore {
            inner: Mutex::new(Inner {
                data: BTreeMap::new(),
                history: Vec::new(),
                revision: 1,
                compacted: 0,
            }),
            tx,
        }
    }

    /// Forgets history up to and including `rev` (watches from before it get Compacted).
    pub fn compact(&self, rev: Revision) {
        let mut i = self.inner.lock().unwrap();
        i.history.retain(|e| e.kv.mod_revision > rev);
        i.compacted = rev;
    }

    fn record(&self, i: &mut Inner, ev: WatchEvent) {
        i.history.push(ev.clone());
        let _ = self.tx.send(ev);
    }
}

#[async_trait::async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.inner.lock().unwrap().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult, StoreError> {
        let i = self.inner.lock().unwrap();
        let mut items: Vec<KeyValue> = i
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| options.start_after.as_ref().is_none_or(|s| *k > s))
            .map(|(_, v)| v.clone())
            .collect();
        let mut more = false;
        if let Some(l) = options.limit
            && items.len() > l
        {
            items.truncate(l);
            more = true;
        }
        Ok(ListResult {
            items,
            revision: i.revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let mut i = self.inner.lock().unwrap();
        if i.data.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.into()));
        }
        i.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: i.revision,
            mod_revision: i.revision,
        };
        i.data.insert(key.into(), kv.clone());
        let rev = i.revision;
        self.record(
            &mut i,
            WatchEvent {
                kind: EventKind::Put,
                kv,
                prev: None,
            },
        );
        Ok(rev)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let mut i = self.inner.lock().unwrap();
        let Some(old) = i.data.get(key).cloned() else {
            return Err(StoreError::NotFound(key.into()));
        };
        if let Some(e) = expected
            && e != old.mod_revision
        {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected: e,
                current: old.mod_revision,
            });
        }
        i.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: old.create_revision,
            mod_revision: i.revision,
        };
        i.data.insert(key.into(), kv.clone());
        let rev = i.revision;
        self.record(
            &mut i,
            WatchEvent {
                kind: EventKind::Put,
                kv,
                prev: Some(old.value),
            },
        );
        Ok(rev)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let mut i = self.inner.lock().unwrap();
        let Some(old) = i.data.get(key).cloned() else {
            return Err(StoreError::NotFound(key.into()));
        };
        if let Some(e) = expected
            && e != old.mod_revision
        {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected: e,
                current: old.mod_revision,
            });
        }
        i.revision += 1;
        i.data.remove(key);
        let rev = i.revision;
        let kv = KeyValue {
            mod_revision: rev,
            ..old.clone()
        };
        self.record(
            &mut i,
            WatchEvent {
                kind: EventKind::Delete,
                kv: kv.clone(),
                prev: Some(old.value.clone()),
            },
        );
        Ok((rev, old))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let i = self.inner.lock().unwrap();
        if after < i.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: i.compacted + 1,
            });
        }
        let rx = self.tx.subscribe();
        let backlog: Vec<WatchEvent> = i
            .history
            .iter()
            .filter(|e| e.kv.mod_revision > after && e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        let last = backlog
            .last()
            .map_or(after, |e| e.kv.mod_revision)
            .max(after);
        let prefix = prefix.to_string();
        let live = BroadcastStream::new(rx).filter_map(move |r| {
            let prefix = prefix.clone();
            async move {
                match r {
                    Ok(e) if e.kv.mod_revision > last && e.kv.key.starts_with(&prefix) => {
                        Some(Ok(e))
                    }
                    Ok(_) => None,
                    Err(_) => Some(Err(StoreError::Compacted {
                        requested: last,
                        oldest: last,
                    })),
                }
            }
        });
        Ok(Box::pin(
            futures::stream::iter(backlog.into_iter().map(Ok)).chain(live),
        ))
    }

    fn revision(&self) -> Revision {
        self.inner.lock().unwrap().revision
    }
}

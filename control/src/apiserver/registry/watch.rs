//! Watches: an initial synthetic ADDED per object (no or "0" resourceVersion) or a replay from
//! the given revision, then live changes from the store, filtered by the selectors (an object
//! that stops matching is sent as DELETED), with periodic BOOKMARKs and 410 Gone when compacted.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ListParams, Registry, Selectors, object};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;
use crate::store::{EventKind, Revision, WatchEvent};

/// The `type` of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
            WatchEventType::Bookmark => "BOOKMARK",
            WatchEventType::Error => "ERROR",
        }
    }
}

/// One watch event with its object in JSON form (a Status for ERROR).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonWatchEvent {
    pub kind: WatchEventType,
    pub object: Value,
}

impl JsonWatchEvent {
    fn error(e: &ApiError) -> Self {
        JsonWatchEvent {
            kind: WatchEventType::Error,
            object: serde_json::to_value(e.status()).unwrap_or(Value::Null),
        }
    }

    /// `{"type": ..., "object": ...}`
    pub fn to_json(&self) -> Value {
        json!({"type": self.kind.as_str(), "object": self.object})
    }
}

/// A stream of watch events; it ends after an ERROR event or when the store watch ends.
pub type WatchStream = Pin<Box<dyn Stream<Item = JsonWatchEvent> + Send>>;

fn translate(sel: &Selectors, ev: &WatchEvent) -> Result<Option<JsonWatchEvent>, ApiError> {
    let rev = ev.kv.mod_revision;
    match ev.kind {
        EventKind::Put => {
            let new = object::decode(&ev.kv.value, rev)?;
            let new_match = sel.matches(&new);
            let old = match &ev.prev {
                Some(p) => Some(object::decode(p, rev)?),
                None => None,
            };
            let old_match = old.as_ref().is_some_and(|o| sel.matches(o));
            Ok(match (old.is_some() && old_match, new_match) {
                (true, true) => Some(JsonWatchEvent {
                    kind: WatchEventType::Modified,
                    object: new,
                }),
                (false, true) => Some(JsonWatchEvent {
                    kind: WatchEventType::Added,
                    object: new,
                }),
                (true, false) => Some(JsonWatchEvent {
                    kind: WatchEventType::Deleted,
                    object: old.unwrap_or(new),
                }),
                (false, false) => None,
            })
        }
        EventKind::Delete => {
            let last = object::decode(&ev.kv.value, rev)?;
            Ok(sel.matches(&last).then_some(JsonWatchEvent {
                kind: WatchEventType::Deleted,
                object: last,
            }))
        }
    }
}

impl Registry {
    /// Watches one namespace (or all). `resource_version`: None or "0" starts with the current
    /// objects as ADDED; a revision replays the changes after it.
    pub async fn watch_json(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: Option<&str>,
    ) -> Result<WatchStream, ApiError> {
        let sel = Selectors::parse(def, params)?;
        let mut initial = Vec::new();
        let start: Revision = match resource_version.filter(|rv| !rv.is_empty() && *rv != "0") {
            Some(rv) => rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
            None => {
                let list = self
                    .list_json(
                        def,
                        namespace,
                        &ListParams {
                            limit: None,
                            continue_token: None,
                            ..params.clone()
                        },
                    )
                    .await?;
                initial = list.items;
                list.resource_version
            }
        };
        let prefix = def.prefix(namespace);
        let store_watch = self.store.watch(&prefix, start).await;
        let (tx, rx) = mpsc::channel::<JsonWatchEvent>(256);
        let bookmarks = params.allow_watch_bookmarks;
        let interval = self.bookmark_interval;
        let kind = def.kind;
        let api_version = def.group_version();
        tokio::spawn(async move {
            for object in initial {
                if tx
                    .send(JsonWatchEvent {
                        kind: WatchEventType::Added,
                        object,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut events = match store_watch {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(JsonWatchEvent::error(&ApiError::from(e))).await;
                    return;
                }
            };
            let mut last = start;
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                let out = tokio::select! {
                    _ = tx.closed() => return,
                    ev = events.next() => match ev {
                        None => return,
                        Some(Err(e)) => {
                            let _ = tx.send(JsonWatchEvent::error(&ApiError::from(e))).await;
                            return;
                        }
                        Some(Ok(ev)) => {
                            last = ev.kv.mod_revision;
                            match translate(&sel, &ev) {
                                Ok(Some(out)) => out,
                                Ok(None) => continue,
                                Err(e) => JsonWatchEvent::error(&e),
                            }
                        }
                    },
                    _ = ticker.tick(), if bookmarks => JsonWatchEvent {
                        kind: WatchEventType::Bookmark,
                        object: json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last.to_string()}}),
                    },
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }
}

//! The watcher: list, then watch from the list's resourceVersion; on a watch error (410 Gone
//! and the like) or a failed list, back off and list again, announcing it with `Restarted`.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::apiserver::registry::{ListParams, Registry, WatchEvent};

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<K> {
    /// An object was added or changed.
    Apply(K),
    /// An object was deleted (its last state).
    Delete(K),
    /// A fresh list: the full current set (after start or after recovering from an error).
    Restarted(Vec<K>),
}

/// Back-off between failed lists.
const RELIST_BACKOFF: Duration = Duration::from_millis(500);
/// Pause before resuming a watch that ended cleanly (keeps a flapping stream from spinning).
const REWATCH_PAUSE: Duration = Duration::from_millis(50);

/// Objects the runtime can watch.
pub trait Object:
    Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Clone + Send + Sync + 'static
{
}
impl<K> Object for K where
    K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Clone + Send + Sync + 'static
{
}

/// Watches all objects of kind `K` in every namespace; the stream never ends while its
/// receiver is alive.
pub fn watcher<K: Object>(registry: Registry) -> ReceiverStream<Event<K>> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let list = match registry.list::<K>(None, &ListParams::default()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(kind = K::KIND, error = %e, "list failed; retrying");
                    tokio::time::sleep(RELIST_BACKOFF).await;
                    continue;
                }
            };
            if tx.send(Event::Restarted(list.items)).await.is_err() {
                return;
            }
            let mut rv = list.resource_version;
            // Watch from the last seen revision until an error forces a re-list.
            'watch: loop {
                let mut stream = match registry
                    .watch::<K>(
                        None,
                        &ListParams {
                            allow_watch_bookmarks: true,
                            ..Default::default()
                        },
                        Some(rv.clone()),
                    )
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(kind = K::KIND, error = %e, "watch failed; re-listing");
                        break 'watch;
                    }
                };
                while let Some(ev) = stream.next().await {
                    let out = match ev {
                        WatchEvent::Added(k) | WatchEvent::Modified(k) => {
                            remember(&mut rv, &k);
                            Event::Apply(k)
                        }
                        WatchEvent::Deleted(k) => {
                            remember(&mut rv, &k);
                            Event::Delete(k)
                        }
                        WatchEvent::Bookmark(r) => {
                            if !r.is_empty() {
                                rv = r;
                            }
                            continue;
                        }
                        WatchEvent::Error(e) => {
                            tracing::info!(kind = K::KIND, error = %e, "watch error; re-listing");
                            break 'watch;
                        }
                    };
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
                // The stream ended without an error: resume from where it stopped.
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(REWATCH_PAUSE).await;
            }
            tokio::time::sleep(RELIST_BACKOFF).await;
        }
    });
    ReceiverStream::new(rx)
}

fn remember<K: Object>(rv: &mut String, k: &K) {
    if let Some(r) = k.metadata().resource_version.as_ref() {
        *rv = r.clone();
    }
}

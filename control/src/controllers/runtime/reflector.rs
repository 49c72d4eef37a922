//! The reflector: a cache of the objects a watcher reports, written by one `Writer` and read
//! by any number of `Reader`s.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::ObjectKey;
use super::watcher::{Event, Object};

type Map<K> = Arc<RwLock<HashMap<ObjectKey, Arc<K>>>>;

/// The writing half: applies watcher events.
pub struct Writer<K> {
    map: Map<K>,
    ready: watch::Sender<bool>,
}

/// The reading half. Cheap to clone.
pub struct Reader<K> {
    map: Map<K>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Reader<K> {
    fn clone(&self) -> Self {
        Reader {
            map: self.map.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// A new empty cache.
pub fn store<K>() -> (Reader<K>, Writer<K>) {
    let map: Map<K> = Arc::default();
    let (tx, rx) = watch::channel(false);
    (
        Reader {
            map: map.clone(),
            ready: rx,
        },
        Writer { map, ready: tx },
    )
}

impl<K: Object> Writer<K> {
    pub fn apply(&mut self, event: &Event<K>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(k) => {
                map.insert(ObjectKey::of(k), Arc::new(k.clone()));
            }
            Event::Delete(k) => {
                map.remove(&ObjectKey::of(k));
            }
            Event::Restarted(all) => {
                *map = all
                    .iter()
                    .map(|k| (ObjectKey::of(k), Arc::new(k.clone())))
                    .collect();
                drop(map);
                self.ready.send_replace(true);
            }
        }
    }
}

impl<K> Reader<K> {
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Waits until the first full list has been applied.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str, rv: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.resource_version = Some(rv.into());
        p
    }

    #[tokio::test]
    async fn applies_events_and_replaces_on_restart() {
        let (reader, mut writer) = store::<Pod>();
        writer.apply(&Event::Restarted(vec![pod("a", "1"), pod("b", "1")]));
        reader.wait_ready().await;
        writer.apply(&Event::Apply(pod("a", "2")));
        writer.apply(&Event::Delete(pod("b", "1")));
        let a = reader.get(&ObjectKey::new(Some("ns"), "a")).unwrap();
        assert_eq!(a.metadata.resource_version.as_deref(), Some("2"));
        assert!(reader.get(&ObjectKey::new(Some("ns"), "b")).is_none());
        writer.apply(&Event::Restarted(vec![pod("c", "3")]));
        let names: Vec<_> = reader
            .list()
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["c"]);
    }
}

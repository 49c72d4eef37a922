//! Tests of the sled store: the shared store suite, plus what only sled has — reopen,
//! compaction by history length, lagging watchers, group commit, closing.

use std::time::Duration;

use futures::future::join_all;
use tempfile::TempDir;

use super::{SledOptions, SledStore};
use crate::store::suite::{next, next_rev};
use crate::store::{ListOptions, Revision, Store, StoreError};

crate::store::suite::store_suite!(open_suite);

async fn open_suite() -> (TempDir, std::sync::Arc<dyn Store>) {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    (dir, std::sync::Arc::new(store))
}

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(dir.path()).expect("open store")
}

fn open_with(dir: &TempDir, history: u64, watch_buffer: usize) -> SledStore {
    let options = SledOptions {
        history,
        watch_buffer,
        ..SledOptions::default()
    };
    SledStore::open_with(dir.path(), options).expect("open store")
}

#[tokio::test]
async fn revisions_keep_growing_across_reopen() {
    let dir = TempDir::new().unwrap();
    let last = {
        let store = open(&dir);
        store.create("/a", b"1".to_vec()).await.unwrap();
        let r = store.create("/b", b"2".to_vec()).await.unwrap();
        store.delete("/a", None).await.unwrap().0.max(r)
    };
    let store = open(&dir);
    assert_eq!(store.revision(), last);
    let next = store.create("/c", b"3".to_vec()).await.unwrap();
    assert!(next > last, "{next} must exceed {last}");
    assert_eq!(store.get("/b").await.unwrap().unwrap().value, b"2");
    assert_eq!(store.get("/a").await.unwrap(), None);
}

/// Watches started at arbitrary moments during a stream of writes see every revision after
/// their start exactly once, in order.
#[tokio::test]
async fn watch_from_a_compacted_revision_fails() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, 10, 64);
    for i in 0..40 {
        store.create(&format!("/c/{i}"), vec![]).await.unwrap();
    }
    // Compaction runs on the flusher thread after the ack. With history 10 it keeps at most
    // 10 + 1 (slack) revisions, so it settles at 29 or 30 once revision 40 is written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.compacted_revision() < 29 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let compacted = store.compacted_revision();
    assert!((29..=30).contains(&compacted), "compacted to {compacted}");
    match store.watch("/c/", 1).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (1, compacted + 1));
        }
        other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
    }
    // The kept history still replays.
    let mut w = store.watch("/c/", compacted).await.unwrap();
    assert_eq!(next_rev(&mut w).await, compacted + 1);
    drop(w);
    // Compaction survives a reopen.
    drop(store);
    let store = open_with(&dir, 10, 64);
    assert!(matches!(
        store.watch("/c/", 1).await,
        Err(StoreError::Compacted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watcher_past_the_history_ends_compacted() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, 10, 4);
    // More writes than the watcher can hold in memory (stream buffer + a replay chunk + the
    // live channel) while nobody reads it, so it must go back to the compacted log.
    const WRITES: u64 = 1000;
    let mut w = store.watch("/l/", 0).await.unwrap();
    let writes = (0..WRITES).map(|i| store.create_owned(format!("/l/{i}")));
    for r in join_all(writes).await {
        r.unwrap();
    }
    // Let compaction settle (it runs right after the acks) so the outcome does not race it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.compacted_revision() < WRITES - 11 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last = 0;
    loop {
        match next(&mut w)
            .await
            .expect("stream ends with an error, not silently")
        {
            Ok(ev) => {
                assert_eq!(ev.kv.mod_revision, last + 1);
                last = ev.kv.mod_revision;
            }
            Err(StoreError::Compacted { requested, .. }) => {
                assert_eq!(requested, last);
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(last < WRITES, "the watcher must have fallen behind");
    assert!(
        next(&mut w).await.is_none(),
        "the stream ends after Compacted"
    );
}

/// Writes committed while a flush runs share the next one: stall the flusher, let 64 writers
/// commit, release it, and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_flushes_and_get_distinct_revisions() {
    let dir = TempDir::new().unwrap();
    let store = std::sync::Arc::new(open(&dir));
    let before = store.flush_count();
    let gate = store.shared.flush_gate.lock().unwrap();
    let writes = (0..64).map(|i| {
        let store = store.clone();
        async move { store.create(&format!("/cc/{i:02}"), b"v".to_vec()).await }
    });
    let all_writes = tokio::spawn(join_all(writes));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while *store.shared.read_lock() < 64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        store.revision(),
        0,
        "nothing is acknowledged or visible before its flush"
    );
    drop(gate);
    let mut revs: Vec<Revision> = all_writes
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let flushes = store.flush_count() - before;
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs, (1..=64).collect::<Vec<_>>());
    // At most one flush was already under way (for the first write) when the rest committed.
    assert!(flushes <= 2, "64 concurrent writes took {flushes} flushes");
    let all = store.list("/cc/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 64);
    assert_eq!(all.revision, 64);
}

#[tokio::test]
async fn dropping_the_store_ends_watches_and_releases_the_directory() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create("/d/a", b"a".to_vec()).await.unwrap();
    let mut w = store.watch("/d/", 0).await.unwrap();
    drop(store);
    assert!(next(&mut w).await.is_none());
    let store = open(&dir);
    assert_eq!(store.get("/d/a").await.unwrap().unwrap().value, b"a");
}

impl SledStore {
    /// Test helper: an owned create future (for `join_all`).
    async fn create_owned(&self, key: String) -> Result<Revision, StoreError> {
        self.create(&key, b"v".to_vec()).await
    }
}

/// A snapshot saved while a writer keeps writing holds exactly the writes up to its revision;
/// restoring it gives a store with the same objects and revisions that continues after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_consistent_online_and_restores_revisions() {
    use std::sync::Arc;
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    store.create("/s/keep", b"k".to_vec()).await.unwrap();
    let gone = store.create("/s/gone", b"g".to_vec()).await.unwrap();
    store.delete("/s/gone", Some(gone)).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..300 {
                revs.push(store.create(&format!("/w/{i:03}"), vec![1]).await.unwrap());
            }
            revs
        })
    };
    // Save once some (not all) of the writes are in.
    while store.revision() < gone + 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let file = dir.path().join("backup.snap");
    let info = store.save_snapshot(&file).await.unwrap();
    let revs = writer.await.unwrap();
    let before: Vec<_> = revs.iter().filter(|r| **r <= info.revision).collect();
    assert!(
        !before.is_empty() && before.len() < revs.len(),
        "the snapshot ran while writing ({} of {} before it)",
        before.len(),
        revs.len()
    );
    assert_eq!(info.objects, before.len() as u64 + 1);

    let restored_dir = dir.path().join("restored");
    assert_eq!(super::restore_snapshot(&file, &restored_dir).unwrap(), info);
    let restored = SledStore::open(&restored_dir).unwrap();
    assert_eq!(restored.revision(), info.revision);
    let all = restored.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len() as u64, info.objects);
    for kv in &all.items {
        assert_eq!(store.get(&kv.key).await.unwrap().as_ref(), Some(kv));
    }
    assert_eq!(restored.get("/s/gone").await.unwrap(), None);
    // History starts at the snapshot; new writes continue after it.
    assert!(matches!(
        restored.watch("/", 1).await,
        Err(StoreError::Compacted { .. })
    ));
    let next = restored.create("/s/new", vec![]).await.unwrap();
    assert_eq!(next, info.revision + 1);
    // A restore never overwrites a store, and a damaged file is refused.
    assert!(super::restore_snapshot(&file, &restored_dir).is_err());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let err = super::restore_snapshot(&file, &dir.path().join("other")).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

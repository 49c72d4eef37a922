//! Behaviour tests of the sled store: CRUD with revisions, paging, reopen, watches, compaction,
//! group commit.

use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use tempfile::TempDir;

use super::{SledOptions, SledStore};
use crate::store::{EventKind, ListOptions, Revision, Store, StoreError, WatchStream};

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

/// The next event, failing the test if none arrives within 5 s.
async fn next(w: &mut WatchStream) -> Option<Result<crate::store::WatchEvent, StoreError>> {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("watch event in time")
}

async fn next_rev(w: &mut WatchStream) -> Revision {
    next(w)
        .await
        .expect("stream open")
        .expect("event")
        .kv
        .mod_revision
}

#[tokio::test]
async fn create_get_and_already_exists() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = "/registry/pods/default/nginx";
    assert_eq!(store.get(key).await.unwrap(), None);
    let r1 = store.create(key, b"v1".to_vec()).await.unwrap();
    let kv = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"v1"[..], r1, r1)
    );
    let err = store.create(key, b"v2".to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(k) if k == key));
    assert_eq!(store.get(key).await.unwrap().unwrap().value, b"v1");
    assert_eq!(store.revision(), r1, "a failed create takes no revision");
}

#[tokio::test]
async fn update_compares_and_swaps() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = "/registry/pods/default/a";
    let err = store.update(key, b"x".to_vec(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    let r1 = store.create(key, b"v1".to_vec()).await.unwrap();
    let r2 = store.update(key, b"v2".to_vec(), Some(r1)).await.unwrap();
    assert!(r2 > r1);
    let err = store
        .update(key, b"v3".to_vec(), Some(r1))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict {
            expected, current, ..
        } => assert_eq!((expected, current), (r1, r2)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let r3 = store.update(key, b"v3".to_vec(), None).await.unwrap();
    let kv = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"v3"[..], r1, r3)
    );
}

#[tokio::test]
async fn delete_returns_last_value_and_checks_revision() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let key = "/registry/services/default/web";
    let r1 = store.create(key, b"svc".to_vec()).await.unwrap();
    let err = store.delete(key, Some(r1 + 100)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    let (rd, last) = store.delete(key, Some(r1)).await.unwrap();
    assert!(rd > r1);
    assert_eq!(
        (
            last.value.as_slice(),
            last.create_revision,
            last.mod_revision
        ),
        (&b"svc"[..], r1, rd)
    );
    assert_eq!(store.get(key).await.unwrap(), None);
    assert!(matches!(
        store.delete(key, None).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    // The key can be created again, with a new create revision.
    let r2 = store.create(key, b"again".to_vec()).await.unwrap();
    assert_eq!(store.get(key).await.unwrap().unwrap().create_revision, r2);
}

#[tokio::test]
async fn list_pages_through_a_prefix() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for i in 0..7 {
        store
            .create(&format!("/registry/pods/default/p{i}"), vec![i])
            .await
            .unwrap();
    }
    store
        .create("/registry/pods/defaultx/other", b"o".to_vec())
        .await
        .unwrap();
    store
        .create("/registry/pods/abc/before", b"b".to_vec())
        .await
        .unwrap();
    let prefix = "/registry/pods/default/";
    let mut seen = Vec::new();
    let mut start_after = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    start_after: start_after.clone(),
                    limit: Some(3),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, store.revision());
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        start_after = page.items.last().map(|kv| kv.key.clone());
    }
    let expected: Vec<String> = (0..7).map(|i| format!("{prefix}p{i}")).collect();
    assert_eq!(seen, expected);
    // Exactly a full page: `more` is false.
    let page = store
        .list(
            prefix,
            ListOptions {
                start_after: Some(format!("{prefix}p3")),
                limit: Some(3),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(!page.more);
    // No limit: everything under the prefix, nothing else.
    let all = store
        .list("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 9);
    assert_eq!(all.items[0].key, "/registry/pods/abc/before");
    assert!(!all.more);
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

#[tokio::test]
async fn watch_replays_then_goes_live() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let r1 = store
        .create("/registry/pods/ns/a", b"a1".to_vec())
        .await
        .unwrap();
    let r2 = store
        .update("/registry/pods/ns/a", b"a2".to_vec(), None)
        .await
        .unwrap();
    store
        .create("/registry/services/ns/s", b"s".to_vec())
        .await
        .unwrap();
    let r4 = store
        .create("/registry/pods/ns/b", b"b1".to_vec())
        .await
        .unwrap();
    let mut w = store.watch("/registry/pods/", r1).await.unwrap();
    let ev = next(&mut w).await.unwrap().unwrap();
    assert_eq!(
        (ev.kind, ev.kv.mod_revision, ev.prev.as_deref()),
        (EventKind::Put, r2, Some(&b"a1"[..]))
    );
    assert_eq!(ev.kv.create_revision, r1);
    assert_eq!(
        next_rev(&mut w).await,
        r4,
        "other prefixes are filtered out"
    );
    let (r5, _) = store.delete("/registry/pods/ns/a", None).await.unwrap();
    let ev = next(&mut w).await.unwrap().unwrap();
    assert_eq!(
        (ev.kind, ev.kv.mod_revision, ev.kv.value.as_slice()),
        (EventKind::Delete, r5, &b"a2"[..])
    );
    let r6 = store
        .create("/registry/pods/ns/c", b"c".to_vec())
        .await
        .unwrap();
    assert_eq!(next_rev(&mut w).await, r6);
}

#[tokio::test]
async fn watch_from_zero_starts_now() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.create("/k/old", b"o".to_vec()).await.unwrap();
    let mut w = store.watch("/k/", 0).await.unwrap();
    let r = store.create("/k/new", b"n".to_vec()).await.unwrap();
    let ev = next(&mut w).await.unwrap().unwrap();
    assert_eq!((ev.kv.key.as_str(), ev.kv.mod_revision), ("/k/new", r));
}

/// Watches started at arbitrary moments during a stream of writes see every revision after
/// their start exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_has_no_gap_or_duplicate_at_the_seam() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            let mut extra = 0;
            while extra < 20 {
                store.create(&format!("/w/{i:05}"), vec![1]).await.unwrap();
                i += 1;
                if stop.load(Ordering::Relaxed) {
                    extra += 1;
                }
            }
            store.revision()
        })
    };
    let mut watchers = Vec::new();
    for i in 0..12u64 {
        tokio::time::sleep(Duration::from_millis(2 + i % 4)).await;
        let after = if i % 3 == 0 {
            0
        } else {
            store.revision().saturating_sub(i)
        };
        let before = store.revision();
        let w = store.watch("/w/", after).await.unwrap();
        watchers.push((after, before, w));
    }
    stop.store(true, Ordering::Relaxed);
    let total = writer.await.unwrap();
    for (after, before, mut w) in watchers {
        let mut expect = next_rev(&mut w).await;
        if after == 0 {
            assert!(expect > before, "first event {expect} must follow {before}");
        } else {
            assert_eq!(expect, after + 1, "replay starts right after {after}");
        }
        while expect < total {
            let got = next_rev(&mut w).await;
            assert_eq!(got, expect + 1, "revisions must be contiguous");
            expect = got;
        }
    }
}

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
async fn lagging_watcher_catches_up_from_the_log() {
    let dir = TempDir::new().unwrap();
    let store = open_with(&dir, 10_000, 4);
    let mut w = store.watch("/l/", 0).await.unwrap();
    let writes = (0..300).map(|i| store.create_owned(format!("/l/{i}")));
    let revs: Vec<Revision> = join_all(writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let max = *revs.iter().max().unwrap();
    for expect in 1..=max {
        assert_eq!(next_rev(&mut w).await, expect);
    }
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

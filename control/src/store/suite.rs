//! The behaviour every `Store` backend must show, as one suite: each case takes a fresh, empty
//! store; `store_suite!` runs every case against one backend (see the sled and etcd tests).
//! Cases use only revisions the store returned (etcd's first write is not revision 1).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;

use crate::store::{EventKind, ListOptions, Revision, Store, StoreError, WatchEvent, WatchStream};

/// Generates one `#[tokio::test]` per suite case; `$open` names an async fn (in the calling module) returning
/// `(guard, Arc<dyn Store>)` for a fresh, empty store (the guard cleans up on drop).
macro_rules! store_suite {
    ($open:ident) => {
        $crate::store::suite::store_suite!(@cases $open;
            create_get_and_already_exists,
            update_compares_and_swaps,
            delete_returns_last_value_and_checks_revision,
            list_pages_through_a_prefix,
            large_lists_come_whole_and_in_order,
            watch_replays_then_goes_live,
            watch_from_zero_starts_now,
            watch_has_no_gap_or_duplicate_at_the_seam,
            lagging_watcher_catches_up_from_the_log,
        );
    };
    (@cases $open:ident; $($case:ident),* $(,)?) => {
        mod suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_guard, store) = super::$open().await;
                    $crate::store::suite::$case(store).await;
                }
            )*
        }
    };
}
pub(crate) use store_suite;

/// The next event, failing the test if none arrives within 5 s.
pub async fn next(w: &mut WatchStream) -> Option<Result<WatchEvent, StoreError>> {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("watch event in time")
}

pub async fn next_rev(w: &mut WatchStream) -> Revision {
    next(w)
        .await
        .expect("stream open")
        .expect("event")
        .kv
        .mod_revision
}

pub async fn create_get_and_already_exists(store: Arc<dyn Store>) {
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

pub async fn update_compares_and_swaps(store: Arc<dyn Store>) {
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

pub async fn delete_returns_last_value_and_checks_revision(store: Arc<dyn Store>) {
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

/// Lists larger than one backend read (etcd reads in chunks) come whole, in key order, at one
/// revision; a limit still cuts them exactly.
pub async fn large_lists_come_whole_and_in_order(store: Arc<dyn Store>) {
    let n = 1234;
    join_all((0..n).map(|i| {
        let store = store.clone();
        async move {
            store
                .create(&format!("/registry/configmaps/big/c{i:05}"), vec![0; 600])
                .await
                .unwrap()
        }
    }))
    .await;
    let all = store
        .list("/registry/configmaps/big/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), n);
    assert!(!all.more);
    let keys: Vec<&str> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(all.items.iter().all(|kv| kv.mod_revision <= all.revision));
    let limited = store
        .list(
            "/registry/configmaps/big/",
            ListOptions {
                limit: Some(700),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited.items.len(), 700);
    assert!(limited.more);
    assert_eq!(limited.items[699].key, "/registry/configmaps/big/c00699");
}

pub async fn list_pages_through_a_prefix(store: Arc<dyn Store>) {
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

pub async fn watch_replays_then_goes_live(store: Arc<dyn Store>) {
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

pub async fn watch_from_zero_starts_now(store: Arc<dyn Store>) {
    store.create("/k/old", b"o".to_vec()).await.unwrap();
    let mut w = store.watch("/k/", 0).await.unwrap();
    let r = store.create("/k/new", b"n".to_vec()).await.unwrap();
    let ev = next(&mut w).await.unwrap().unwrap();
    assert_eq!((ev.kv.key.as_str(), ev.kv.mod_revision), ("/k/new", r));
}

pub async fn watch_has_no_gap_or_duplicate_at_the_seam(store: Arc<dyn Store>) {
    use std::sync::atomic::{AtomicBool, Ordering};
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

pub async fn lagging_watcher_catches_up_from_the_log(store: Arc<dyn Store>) {
    let mut w = store.watch("/l/", 0).await.unwrap();
    let start = store.revision();
    let writes = (0..300).map(|i| {
        let store = store.clone();
        async move { store.create(&format!("/l/{i}"), b"v".to_vec()).await }
    });
    let revs: Vec<Revision> = join_all(writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let max = *revs.iter().max().unwrap();
    for expect in start + 1..=max {
        assert_eq!(next_rev(&mut w).await, expect);
    }
}

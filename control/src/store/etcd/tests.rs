//! Tests of the etcd store against a real etcd: the shared store suite, plus URL parsing,
//! the key prefix, compaction mapped to `Compacted`, pinned lists, and two stores on one etcd.

use std::sync::Arc;

use super::server::EtcdServer;
use super::{EtcdOptions, EtcdStore};
use crate::store::suite::{next, next_rev};
use crate::store::{ListOptions, Store, StoreError};

crate::store::suite::store_suite!(open_suite);

async fn open_suite() -> (EtcdServer, Arc<dyn Store>) {
    let server = EtcdServer::start().await;
    let store = server.store().await;
    (server, Arc::new(store))
}

#[test]
fn store_urls_parse() {
    let o = EtcdOptions::from_url("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap();
    assert_eq!(
        o.endpoints,
        vec!["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(o.prefix, "/skiff/");
    assert!(EtcdOptions::from_url("http://127.0.0.1:2379").is_err());
    assert!(EtcdOptions::from_url("etcd://").is_err());
}

#[test]
fn prefix_range_ends() {
    assert_eq!(super::prefix_end("/a/"), b"/a0".to_vec());
    assert_eq!(super::prefix_end("a\u{7f}"), b"a\x80".to_vec());
    assert_eq!(super::prefix_end(""), vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_under_the_prefix_and_prefixes_do_not_mix() {
    let server = EtcdServer::start().await;
    let a = server.store().await;
    let b = EtcdStore::connect(EtcdOptions {
        prefix: "/other".into(),
        ..server.options()
    })
    .await
    .unwrap();
    a.create("/registry/x", b"a".to_vec()).await.unwrap();
    b.create("/registry/x", b"b".to_vec()).await.unwrap();
    assert_eq!(a.get("/registry/x").await.unwrap().unwrap().value, b"a");
    assert_eq!(b.get("/registry/x").await.unwrap().unwrap().value, b"b");
    // A start key before the prefix does not leak keys from outside it.
    a.create("/aaa", b"outside".to_vec()).await.unwrap();
    let page = a
        .list(
            "/registry/",
            ListOptions {
                start_after: Some("/a".into()),
                limit: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    a.delete("/aaa", None).await.unwrap();
    let all = a.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 1);
    assert_eq!(all.items[0].key, "/registry/x");
    // The raw etcd key carries the prefix.
    let mut raw = etcd_client::Client::connect([server.endpoint.as_str()], None)
        .await
        .unwrap();
    let got = raw.get("/skiff/registry/x", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"a");
}

/// Two stores (two control-plane replicas) on one etcd see each other's writes, conflicts and
/// watch events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_revisions_and_conflicts() {
    let server = EtcdServer::start().await;
    let a = server.store().await;
    let b = server.store().await;
    let mut w = b.watch("/r/", 0).await.unwrap();
    let r1 = a.create("/r/k", b"1".to_vec()).await.unwrap();
    assert_eq!(next_rev(&mut w).await, r1);
    let r2 = b.update("/r/k", b"2".to_vec(), Some(r1)).await.unwrap();
    match a.update("/r/k", b"3".to_vec(), Some(r1)).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, r2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        b.create("/r/k", b"x".to_vec()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(next_rev(&mut w).await, r2);
    assert!(b.revision() >= r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_revisions_fail_watches_and_pinned_lists() {
    let server = EtcdServer::start().await;
    let store = server.store().await;
    let first = store.create("/c/0", vec![]).await.unwrap();
    for i in 1..20 {
        store.create(&format!("/c/{i}"), vec![]).await.unwrap();
    }
    // A list pinned at an old revision sees the store as it was then.
    let old = store
        .list_at("/c/", ListOptions::default(), Some(first))
        .await
        .unwrap();
    assert_eq!((old.items.len(), old.revision), (1, first));
    let target = store.revision() - 5;
    store.compact(target).await.unwrap();
    assert_eq!(store.compacted_revision(), target);
    // Watching from before the compaction fails (at once or as the stream's first item).
    match store.watch("/c/", first).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (first, target))
        }
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut w) => match next(&mut w).await {
            Some(Err(StoreError::Compacted { requested, oldest })) => {
                assert_eq!((requested, oldest), (first, target));
                assert!(next(&mut w).await.is_none(), "the stream ends after it");
            }
            other => panic!("expected Compacted, got {other:?}"),
        },
    }
    assert!(matches!(
        store
            .list_at("/c/", ListOptions::default(), Some(first))
            .await,
        Err(StoreError::Compacted { .. })
    ));
    // The kept history still replays: from `target - 1` the first event is `target`.
    let mut w = store.watch("/c/", target - 1).await.unwrap();
    assert_eq!(next_rev(&mut w).await, target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_keeps_the_newest_revisions() {
    let server = EtcdServer::start().await;
    let store = EtcdStore::connect(EtcdOptions {
        keep_revisions: 10,
        compact_interval: std::time::Duration::from_millis(100),
        ..server.options()
    })
    .await
    .unwrap();
    for i in 0..40 {
        store.create(&format!("/p/{i}"), vec![]).await.unwrap();
    }
    let newest = store.revision();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.compacted_revision() < newest - 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.compacted_revision(), newest - 10);
    let mut w = store.watch("/p/", newest - 10).await.unwrap();
    assert_eq!(next_rev(&mut w).await, newest - 9);
}

#[tokio::test]
async fn unreachable_etcd_fails_to_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = EtcdOptions::from_url(&format!("etcd://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    assert!(EtcdStore::connect(options).await.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

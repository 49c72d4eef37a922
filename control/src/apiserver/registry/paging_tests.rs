//! Consistent list paging over both stores: a `continue` token carries the first page's
//! revision, later pages read at it (etcd) and report it, and a compacted one is 410 Expired.

use std::sync::Arc;

use serde_json::json;

use super::{ListParams, Registry, WriteParams, resource};
use crate::apiserver::error::ApiError;
use crate::store::Store;
use crate::store::etcd::server::EtcdServer;
use crate::store::sled_store::SledStore;

async fn fill(r: &Registry, names: &[&str]) {
    let def = resource("", "configmaps").unwrap();
    for n in names {
        r.create_json(
            def,
            Some("default"),
            json!({"metadata": {"name": n}, "data": {"v": "1"}}),
            WriteParams::default(),
        )
        .await
        .unwrap();
    }
}

fn page(limit: usize, token: Option<String>) -> ListParams {
    ListParams {
        limit: Some(limit),
        continue_token: token,
        ..ListParams::default()
    }
}

fn names(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Pages through five objects while one is added past the cursor; `snapshot` says whether the
/// store reads the later pages at the first page's revision.
async fn pages_share_the_first_revision(store: Arc<dyn Store>, snapshot: bool) {
    let r = Registry::new(store).await.unwrap();
    let def = resource("", "configmaps").unwrap();
    fill(&r, &["a", "b", "c", "d", "e"]).await;
    let first = r
        .list_json(def, Some("default"), &page(2, None))
        .await
        .unwrap();
    assert_eq!(names(&first.items), ["a", "b"]);
    let token = first.continue_token.clone().expect("more pages");
    fill(&r, &["f"]).await;
    let mut seen = names(&first.items);
    let mut token = Some(token);
    while let Some(t) = token {
        let next = r
            .list_json(def, Some("default"), &page(2, Some(t)))
            .await
            .unwrap();
        assert_eq!(next.resource_version, first.resource_version);
        seen.extend(names(&next.items));
        token = next.continue_token;
    }
    if snapshot {
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    } else {
        assert_eq!(seen, ["a", "b", "c", "d", "e", "f"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_pages_report_the_first_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    // sled keeps only the newest state: later pages read that (documented on `list_at`).
    pages_share_the_first_revision(store, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_pages_read_one_snapshot_and_expire_after_compaction() {
    let server = EtcdServer::start().await;
    pages_share_the_first_revision(Arc::new(server.store().await), true).await;

    let store = Arc::new(server.store().await);
    let r = Registry::new(store.clone()).await.unwrap();
    let def = resource("", "configmaps").unwrap();
    let first = r
        .list_json(def, Some("default"), &page(2, None))
        .await
        .unwrap();
    fill(&r, &["g", "h"]).await;
    store.compact(store.revision()).await.unwrap();
    let err = r
        .list_json(def, Some("default"), &page(2, first.continue_token))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Expired { .. }), "{err:?}");
    let status = err.status();
    assert_eq!(
        (status.code, status.reason.as_deref()),
        (Some(410), Some("Expired"))
    );
    assert!(
        err.to_string()
            .starts_with("The provided continue parameter is too old"),
        "{err}"
    );
}

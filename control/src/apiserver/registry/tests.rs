//! Registry behaviour against the in-memory store: create semantics, concurrency, deletion,
//! binding, paging, patches and watches.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

use super::memstore::MemStore;
use super::*;

async fn registry() -> (Registry, Arc<MemStore>) {
    let store = Arc::new(MemStore::new());
    let r = Registry::new(store.clone()).await.unwrap();
    (r, store)
}

fn pods() -> &'static ResourceDef {
    resource("", "pods").unwrap()
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

async fn create_pod(r: &Registry, name: &str) -> Value {
    r.create_json(pods(), Some("default"), pod(name), WriteParams::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn system_namespaces_exist_and_new_is_idempotent() {
    let (r, store) = registry().await;
    let list = r
        .list::<Namespace>(None, &ListParams::default())
        .await
        .unwrap();
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let again = Registry::new(store).await.unwrap();
    assert_eq!(
        again
            .list::<Namespace>(None, &ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let ns = r.get::<Namespace>(None, "default").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
}

#[tokio::test]
async fn create_sets_metadata_defaults_and_revision() {
    let (r, store) = registry().await;
    let p = create_pod(&r, "a").await;
    assert_eq!(p["kind"], "Pod");
    assert_eq!(p["apiVersion"], "v1");
    assert_eq!(p["metadata"]["namespace"], "default");
    assert_eq!(p["metadata"]["generation"], 1);
    assert_eq!(p["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        p["metadata"]["resourceVersion"],
        store.revision().to_string()
    );
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    assert_eq!(p["status"]["phase"], "Pending");
    let got = r.get_json(pods(), Some("default"), "a").await.unwrap();
    assert_eq!(got, p);

    let generated = r
        .create_json(
            pods(),
            Some("default"),
            json!({"metadata": {"generateName": "web-"}, "spec": pod("x")["spec"]}),
            WriteParams::default(),
        )
        .await
        .unwrap();
    assert!(
        generated["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    );
}

#[tokio::test]
async fn create_errors_read_like_kubernetes() {
    let (r, _) = registry().await;
    create_pod(&r, "a").await;
    let e = r
        .create_json(pods(), Some("default"), pod("a"), WriteParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (409, "pods \"a\" already exists")
    );
    let e = r
        .create_json(pods(), Some("nope"), pod("b"), WriteParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let mut bad = pod("c");
    bad["spec"]["containers"][0]["image"] = json!("");
    let e = r
        .create_json(pods(), Some("default"), bad, WriteParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (
            422,
            "Pod \"c\" is invalid: spec.containers[0].image: Required value"
        )
    );
    let e = r
        .create_json(
            pods(),
            Some("default"),
            pod("Bad_Name"),
            WriteParams::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), 422);
    let mut wrong = pod("d");
    wrong["metadata"]["namespace"] = json!("kube-system");
    assert_eq!(
        r.create_json(pods(), Some("default"), wrong, WriteParams::default())
            .await
            .unwrap_err()
            .code(),
        400
    );
    let mut kind = pod("e");
    kind["kind"] = json!("Node");
    assert_eq!(
        r.create_json(pods(), Some("default"), kind, WriteParams::default())
            .await
            .unwrap_err()
            .code(),
        400
    );
}

#[tokio::test]
async fn dry_run_validates_but_does_not_store() {
    let (r, _) = registry().await;
    let p = r
        .create_json(
            pods(),
            Some("default"),
            pod("dry"),
            WriteParams { dry_run: true },
        )
        .await
        .unwrap();
    assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        r.get_json(pods(), Some("default"), "dry")
            .await
            .unwrap_err()
            .code(),
        404
    );
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let (r, _) = registry().await;
    let p: Pod = serde_json::from_value(create_pod(&r, "a").await).unwrap();
    let mut v1 = p.clone();
    v1.metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "1".into());
    let stored = r.replace(&v1).await.unwrap();
    assert_ne!(
        stored.metadata.resource_version,
        p.metadata.resource_version
    );
    let mut stale = p.clone();
    stale
        .metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "2".into());
    let e = r.replace(&stale).await.unwrap_err();
    assert_eq!(e.code(), 409);
    assert_eq!(e.reason(), "Conflict");
    assert!(
        e.to_string().starts_with(
            "Operation cannot be fulfilled on pods \"a\": the object has been modified"
        )
    );
    // Unconditional (no resourceVersion) succeeds.
    stale.metadata.resource_version = None;
    r.replace(&stale).await.unwrap();
}

#[tokio::test]
async fn status_and_spec_are_written_separately() {
    let (r, _) = registry().await;
    let mut p: Pod = serde_json::from_value(create_pod(&r, "a").await).unwrap();
    p.status.get_or_insert_default().phase = Some("Running".into());
    let after = r.replace(&p).await.unwrap();
    assert_eq!(
        after.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending"),
        "PUT keeps the stored status"
    );
    let mut s = after.clone();
    s.status.get_or_insert_default().phase = Some("Running".into());
    s.spec.as_mut().unwrap().containers[0].image = Some("ignored".into());
    let after = r.replace_status(&s).await.unwrap();
    assert_eq!(
        after.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(
        after.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("busybox")
    );
    // Changing more than the image is forbidden.
    let mut bad = after.clone();
    bad.spec.as_mut().unwrap().containers[0].name = "other".into();
    assert_eq!(r.replace(&bad).await.unwrap_err().code(), 422);
    let mut img = after.clone();
    img.spec.as_mut().unwrap().containers[0].image = Some("busybox:1.36".into());
    let img = r.replace(&img).await.unwrap();
    assert_eq!(img.metadata.generation, Some(2));
}

#[tokio::test]
async fn binding_and_graceful_deletion() {
    let (r, _) = registry().await;
    create_pod(&r, "a").await;
    let bound = r.bind_pod("default", "a", "n1").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
    let e = r.bind_pod("default", "a", "n2").await.unwrap_err();
    assert_eq!(e.code(), 409);
    // Bound: marked terminating with the pod's grace period.
    let marked = r
        .delete_json(pods(), Some("default"), "a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(r.get_json(pods(), Some("default"), "a").await.is_ok());
    // The node finalizes it (a wrong uid is ignored).
    r.finalize_pod_deletion("default", "a", Some("other-uid"))
        .await
        .unwrap();
    assert!(r.get_json(pods(), Some("default"), "a").await.is_ok());
    let uid = marked["metadata"]["uid"].as_str().unwrap();
    r.finalize_pod_deletion("default", "a", Some(uid))
        .await
        .unwrap();
    assert_eq!(
        r.get_json(pods(), Some("default"), "a")
            .await
            .unwrap_err()
            .code(),
        404
    );
    r.finalize_pod_deletion("default", "a", None).await.unwrap();

    // --grace-period=0 --force removes at once; unbound pods go at once.
    create_pod(&r, "b").await;
    r.bind_pod("default", "b", "n1").await.unwrap();
    let p = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    r.delete_json(pods(), Some("default"), "b", &p)
        .await
        .unwrap();
    assert_eq!(
        r.get_json(pods(), Some("default"), "b")
            .await
            .unwrap_err()
            .code(),
        404
    );
    create_pod(&r, "c").await;
    r.delete_json(pods(), Some("default"), "c", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        r.get_json(pods(), Some("default"), "c")
            .await
            .unwrap_err()
            .code(),
        404
    );
    let e = r
        .delete_json(pods(), Some("default"), "c", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "pods \"c\" not found");
}

#[tokio::test]
async fn delete_preconditions_and_system_namespaces() {
    let (r, _) = registry().await;
    create_pod(&r, "a").await;
    let p = DeleteParams {
        preconditions: Preconditions {
            uid: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        r.delete_json(pods(), Some("default"), "a", &p)
            .await
            .unwrap_err()
            .code(),
        409
    );
    let ns = resource("", "namespaces").unwrap();
    assert_eq!(
        r.delete_json(ns, None, "default", &DeleteParams::default())
            .await
            .unwrap_err()
            .code(),
        403
    );
    r.create_json(
        ns,
        None,
        json!({"metadata": {"name": "team"}}),
        WriteParams::default(),
    )
    .await
    .unwrap();
    r.create_json(pods(), Some("team"), pod("t"), WriteParams::default())
        .await
        .unwrap();
    r.delete_json(ns, None, "team", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        r.get_json(pods(), Some("team"), "t")
            .await
            .unwrap_err()
            .code(),
        404
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (r, _) = registry().await;
    let mut p = pod("f");
    p["metadata"]["finalizers"] = json!(["example.com/hold"]);
    r.create_json(pods(), Some("default"), p, WriteParams::default())
        .await
        .unwrap();
    let marked = r
        .delete_json(pods(), Some("default"), "f", &DeleteParams::default())
        .await
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let patch = json!({"metadata": {"finalizers": null}});
    r.patch_json(
        pods(),
        Some("default"),
        "f",
        PatchType::Merge,
        &patch,
        Subresource::Main,
        WriteParams::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.get_json(pods(), Some("default"), "f")
            .await
            .unwrap_err()
            .code(),
        404
    );
}

#[tokio::test]
async fn lists_filter_and_page() {
    let (r, _) = registry().await;
    for i in 0..7 {
        let mut p = pod(&format!("p{i}"));
        p["metadata"]["labels"]["i"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        r.create_json(pods(), Some("default"), p, WriteParams::default())
            .await
            .unwrap();
    }
    let all = r
        .list_json(pods(), None, &ListParams::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 7);
    let mut params = ListParams {
        label_selector: Some("i=even".into()),
        limit: Some(2),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = r.list_json(pods(), Some("default"), &params).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(
            page.items
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page.continue_token {
            Some(c) => params.continue_token = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["p0", "p2", "p4", "p6"]);
    let f = ListParams {
        field_selector: Some("metadata.name=p3".into()),
        ..Default::default()
    };
    assert_eq!(
        r.list_json(pods(), Some("default"), &f)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let bad = ListParams {
        field_selector: Some("spec.bogus=1".into()),
        ..Default::default()
    };
    assert_eq!(
        r.list_json(pods(), None, &bad).await.unwrap_err().code(),
        400
    );
}

#[tokio::test]
async fn patches() {
    let (r, _) = registry().await;
    create_pod(&r, "a").await;
    let p = r
        .patch_json(
            pods(),
            Some("default"),
            "a",
            PatchType::StrategicMerge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
            Subresource::Main,
            WriteParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(p["metadata"]["labels"], json!({"app": "web", "x": "y"}));
    let p = r
        .patch_json(
            pods(),
            Some("default"),
            "a",
            PatchType::Json,
            &json!([{"op": "replace", "path": "/status/phase", "value": "Running"}]),
            Subresource::Status,
            WriteParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(p["status"]["phase"], "Running");
    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"z": "1"}}});
    let e = r
        .patch_json(
            pods(),
            Some("default"),
            "a",
            PatchType::Merge,
            &stale,
            Subresource::Main,
            WriteParams::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), 409);
}

async fn next(s: &mut WatchStream) -> JsonWatchEvent {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("watch event in time")
        .expect("stream open")
}

#[tokio::test]
async fn watch_initial_live_and_selector_transitions() {
    let (r, _) = registry().await;
    create_pod(&r, "a").await;
    let params = ListParams {
        label_selector: Some("app=web".into()),
        ..Default::default()
    };
    let mut w = r
        .watch_json(pods(), Some("default"), &params, None)
        .await
        .unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.object["metadata"]["name"].as_str()),
        (WatchEventType::Added, Some("a"))
    );
    create_pod(&r, "b").await;
    assert_eq!(next(&mut w).await.kind, WatchEventType::Added);
    // Leaves the selector: DELETED; comes back: ADDED.
    let off = json!({"metadata": {"labels": {"app": "db"}}});
    r.patch_json(
        pods(),
        Some("default"),
        "b",
        PatchType::Merge,
        &off,
        Subresource::Main,
        WriteParams::default(),
    )
    .await
    .unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.object["metadata"]["name"].as_str()),
        (WatchEventType::Deleted, Some("b"))
    );
    let on = json!({"metadata": {"labels": {"app": "web"}}});
    r.patch_json(
        pods(),
        Some("default"),
        "b",
        PatchType::Merge,
        &on,
        Subresource::Main,
        WriteParams::default(),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut w).await.kind, WatchEventType::Added);
    r.delete_json(pods(), Some("default"), "a", &DeleteParams::default())
        .await
        .unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.object["metadata"]["name"].as_str()),
        (WatchEventType::Deleted, Some("a"))
    );
}

#[tokio::test]
async fn watch_replays_from_revision_and_reports_gone() {
    let (r, store) = registry().await;
    let a = create_pod(&r, "a").await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    create_pod(&r, "b").await;
    r.bind_pod("default", "b", "n1").await.unwrap();
    let mut w = r
        .watch::<Pod>(Some("default"), &ListParams::default(), Some(rv.clone()))
        .await
        .unwrap();
    let names: Vec<String> = vec![
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap(),
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap(),
    ]
    .into_iter()
    .map(|e| match e {
        WatchEvent::Added(p) => format!("added {}", p.metadata.name.unwrap()),
        WatchEvent::Modified(p) => format!("modified {}", p.metadata.name.unwrap()),
        other => format!("{other:?}"),
    })
    .collect();
    assert_eq!(names, ["added b", "modified b"]);
    store.compact(store.revision());
    let mut w = r
        .watch_json(pods(), None, &ListParams::default(), Some(&rv))
        .await
        .unwrap();
    let e = next(&mut w).await;
    assert_eq!(e.kind, WatchEventType::Error);
    assert_eq!(e.object["code"], 410);
    assert_eq!(e.object["reason"], "Gone");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn watch_bookmarks() {
    let (r, _) = registry().await;
    let r = r.with_bookmark_interval(Duration::from_millis(50));
    let params = ListParams {
        allow_watch_bookmarks: true,
        ..Default::default()
    };
    let mut w = r.watch_json(pods(), None, &params, None).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!(e.kind, WatchEventType::Bookmark);
    assert_eq!(e.object["kind"], "Pod");
    assert!(
        e.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
}

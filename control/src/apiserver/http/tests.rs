//! The Router without TLS (tower `oneshot`): status codes and bodies for the cases kubectl does
//! not reach: auth, media types, methods, DeleteOptions bodies, watch replay and 410 Gone.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::{Auth, NoNodeStreams, Registry, router};
use crate::store::Store;

const TOKEN: &str = "t0ken";

async fn app() -> (axum::Router, Arc<MemStore>) {
    let store = Arc::new(MemStore::new());
    let registry = Registry::new(store.clone()).await.unwrap();
    (
        router(
            registry,
            Arc::new(NoNodeStreams),
            Auth::bearer_tokens(vec![TOKEN.into()]),
            33,
        ),
        store,
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ct: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

const POD: &str =
    r#"{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;

#[tokio::test]
async fn auth_is_required_except_for_health_and_version() {
    let (app, _) = app().await;
    for (uri, code) in [
        ("/api/v1/pods", 401),
        ("/version", 200),
        ("/version/", 200),
        ("/healthz", 200),
        ("/readyz", 200),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code, "{uri}");
    }
    let resp = app
        .clone()
        .oneshot(
            Request::get("/api")
                .header("authorization", "Bearer nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
}

#[tokio::test]
async fn media_types_methods_and_delete_options() {
    let (app, _) = app().await;
    let (code, body) = call(&app, "POST", "/api/v1/namespaces/default/pods", None, POD).await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "POST without Content-Type is JSON: {body}"
    );
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/vnd.kubernetes.protobuf"),
        "k8s\0",
    )
    .await;
    // Protobuf is decoded; a body that is only the magic is malformed.
    assert_eq!(
        (code, json(&body)["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/cbor"),
        "{}",
    )
    .await;
    assert_eq!(
        (code, json(&body)["reason"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("UnsupportedMediaType")
        )
    );
    let (code, body) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        POD,
    )
    .await;
    assert_eq!(
        (code, json(&body)["reason"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("MethodNotAllowed"))
    );
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        "{nope",
    )
    .await;
    assert_eq!(
        (code, json(&body)["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );
    let (code, _) = call(
        &app,
        "PATCH",
        "/api/v1/namespaces/default/pods/a",
        Some("application/apply-patch+yaml"),
        "{}",
    )
    .await;
    // Server-side apply without a fieldManager.
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // Bind, then delete with a DeleteOptions body (as the Python client sends it).
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"a"},"target":{"kind":"Node","name":"n1"}}"#;
    let (code, body) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods/a/binding",
        Some("application/json"),
        binding,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods/a/binding",
        Some("application/json"),
        binding,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, body) = call(
        &app,
        "DELETE",
        "/api/v1/namespaces/default/pods/a",
        None,
        r#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":5}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(json(&body)["metadata"]["deletionGracePeriodSeconds"], 5);
    let (code, body) = call(&app, "GET", "/api/v1/namespaces/default/pods/a", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(json(&body)["metadata"]["deletionTimestamp"].is_string());
}

#[tokio::test]
async fn lists_and_tables() {
    let (app, _) = app().await;
    call(
        &app,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/yaml"),
        "metadata:\n  name: y1\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
    )
    .await;
    let (code, body) = call(&app, "GET", "/api/v1/pods", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let list = json(&body);
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("PodList"), Some("v1"))
    );
    assert!(list["metadata"]["resourceVersion"].is_string());
    assert_eq!(list["items"][0]["kind"], "Pod");
    let req = Request::get("/api/v1/namespaces/default/pods?includeObject=None")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let t: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][0]["cells"][0], "y1");
    assert!(t["rows"][0].get("object").is_none());
    let (code, _) = call(
        &app,
        "GET",
        "/api/v1/pods?fieldSelector=spec.bogus%3D1",
        None,
        "",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, body) = call(
        &app,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/none",
        None,
        "",
    )
    .await;
    assert_eq!(
        (code, json(&body)["message"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("leases.coordination.k8s.io \"none\" not found")
        )
    );
}

#[tokio::test]
async fn watch_replays_and_reports_gone() {
    let (app, store) = app().await;
    let rv = store.revision();
    call(&app, "POST", "/api/v1/namespaces/default/pods", None, POD).await;
    let (code, body) = call(
        &app,
        "GET",
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ),
        None,
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let events: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a"))
    );
    store.compact(store.revision());
    let (_, body) = call(
        &app,
        "GET",
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
        None,
        "",
    )
    .await;
    let ev = json(body.lines().next().unwrap());
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(
        (
            ev["object"]["code"].as_i64(),
            ev["object"]["reason"].as_str()
        ),
        (Some(410), Some("Gone"))
    );
}

//! Server-side apply over HTTP (the router without TLS): 201 on create-by-apply, 200 after,
//! 422 without `fieldManager`, the 409 Status with `FieldManagerConflict` causes, `force=true`,
//! managedFields on reads, and managers derived from the User-Agent.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::{Auth, NoNodeStreams, Registry, router};

const TOKEN: &str = "t0ken";
const APPLY: &str = "application/apply-patch+yaml";
const PATH: &str = "/apis/apps/v1/namespaces/default/deployments/web";

async fn app() -> axum::Router {
    let registry = Registry::new(Arc::new(MemStore::new())).await.unwrap();
    router(
        registry,
        Arc::new(NoNodeStreams),
        Auth::bearer_tokens(vec![TOKEN.into()]),
        33,
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ct: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", ct)
        .header("user-agent", "kubectl/v1.33.0 (linux/amd64) kubernetes/abc")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const CONFIG: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: busybox:1
";

#[tokio::test]
async fn apply_over_http() {
    let app = app().await;
    let (code, body) = call(&app, "PATCH", PATH, APPLY, CONFIG).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    let uri = format!("{PATH}?fieldManager=ci");
    let (code, created) = call(&app, "PATCH", &uri, APPLY, CONFIG).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "ci");
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    let (code, again) = call(&app, "PATCH", &uri, APPLY, CONFIG).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        again["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"],
        "a re-apply of the same configuration writes nothing"
    );

    // A merge patch without fieldManager is recorded under the User-Agent's product.
    let (code, patched) = call(
        &app,
        "PATCH",
        PATH,
        "application/merge-patch+json",
        r#"{"spec":{"replicas":4}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let entries = patched["metadata"]["managedFields"].as_array().unwrap();
    let kubectl = entries.iter().find(|e| e["manager"] == "kubectl").unwrap();
    assert_eq!(kubectl["operation"], "Update");
    assert_eq!(kubectl["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

    let (code, status) = call(&app, "PATCH", &uri, APPLY, CONFIG).await;
    assert_eq!(code, StatusCode::CONFLICT, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{
            "reason": "FieldManagerConflict",
            "message": "conflict with \"kubectl\" using apps/v1",
            "field": ".spec.replicas",
        }])
    );
    let (code, forced) = call(&app, "PATCH", &format!("{uri}&force=true"), APPLY, CONFIG).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(forced["spec"]["replicas"], 2);
    let (_, got) = call(&app, "GET", PATH, "application/json", "").await;
    let managers: Vec<&str> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["ci"], "kubectl lost its only field");

    // Wrong kind in the configuration.
    let wrong = CONFIG.replace("kind: Deployment", "kind: StatefulSet");
    let (code, _) = call(&app, "PATCH", &uri, APPLY, &wrong).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

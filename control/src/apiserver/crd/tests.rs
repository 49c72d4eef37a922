//! Tests of the schema validator, pruning and defaulting, CRD validation, and custom resources
//! served over HTTP (the Router in process, over an in-memory store).

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::definition::CUSTOMRESOURCEDEFINITIONS;
use super::schema;
use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::{Auth, NoNodeStreams, Registry, router};

fn crontab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                    "image": {"type": "string", "maxLength": 20},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "policy": {"type": "string", "enum": ["Allow", "Forbid"]},
                    "when": {"type": "string", "format": "date-time", "nullable": true},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                },
            },
            "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
        },
    })
}

fn errors(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    schema::validate(&crontab_schema(), obj, "", &mut errs);
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn validation_messages_are_upstreams() {
    let ok =
        json!({"spec": {"cronSpec": "* * * * */5", "replicas": 3, "port": "http", "when": null}});
    assert_eq!(errors(&ok), Vec::<String>::new());
    assert_eq!(
        errors(&json!({"spec": {"cronSpec": "* * * * */5", "replicas": "three"}})),
        [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        ]
    );
    assert_eq!(
        errors(&json!({"spec": {}})),
        ["spec.cronSpec: Required value"]
    );
    let all = errors(&json!({"spec": {
        "cronSpec": "bad", "replicas": 11, "image": "x".repeat(21), "policy": "Maybe",
        "when": "yesterday", "tags": ["a", "b", "c"], "port": 1.5,
    }}));
    let expect = [
        "spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match",
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        "spec.image: Too long: may not be more than 20 bytes",
        "spec.policy: Unsupported value: \"Maybe\": supported values: \"Allow\", \"Forbid\"",
        "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        "spec.tags: Invalid value: [\"a\",\"b\",\"c\"]: spec.tags in body should have at most 2 items",
        "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
    ];
    for e in expect {
        assert!(
            all.iter().any(|a| a.starts_with(e)),
            "missing {e:?} in {all:#?}"
        );
    }
    assert_eq!(all.len(), expect.len(), "{all:#?}");
    assert_eq!(
        errors(&json!({"spec": {"cronSpec": "* * * * *", "replicas": 0}})),
        [
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        ]
    );
}

#[test]
fn pruning_and_defaulting() {
    let s = crontab_schema();
    let mut obj = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "a"},
        "spec": {
            "cronSpec": "* * * * *", "bogus": 1,
            "extra": {"anything": {"goes": true}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1},
        },
        "top": "level",
        "status": null,
    });
    let mut pruned = schema::prune(&s, &mut obj);
    pruned.sort();
    assert_eq!(pruned, ["spec.bogus", "spec.template.junk", "top"]);
    assert_eq!(obj["spec"]["extra"]["anything"]["goes"], true);
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    assert_eq!(obj["metadata"]["name"], "a");
    schema::default(&s, &mut obj);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert!(
        obj.get("status").is_none(),
        "a non-nullable null is dropped"
    );
    let mut nulls = json!({"spec": {"replicas": null, "when": null}});
    schema::default(&s, &mut nulls);
    assert_eq!(nulls["spec"], json!({"replicas": 1, "when": null}));
}

#[test]
fn json_paths_for_columns() {
    let o =
        json!({"metadata": {"labels": {"app.k8s.io/name": "x"}}, "spec": {"items": [{"n": 3}]}});
    assert_eq!(schema::json_path(&o, ".spec.items[0].n"), Some(&json!(3)));
    assert_eq!(
        schema::json_path(&o, "{.metadata.labels['app.k8s.io/name']}"),
        Some(&json!("x"))
    );
    assert_eq!(schema::json_path(&o, ".spec.missing"), None);
}

/// A CRD like upstream's CronTab example (in-process tests share the table of dynamic kinds,
/// so each test uses its own group and names).
fn crd(group: &str, schema: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("webtabs.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "webtabs", "kind": "WebTab", "shortNames": ["wt"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                ],
            }],
        },
    })
}

#[test]
fn crd_validation() {
    let validate = CUSTOMRESOURCEDEFINITIONS.strategy.validate;
    let defaults = CUSTOMRESOURCEDEFINITIONS.strategy.defaults;
    let mut good = crd("stable.example.com", crontab_schema());
    defaults(&mut good);
    assert_eq!(validate(&good), Vec::new());
    assert_eq!(good["spec"]["names"]["singular"], "webtab");
    assert_eq!(good["spec"]["names"]["listKind"], "WebTabList");
    assert_eq!(good["status"]["storedVersions"], json!(["v1"]));
    assert!(super::is_established(&good));
    let messages =
        |c: &Value| -> Vec<String> { validate(c).iter().map(ToString::to_string).collect() };
    let mut bad = good.clone();
    bad["metadata"]["name"] = json!("tabs.stable.example.com");
    bad["spec"]["versions"][0]["storage"] = json!(false);
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"] =
        json!({"maxLength": 3});
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["additionalProperties"] =
        json!({"type": "string"});
    let got = messages(&bad);
    for e in [
        "metadata.name: Invalid value: \"tabs.stable.example.com\": must be spec.names.plural+\".\"+spec.group",
        "spec.versions: Invalid value: \"0\": must have exactly one version marked as storage version",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type: Required value: must not be empty for specified object fields",
        "spec.versions[0].schema.openAPIV3Schema.properties[status].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
    ] {
        assert!(got.iter().any(|g| g == e), "missing {e:?} in {got:#?}");
    }
    let mut no_schema = good.clone();
    no_schema["spec"]["versions"][0]["schema"] = json!(null);
    no_schema["spec"]["group"] = json!("nodots");
    let got = messages(&no_schema);
    assert!(
        got.contains(&"spec.versions[0].schema.openAPIV3Schema: Required value".to_string()),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("spec.group: Invalid value: \"nodots\"")),
        "{got:#?}"
    );
}

const TOKEN: &str = "t0ken";

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    ct: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", ct)
        .header("accept", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const JSON: &str = "application/json";

#[tokio::test]
async fn custom_resources_over_http() {
    let registry = Registry::new(Arc::new(MemStore::new())).await.unwrap();
    let app = router(
        registry.clone(),
        Arc::new(NoNodeStreams),
        Auth::bearer_tokens(vec![TOKEN.into()]),
        33,
    );
    let group = "stable.http.example.com";
    let base = format!("/apis/{group}/v1/namespaces/default/webtabs");
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, body) = call(&app, "POST", crds, JSON, &crd(group, crontab_schema())).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert!(super::is_established(&body), "{body}");
    // Served right away, discovered, and published in OpenAPI.
    let (code, list) = call(&app, "GET", &base, JSON, &Value::Null).await;
    assert_eq!(
        (code, list["kind"].as_str()),
        (StatusCode::OK, Some("WebTabList"))
    );
    let (_, res) = call(
        &app,
        "GET",
        &format!("/apis/{group}/v1"),
        JSON,
        &Value::Null,
    )
    .await;
    let names: Vec<&str> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["webtabs", "webtabs/scale", "webtabs/status"]);
    assert_eq!(res["resources"][0]["shortNames"], json!(["wt"]));
    let (code, doc) = call(
        &app,
        "GET",
        &format!("/openapi/v3/apis/{group}/v1"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let schema = &doc["components"]["schemas"]["com.example.http.stable.v1.WebTab"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"], "WebTab",
        "{schema}"
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["cronSpec"]["type"],
        "string"
    );

    let ct = json!({"apiVersion": format!("{group}/v1"), "kind": "WebTab", "metadata": {"name": "a"},
        "spec": {"cronSpec": "* * * * */5", "image": "img"}, "status": {"replicas": 9}});
    let (code, created) = call(&app, "POST", &base, JSON, &ct).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["replicas"], 1, "defaulted");
    assert!(
        created.get("status").is_none(),
        "status is a subresource: {created}"
    );
    assert_eq!(created["metadata"]["generation"], 1);

    let mut bad = ct.clone();
    bad["metadata"]["name"] = json!("b");
    bad["spec"]["replicas"] = json!("three");
    let (code, st) = call(&app, "POST", &base, JSON, &bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert_eq!(st["details"]["causes"][0]["field"], "spec.replicas");
    bad["spec"]["replicas"] = json!(2);
    bad["spec"]["unknown"] = json!(1);
    let (code, st) = call(
        &app,
        "POST",
        &format!("{base}?fieldValidation=Strict"),
        JSON,
        &bad,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: unknown field \"spec.unknown\""),
        "{st}"
    );
    let (code, pruned) = call(
        &app,
        "POST",
        &format!("{base}?fieldValidation=Ignore"),
        JSON,
        &bad,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert!(pruned["spec"].get("unknown").is_none());

    // Status and main resource ignore each other's part; generation follows spec only.
    let status = json!({"status": {"replicas": 4}, "spec": {"cronSpec": "1 1 1 1 1"}});
    let (code, after) = call(
        &app,
        "PATCH",
        &format!("{base}/a/status"),
        "application/merge-patch+json",
        &status,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(
        (
            after["status"]["replicas"].as_i64(),
            after["spec"]["cronSpec"].as_str()
        ),
        (Some(4), Some("* * * * */5"))
    );
    assert_eq!(after["metadata"]["generation"], 1);
    let spec = json!({"spec": {"image": "img2"}, "status": {"replicas": 0}});
    let (_, after) = call(
        &app,
        "PATCH",
        &format!("{base}/a"),
        "application/merge-patch+json",
        &spec,
    )
    .await;
    assert_eq!(
        (
            after["status"]["replicas"].as_i64(),
            after["metadata"]["generation"].as_i64()
        ),
        (Some(4), Some(2))
    );
    let (code, _) = call(
        &app,
        "PATCH",
        &format!("{base}/a"),
        "application/strategic-merge-patch+json",
        &spec,
    )
    .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let jp = json!([{"op": "replace", "path": "/spec/image", "value": "img3"}]);
    let (code, after) = call(
        &app,
        "PATCH",
        &format!("{base}/a"),
        "application/json-patch+json",
        &jp,
    )
    .await;
    assert_eq!(
        (code, after["spec"]["image"].as_str()),
        (StatusCode::OK, Some("img3"))
    );

    // Scale.
    let (code, scale) = call(
        &app,
        "PATCH",
        &format!("{base}/a/scale"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(
        (
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["replicas"].as_i64()
        ),
        (Some(3), Some(4))
    );
    let (_, obj) = call(&app, "GET", &format!("{base}/a"), JSON, &Value::Null).await;
    assert_eq!(obj["spec"]["replicas"], 3);

    // Field selectors and Table columns.
    let (_, list) = call(
        &app,
        "GET",
        &format!("/apis/{group}/v1/webtabs?fieldSelector=metadata.name%3Da"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let req = Request::builder()
        .uri(&base)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let table: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Spec", "Replicas"]);
    assert_eq!(table["rows"][0]["cells"], json!(["a", "* * * * */5", 3]));

    // A second CRD claiming a name already in use in the group is stored but not established.
    let mut other = crd(group, crontab_schema());
    other["metadata"]["name"] = json!(format!("othertabs.{group}"));
    other["spec"]["names"] =
        json!({"plural": "othertabs", "kind": "OtherTab", "shortNames": ["wt"]});
    let (code, body) = call(&app, "POST", crds, JSON, &other).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"]["conditions"][0]["status"], "False", "{body}");
    assert!(!super::is_established(&body));
    let (code, _) = call(
        &app,
        "GET",
        &format!("/apis/{group}/v1/othertabs"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Deleting the CRD deletes its objects and stops serving them.
    let (code, _) = call(
        &app,
        "DELETE",
        &format!("{crds}/webtabs.{group}"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = call(
        &app,
        "GET",
        &format!("{crds}/webtabs.{group}"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = call(&app, "GET", &base, JSON, &Value::Null).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let left = registry
        .store()
        .list(
            &format!("/registry/{group}/"),
            crate::store::ListOptions::default(),
        )
        .await
        .unwrap();
    assert!(left.items.is_empty(), "custom objects left behind");
    let (code, _) = call(
        &app,
        "GET",
        &format!("/openapi/v3/apis/{group}/v1"),
        JSON,
        &Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

//! Unit tests of the generated documents (kinds, GVKs, refs, index, v2 protobuf), the HTTP
//! caching rules, and field validation.

use http::{HeaderMap, Method, StatusCode, Uri, header};
use prost::Message;
use serde_json::{Value, json};

use super::documents::{Documents, gv_key};
use super::gnostic;
use super::*;
use crate::apiserver::resources::{self, RESOURCES, find};

fn v3(key: &str) -> Value {
    serde_json::from_slice(&Documents::get().v3[key].bytes).unwrap()
}

fn v2() -> Value {
    serde_json::from_slice(&Documents::get().v2_json.bytes).unwrap()
}

/// Every `$ref` in `v`.
fn all_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                out.push(r.to_string());
            }
            o.values().for_each(|x| all_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| all_refs(x, out)),
        _ => {}
    }
}

fn with_gvk<'a>(schemas: &'a Value, group: &str, version: &str, kind: &str) -> Vec<&'a str> {
    let want = json!({"group": group, "version": version, "kind": kind});
    schemas
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|l| l.contains(&want))
        })
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn every_served_kind_has_an_upstream_schema_with_its_gvk() {
    for r in RESOURCES {
        let doc = v3(&gv_key(r.group, r.version));
        let schemas = &doc["components"]["schemas"];
        let names = with_gvk(schemas, r.group, r.version, r.kind);
        assert_eq!(names.len(), 1, "{r:?}: {names:?}");
        let schema = &schemas[names[0]];
        assert!(
            names[0].starts_with("io.k8s."),
            "{r:?} has k8s-openapi's schema: {}",
            names[0]
        );
        assert!(
            !names[0].starts_with("io.k8s.skiff."),
            "{r:?} is missing from the catalog"
        );
        for field in ["apiVersion", "kind", "metadata"] {
            assert!(schema["properties"][field].is_object(), "{r:?} {field}");
        }
        let lists = with_gvk(schemas, r.group, r.version, &r.list_kind());
        assert_eq!(lists.len(), 1, "{r:?} list");
        assert_eq!(
            schemas[lists[0]]["properties"]["items"]["items"]["$ref"],
            format!("#/components/schemas/{}", names[0])
        );
        // The same kinds in the v2 document.
        let v2 = v2();
        assert_eq!(
            with_gvk(&v2["definitions"], r.group, r.version, r.kind),
            names
        );
    }
}

#[test]
fn index_lists_exactly_the_served_group_versions() {
    let docs = Documents::get();
    let index: Value = serde_json::from_slice(&docs.v3_index.bytes).unwrap();
    let mut keys: Vec<String> = index["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut want: Vec<String> = resources::group_versions()
        .into_iter()
        .map(|(g, v)| gv_key(g, v))
        .collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want);
    assert!(keys.contains(&"api/v1".to_string()));
    assert!(keys.contains(&"apis/coordination.k8s.io/v1".to_string()));
    for k in keys {
        let url = index["paths"][&k]["serverRelativeURL"].as_str().unwrap();
        assert_eq!(url, format!("/openapi/v3/{k}?hash={}", docs.v3[&k].hash));
        assert_eq!(docs.v3[&k].hash.len(), 128);
    }
}

#[test]
fn every_reference_resolves() {
    for key in Documents::get().v3.keys() {
        let doc = v3(key);
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{key}: {r}");
        }
    }
    let doc = v2();
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(doc["definitions"][name].is_object(), "{r}");
    }
    // Only the kinds of a group-version go into its document.
    assert!(v3("api/v1")["components"]["schemas"]["io.k8s.api.coordination.v1.Lease"].is_null());
}

#[test]
fn paths_come_from_the_resource_table() {
    let doc = v3("api/v1");
    let pod = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
    assert_eq!(pod["patch"]["operationId"], "patchCoreV1NamespacedPod");
    assert_eq!(
        pod["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    let params: Vec<&str> = pod["patch"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]["put"].is_object());
    assert!(doc["paths"]["/api/v1/pods"]["get"].is_object());
    assert_eq!(
        doc["paths"]["/api/v1/nodes/{name}"]["get"]["operationId"],
        "readCoreV1Node"
    );
    assert!(doc["paths"]["/api/v1/events/{name}"].is_null());
    let lease = v3("apis/coordination.k8s.io/v1");
    assert_eq!(
        lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["post"]["operationId"],
        "createCoordinationV1NamespacedLease"
    );
    // Every resource has a PATCH operation carrying its GVK (kubectl's field-validation probe).
    for r in RESOURCES {
        let doc = v3(&gv_key(r.group, r.version));
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        assert!(
            doc["paths"]
                .as_object()
                .unwrap()
                .values()
                .any(|p| p["patch"]["x-kubernetes-group-version-kind"] == gvk),
            "{r:?}"
        );
    }
}

#[test]
fn v2_protobuf_round_trips() {
    let docs = Documents::get();
    let decoded = gnostic::Document::decode(docs.v2_proto.bytes.as_slice()).unwrap();
    assert_eq!(decoded, gnostic::Document::from_json(&v2()));
    assert_eq!(decoded.swagger, "2.0");
    let defs = &decoded.definitions.as_ref().unwrap().additional_properties;
    let pod = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Pod")
        .and_then(|d| d.value.as_ref())
        .unwrap();
    let gvk = pod
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .unwrap();
    let parsed: Value = serde_yaml::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(
        parsed,
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    let spec = pod
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "spec")
        .unwrap();
    assert_eq!(
        spec.value.as_ref().unwrap().r#ref,
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    // A PATCH operation with fieldValidation, as kubectl 1.27's verifier looks for it.
    let paths = &decoded.paths.as_ref().unwrap().path;
    let item = paths
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/pods/{name}")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let patch = item.patch.as_ref().unwrap();
    assert!(patch.parameters.iter().any(|p| matches!(
        p.parameter.as_ref().and_then(|p| p.oneof.as_ref()),
        Some(gnostic::ParameterKind::NonBody(gnostic::NonBodyParameter {
            oneof: Some(gnostic::NonBodyKind::Query(q))
        })) if q.name == "fieldValidation"
    )));
    // int-or-string gets upstream's v2 spelling.
    let ios = &v2()["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(
        (&ios["type"], &ios["format"]),
        (&json!("string"), &json!("int-or-string"))
    );
}

fn get(uri: &str, headers: &[(header::HeaderName, &str)]) -> axum::response::Response {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(k.clone(), v.parse().unwrap());
    }
    serve(&Method::GET, &uri.parse::<Uri>().unwrap(), &h).unwrap()
}

#[test]
fn hashes_make_documents_immutable() {
    let docs = Documents::get();
    let hash = &docs.v3["api/v1"].hash;
    let r = get(&format!("/openapi/v3/api/v1?hash={hash}"), &[]);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "public, immutable");
    assert!(r.headers().contains_key(header::EXPIRES));
    let r = get("/openapi/v3/api/v1?hash=OLD", &[]);
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.headers()[header::LOCATION],
        format!("/openapi/v3/api/v1?hash={hash}").as_str()
    );
    let r = get("/openapi/v3/api/v1", &[]);
    assert_eq!(r.headers()[header::ETAG], format!("\"{hash}\"").as_str());
    let etag = format!("\"{hash}\"");
    let r = get("/openapi/v3/api/v1", &[(header::IF_NONE_MATCH, &etag)]);
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = get("/openapi/v2", &[(header::ACCEPT, V2_PROTOBUF)]);
    assert_eq!(r.headers()[header::CONTENT_TYPE], V2_PROTOBUF);
    let r = get("/openapi/v2", &[(header::ACCEPT, "application/json")]);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let err = serve(
        &Method::GET,
        &"/openapi/v3/apis/networking.k8s.io/v1".parse().unwrap(),
        &HeaderMap::new(),
    )
    .unwrap_err();
    assert_eq!(err.code(), 404);
    let err = serve(
        &Method::POST,
        &"/openapi/v2".parse().unwrap(),
        &HeaderMap::new(),
    )
    .unwrap_err();
    assert_eq!(err.code(), 405);
}

#[test]
fn unknown_fields_by_directive() {
    let pods = find("", "v1", "pods").unwrap();
    let obj = json!({
        "apiVersion": "v1", "kind": "Pod", "bogus": 1,
        "metadata": {"name": "x", "labels": {"a": "b"}, "annotations": {"k": "v"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "imagee": "typo", "resources": {"limits": {"cpu": "1"}}},
            ],
            "nodeSelector": {"any": "thing"},
        },
    });
    let mut o = obj.clone();
    let err = check_unknown_fields(pods, Some("Strict"), &mut o).unwrap_err();
    assert_eq!(err.code(), 400);
    assert_eq!(
        err.to_string(),
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"bogus\", unknown field \"spec.containers[0].imagee\""
    );
    let mut o = obj.clone();
    let w = check_unknown_fields(pods, None, &mut o).unwrap();
    assert_eq!(
        w.0,
        [
            "unknown field \"bogus\"",
            "unknown field \"spec.containers[0].imagee\""
        ]
    );
    assert!(
        o["spec"]["containers"][0].get("imagee").is_none(),
        "dropped"
    );
    assert_eq!(o["spec"]["nodeSelector"]["any"], "thing");
    assert_eq!(
        o["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "1"
    );
    let mut o = obj.clone();
    assert_eq!(
        check_unknown_fields(pods, Some("Ignore"), &mut o).unwrap(),
        Warnings::default()
    );
    assert!(o.get("bogus").is_none(), "Ignore drops too");
    let mut ok =
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    assert_eq!(
        check_unknown_fields(pods, Some("Strict"), &mut ok).unwrap(),
        Warnings::default()
    );
    // Patch directives pass.
    let mut patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "$patch": "delete"}]}});
    assert!(check_unknown_fields(pods, Some("Strict"), &mut patch).is_ok());
    assert_eq!(
        check_unknown_fields(pods, Some("Nope"), &mut json!({}))
            .unwrap_err()
            .code(),
        400
    );
    // The Warning header kubectl prints.
    let r = Warnings(vec!["unknown field \"a\"".into()])
        .attach(axum::response::Response::new(axum::body::Body::empty()));
    assert_eq!(
        r.headers()[header::WARNING],
        "299 - \"unknown field \\\"a\\\"\""
    );
}

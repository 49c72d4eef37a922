//! Discovery documents: legacy (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`)
//! and aggregated (`APIGroupDiscoveryList`, apidiscovery.k8s.io v2 and v2beta1), all generated
//! from the resource table and the custom resources of established CRDs.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::request::Target;
use super::{json_response, json_response_typed};
use crate::apiserver::resources::{self, ResourceDef, STANDARD_VERBS};

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The aggregated discovery version the client accepts first, if any.
fn aggregated(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        let params: Vec<(&str, &str)> = range
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let has = |k: &str, v: &str| params.iter().any(|(pk, pv)| *pk == k && *pv == v);
        if has("as", "APIGroupDiscoveryList") && has("g", "apidiscovery.k8s.io") {
            if has("v", "v2") {
                return Some("v2");
            }
            if has("v", "v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

fn scope(def: &ResourceDef) -> &'static str {
    if def.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn discovery_resource(def: &ResourceDef) -> Value {
    let subresources: Vec<Value> = def
        .subresources
        .iter()
        .map(|s| {
            let (group, version, kind) = s.response_kind(def);
            json!({
                "subresource": s.name,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut r = json!({
        "resource": def.plural,
        "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
        "scope": scope(def),
        "singularResource": def.singular,
        "verbs": STANDARD_VERBS,
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

fn aggregated_list(core: bool, version: &str) -> Value {
    let items: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, v)| {
            let res: Vec<Value> = resources::all()
                .into_iter()
                .filter(|r| r.group == g && r.version == v)
                .map(discovery_resource)
                .collect();
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": v, "resources": res, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": group_version(g, v), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for def in resources::all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut r = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": STANDARD_VERBS,
        });
        if !def.short_names.is_empty() {
            r["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            r["categories"] = json!(def.categories);
        }
        list.push(r);
        for s in def.subresources {
            let mut sr = json!({
                "name": format!("{}/{}", def.plural, s.name),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": s.response_kind(def).2,
                "verbs": s.verbs,
            });
            if let Some((group, version)) = s.api {
                sr["group"] = json!(group);
                sr["version"] = json!(version);
            }
            list.push(sr);
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": list})
}

/// Answers a discovery GET.
pub fn serve(target: Target, headers: &HeaderMap) -> Response {
    match target {
        Target::CoreVersions | Target::Groups => {
            let core = matches!(target, Target::CoreVersions);
            if let Some(v) = aggregated(headers) {
                let ct = if v == "v2" {
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
                } else {
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
                };
                let mut r = json_response_typed(StatusCode::OK, &aggregated_list(core, v), ct);
                r.headers_mut()
                    .insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
                return r;
            }
            if core {
                json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
                    }),
                )
            } else {
                let groups: Vec<Value> = resources::group_versions()
                    .into_iter()
                    .filter(|(g, _)| !g.is_empty())
                    .map(|(g, _)| g)
                    .fold(Vec::new(), |mut acc: Vec<&str>, g| {
                        if !acc.contains(&g) {
                            acc.push(g);
                        }
                        acc
                    })
                    .into_iter()
                    .map(|g| {
                        let mut v = api_group(g);
                        if let Some(m) = v.as_object_mut() {
                            m.remove("kind");
                            m.remove("apiVersion");
                        }
                        v
                    })
                    .collect();
                json_response(
                    StatusCode::OK,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                )
            }
        }
        Target::Group(g) => json_response(StatusCode::OK, &api_group(&g)),
        Target::Resources(g, v) => json_response(StatusCode::OK, &resource_list(&g, &v)),
        Target::Resource(_) => json_response(StatusCode::NOT_FOUND, &Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_core_lists_pods_with_subresources() {
        let list = aggregated_list(true, "v2");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let res = &list["items"][0]["versions"][0]["resources"];
        let pods = res
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["scope"], "Namespaced");
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(
            subs,
            ["attach", "binding", "exec", "log", "portforward", "status"]
        );
        let groups = aggregated_list(false, "v2beta1");
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert_eq!(
            groups["items"][0]["metadata"]["name"],
            "coordination.k8s.io"
        );
    }

    #[test]
    fn legacy_resource_list() {
        let l = resource_list("", "v1");
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "namespaces",
            "namespaces/status",
            "nodes",
            "pods",
            "pods/binding",
            "pods/log",
            "pods/status",
            "events",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let g = api_group("coordination.k8s.io");
        assert_eq!(
            g["preferredVersion"]["groupVersion"],
            "coordination.k8s.io/v1"
        );
    }

    #[test]
    fn accept_picks_aggregated_version() {
        let mut h = HeaderMap::new();
        assert_eq!(aggregated(&h), None);
        h.insert(http::header::ACCEPT, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json".parse().unwrap());
        assert_eq!(aggregated(&h), Some("v2"));
        h.insert(http::header::ACCEPT, "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json".parse().unwrap());
        assert_eq!(aggregated(&h), Some("v2beta1"));
    }
}

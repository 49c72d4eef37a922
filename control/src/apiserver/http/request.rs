//! Request parsing: the resource path (`/api/v1/namespaces/ns/pods/x/status`), query
//! parameters, content negotiation (JSON or Table) and body decoding (JSON, YAML, none).

use std::collections::HashMap;

use http::HeaderMap;
use serde_json::Value;

use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{DeleteParams, ListParams, Preconditions};
use crate::apiserver::resources::{self, ResourceDef};
use crate::apiserver::table::IncludeObject;

/// A request for a resource.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a path names.
#[derive(Debug, Clone)]
pub enum Target {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    Resources(String, String),
    Resource(ResourcePath),
}

/// Parses a path under `/api` or `/apis` (Kubernetes' RequestInfo rules).
pub fn parse_path(path: &str) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["apis", g] => {
            return if resources::group_versions().iter().any(|(gg, _)| gg == g) {
                Ok(Target::Group(g.to_string()))
            } else {
                Err(ApiError::no_route())
            };
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if !resources::group_versions().contains(&(group, version)) {
        return Err(ApiError::no_route());
    }
    if rest.is_empty() {
        return Ok(Target::Resources(group.to_string(), version.to_string()));
    }
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, r, ..] if !matches!(*r, "status" | "finalize") => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(*n), None),
        [r, n, s] => (*r, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route()),
    };
    let def = resources::find(group, version, resource).ok_or_else(ApiError::no_route)?;
    if def.namespaced != namespace.is_some() && name.is_some() {
        return Err(ApiError::no_route());
    }
    if let Some(s) = sub
        && !def.has_subresource(s)
    {
        return Err(ApiError::no_route());
    }
    Ok(Target::Resource(ResourcePath {
        def,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    }))
}

/// Query parameters (the last occurrence of a key wins).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {s:?}"))),
        }
    }

    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}: only All is supported"
            ))),
        }
    }

    pub fn list_params(&self) -> Result<ListParams, ApiError> {
        let limit = self.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        Ok(ListParams {
            label_selector: self.get("labelSelector").map(str::to_string),
            field_selector: self.get("fieldSelector").map(str::to_string),
            limit,
            continue_token: self.get("continue").map(str::to_string),
            allow_watch_bookmarks: self.flag("allowWatchBookmarks"),
        })
    }

    /// Delete options from the query, overlaid by a `DeleteOptions` body if one was sent.
    pub fn delete_params(&self, body: Option<&Value>) -> Result<DeleteParams, ApiError> {
        let mut p = DeleteParams {
            grace_period_seconds: self.int("gracePeriodSeconds")?,
            propagation_policy: self.get("propagationPolicy").map(str::to_string),
            dry_run: self.dry_run()?,
            preconditions: Preconditions::default(),
        };
        if let Some(b) = body.filter(|b| b.is_object()) {
            if let Some(g) = b["gracePeriodSeconds"].as_i64() {
                p.grace_period_seconds = Some(g);
            }
            if let Some(pp) = b["propagationPolicy"].as_str() {
                p.propagation_policy = Some(pp.to_string());
            }
            if b["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All"))
            {
                p.dry_run = true;
            }
            p.preconditions.uid = b["preconditions"]["uid"].as_str().map(str::to_string);
            p.preconditions.resource_version = b["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
        }
        Ok(p)
    }
}

/// The representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Json,
    /// A `meta.k8s.io` Table of this version (`v1` or `v1beta1`).
    Table(&'static str, IncludeObject),
}

/// Picks the first acceptable media range of `Accept` (JSON when nothing better matches).
pub fn negotiate(headers: &HeaderMap, query: &Query) -> Representation {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let params: HashMap<&str, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        match (media, params.get("as").copied()) {
            ("application/json", Some("Table")) if params.get("g") == Some(&"meta.k8s.io") => {
                let v = match params.get("v").copied() {
                    Some("v1beta1") => "v1beta1",
                    _ => "v1",
                };
                return Representation::Table(v, IncludeObject::parse(query.get("includeObject")));
            }
            ("application/json" | "*/*" | "application/*" | "application/yaml", None) => {
                return Representation::Json;
            }
            _ => {}
        }
    }
    Representation::Json
}

/// The request body as JSON (JSON or YAML; no Content-Type means JSON, as the Python client
/// sends). Malformed bodies are 400 BadRequest, unknown media types 415.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match ct.as_str() {
        "" | "application/json" | "*/*" | "text/plain" | "application/x-www-form-urlencoded" => {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        crate::apiserver::protobuf::MEDIA_TYPE => Ok(crate::apiserver::protobuf::decode(body)?),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse_path(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = resource("/api/v1/namespaces/ns/pods/x/status");
        assert_eq!(
            (
                r.def.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("ns"), Some("x"), Some("status"))
        );
        let r = resource("/api/v1/pods");
        assert_eq!((r.def.plural, r.namespace, r.name), ("pods", None, None));
        let r = resource("/api/v1/namespaces/ns");
        assert_eq!(
            (r.def.plural, r.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let r = resource("/api/v1/namespaces/ns/status");
        assert_eq!(
            (r.def.plural, r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("ns"), Some("status"))
        );
        let r = resource("/api/v1/namespaces");
        assert_eq!((r.def.plural, r.name), ("namespaces", None));
        let r = resource("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
        assert_eq!(
            (r.def.plural, r.namespace.as_deref()),
            ("leases", Some("kube-node-lease"))
        );
        assert!(matches!(parse_path("/api").unwrap(), Target::CoreVersions));
        assert!(matches!(
            parse_path("/apis/coordination.k8s.io").unwrap(),
            Target::Group(_)
        ));
        assert!(matches!(
            parse_path("/apis/coordination.k8s.io/v1").unwrap(),
            Target::Resources(..)
        ));
        for bad in [
            "/api/v2/pods",
            "/api/v1/widgets",
            "/api/v1/pods/x",
            "/api/v1/namespaces/ns/pods/x/exec2",
            "/apis/apps.example.com",
            "/nope",
        ] {
            assert_eq!(parse_path(bad).unwrap_err().code(), 404, "{bad}");
        }
    }

    #[test]
    fn accept_headers() {
        let q = Query::default();
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(&h, &q), Representation::Json);
        h.insert(http::header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json".parse().unwrap());
        assert_eq!(
            negotiate(&h, &q),
            Representation::Table("v1", IncludeObject::Metadata)
        );
        let q = Query::parse(Some("includeObject=Object"));
        assert_eq!(
            negotiate(&h, &q),
            Representation::Table("v1", IncludeObject::Object)
        );
        h.insert(
            http::header::ACCEPT,
            "application/json, */*".parse().unwrap(),
        );
        assert_eq!(negotiate(&h, &q), Representation::Json);
    }

    #[test]
    fn bodies() {
        let mut h = HeaderMap::new();
        assert_eq!(decode_body(&h, br#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(decode_body(&h, b"{bad").unwrap_err().code(), 400);
        h.insert(
            http::header::CONTENT_TYPE,
            "application/yaml".parse().unwrap(),
        );
        assert_eq!(decode_body(&h, b"a: 1\nb: [x]\n").unwrap()["b"][0], "x");
        h.insert(
            http::header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf".parse().unwrap(),
        );
        assert_eq!(decode_body(&h, b"k8s\0").unwrap_err().code(), 400);
    }

    #[test]
    fn query_params() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=5&gracePeriodSeconds=0&dryRun=All&watch=1",
        ));
        let l = q.list_params().unwrap();
        assert_eq!(l.label_selector.as_deref(), Some("app=web"));
        assert_eq!(l.limit, Some(5));
        assert!(q.flag("watch"));
        let body = serde_json::json!({"kind": "DeleteOptions", "gracePeriodSeconds": 7, "preconditions": {"uid": "u"}});
        let d = q.delete_params(Some(&body)).unwrap();
        assert_eq!(d.grace_period_seconds, Some(7));
        assert!(d.dry_run);
        assert_eq!(d.preconditions.uid.as_deref(), Some("u"));
        assert_eq!(
            Query::parse(Some("limit=x"))
                .list_params()
                .unwrap_err()
                .code(),
            400
        );
    }
}

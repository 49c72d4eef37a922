//! The create-only API objects of authentication and authorization, answered without being
//! stored: `serviceaccounts/token` (TokenRequest), `selfsubjectreviews` (`kubectl auth
//! whoami`), `selfsubjectaccessreviews` (`kubectl auth can-i`) and `selfsubjectrulesreviews`
//! (`kubectl auth can-i --list`).

use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use super::tokens::{API_AUDIENCE, Claims, KubernetesClaim, Ref};
use super::{Attributes, Authorizer};
use crate::apiserver::auth::{Auth, MASTERS, UserInfo};
use crate::apiserver::error::{ApiError, FieldError};
use crate::apiserver::http::json_response;
use crate::apiserver::http::request::decode_body;
use crate::apiserver::registry::Registry;

/// Default and minimum TokenRequest lifetimes (upstream's).
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 48 * 3600;

/// Which object a path names.
enum Endpoint {
    Token { namespace: String, name: String },
    SelfSubjectReview(String),
    AccessReview,
    RulesReview,
}

fn endpoint(path: &str) -> Option<Endpoint> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] => Some(Endpoint::Token {
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
        [
            "apis",
            "authentication.k8s.io",
            v @ ("v1" | "v1beta1" | "v1alpha1"),
            "selfsubjectreviews",
        ] => Some(Endpoint::SelfSubjectReview(v.to_string())),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => Some(Endpoint::AccessReview),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ] => Some(Endpoint::RulesReview),
        _ => None,
    }
}

/// Serves `path` when it is one of these objects (`None`: not ours). The request was already
/// authorized (`create` on the resource). Creates and updates of RBAC objects are checked
/// for privilege escalation here too (the body is needed), answering only a refusal.
pub async fn serve(
    auth: &Auth,
    registry: &Registry,
    user: Option<&UserInfo>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Result<Response, ApiError>> {
    let Some(ep) = endpoint(path) else {
        let user = user?;
        if !matches!(*method, Method::POST | Method::PUT)
            || !path.contains("/rbac.authorization.k8s.io/")
        {
            return None;
        }
        // An undecodable body is the normal path's error to report.
        let obj = decode_body(headers, body).ok()?;
        return super::escalation::check(auth.authorizer(), user, method, path, &obj)
            .await
            .err()
            .map(Err);
    };
    if *method != Method::POST {
        return Some(Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )));
    }
    let Some(user) = user else {
        return Some(Err(ApiError::unauthorized()));
    };
    let result = async {
        let req = decode_body(headers, body)?;
        let resp = match ep {
            Endpoint::Token { namespace, name } => {
                token_request(auth, registry, &namespace, &name, req).await?
            }
            Endpoint::SelfSubjectReview(v) => json!({
                "apiVersion": format!("authentication.k8s.io/{v}"),
                "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": user.to_json()},
            }),
            Endpoint::AccessReview => access_review(auth.authorizer(), user, req).await,
            Endpoint::RulesReview => rules_review(auth.authorizer(), user, req).await,
        };
        Ok(json_response(StatusCode::CREATED, &resp))
    }
    .await;
    Some(result)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

async fn token_request(
    auth: &Auth,
    registry: &Registry,
    ns: &str,
    name: &str,
    mut req: Value,
) -> Result<Value, ApiError> {
    let issuer = auth
        .token_issuer()
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts/token", name))?;
    let sa = registry.get::<ServiceAccount>(Some(ns), name).await?;
    let spec = req["spec"].clone();
    let seconds = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    let invalid =
        |f: FieldError| ApiError::invalid("authentication.k8s.io", "TokenRequest", name, vec![f]);
    if seconds < MIN_EXPIRATION {
        return Err(invalid(FieldError::invalid_raw(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 10 minutes",
        )));
    }
    let seconds = seconds.min(MAX_EXPIRATION);
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_string());
    }
    let mut claim = KubernetesClaim {
        namespace: ns.to_string(),
        serviceaccount: Ref {
            name: name.to_string(),
            uid: sa.metadata.uid.clone().unwrap_or_default(),
        },
        ..Default::default()
    };
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let (kind, bname) = (str_of(bound, "kind"), str_of(bound, "name"));
        let uid = match kind {
            "Pod" => registry.get::<Pod>(Some(ns), bname).await?.metadata.uid,
            "Secret" => registry.get::<Secret>(Some(ns), bname).await?.metadata.uid,
            other => {
                return Err(invalid(FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    other,
                    &["Pod", "Secret"],
                )));
            }
        }
        .unwrap_or_default();
        let want_uid = str_of(bound, "uid");
        if !want_uid.is_empty() && want_uid != uid {
            return Err(ApiError::conflict_with(
                "",
                "serviceaccounts",
                name,
                "the bound object's uid does not match",
            ));
        }
        let r = Some(Ref {
            name: bname.to_string(),
            uid: uid.clone(),
        });
        if kind == "Pod" {
            claim.pod = r;
        } else {
            claim.secret = r;
        }
        req["spec"]["boundObjectRef"]["uid"] = json!(uid);
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims::new(claim, audiences.clone(), now, seconds);
    let token = issuer
        .mint(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.to_string())
        .unwrap_or_default();
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    req["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(seconds);
    req["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(req)
}

async fn access_review(authorizer: &Authorizer, user: &UserInfo, mut req: Value) -> Value {
    let spec = &req["spec"];
    let attrs = if spec["resourceAttributes"].is_object() {
        let r = &spec["resourceAttributes"];
        let (resource, sub) = (str_of(r, "resource"), str_of(r, "subresource"));
        Attributes {
            verb: str_of(r, "verb").to_string(),
            resource_request: true,
            path: String::new(),
            api_group: str_of(r, "group").to_string(),
            api_version: str_of(r, "version").to_string(),
            namespace: str_of(r, "namespace").to_string(),
            resource: resource.to_string(),
            subresource: sub.to_string(),
            name: str_of(r, "name").to_string(),
        }
    } else {
        let n = &spec["nonResourceAttributes"];
        Attributes {
            verb: str_of(n, "verb").to_string(),
            path: str_of(n, "path").to_string(),
            ..Default::default()
        }
    };
    let allowed = authorizer.allowed(user, &attrs).await;
    req["apiVersion"] = json!("authorization.k8s.io/v1");
    req["kind"] = json!("SelfSubjectAccessReview");
    req["metadata"] = json!({"creationTimestamp": null});
    req["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by RBAC"})
    } else {
        json!({"allowed": false})
    };
    req
}

fn rule_json(r: &PolicyRule) -> (bool, Value) {
    let v = serde_json::to_value(r).unwrap_or_default();
    let urls = r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty());
    if urls {
        (
            false,
            json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}),
        )
    } else {
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            o.remove("nonResourceURLs");
        }
        (true, v)
    }
}

async fn rules_review(authorizer: &Authorizer, user: &UserInfo, mut req: Value) -> Value {
    let ns = str_of(&req["spec"], "namespace").to_string();
    let (mut resource_rules, mut url_rules) = (Vec::new(), Vec::new());
    match authorizer {
        Authorizer::Rbac(cache) => {
            cache.wait_ready().await;
            cache.visit_rules(user, &ns, |r| {
                match rule_json(r) {
                    (true, v) => resource_rules.push(v),
                    (false, v) => url_rules.push(v),
                }
                false
            });
        }
        Authorizer::AllowAll => {}
    }
    if resource_rules.is_empty()
        && (user.in_group(MASTERS) || matches!(authorizer, Authorizer::AllowAll))
    {
        resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        url_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    req["apiVersion"] = json!("authorization.k8s.io/v1");
    req["kind"] = json!("SelfSubjectRulesReview");
    req["metadata"] = json!({"creationTimestamp": null});
    req["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": url_rules,
        "incomplete": false,
    });
    req
}

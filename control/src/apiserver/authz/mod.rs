//! Authorization: request attributes (Kubernetes' RequestInfo, derived from the path alone),
//! the authorizer (RBAC over a watched cache; `system:masters` always allowed), the 403 Status
//! upstream sends, and the authentication-related API objects (ServiceAccount tokens, access
//! and self-subject reviews, impersonation).

use std::time::Duration;

use http::Method;

use super::auth::{MASTERS, UserInfo};
use super::error::{ApiError, Subject};
use super::registry::Registry;

pub mod api;
pub mod bootstrap;
pub mod escalation;
pub mod impersonate;
pub mod rbac;
pub mod tokens;

#[cfg(test)]
mod tests;

/// What a request asks to do (Kubernetes' `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// False for non-resource paths (`/apis`, `/openapi/v3`, `/version`).
    pub resource_request: bool,
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// Subresources of a namespace (not resources of their own under it).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of an HTTP request, by upstream's RequestInfo rules.
pub fn request_attributes(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let method_verb = method.as_str().to_ascii_lowercase();
    let non_resource = || Attributes {
        verb: method_verb.clone(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", rest @ ..] => ("", rest),
        ["apis", g, rest @ ..] if rest.len() >= 2 => (*g, rest),
        _ => return non_resource(),
    };
    let [version, rest @ ..] = rest else {
        return non_resource();
    };
    if rest.is_empty() || rest[0].is_empty() {
        return non_resource();
    }
    let mut a = Attributes {
        resource_request: true,
        path: path.to_string(),
        api_group: group.to_string(),
        api_version: version.to_string(),
        ..Default::default()
    };
    let mut rest: &[&str] = rest;
    let mut verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    if rest[0] == "watch" {
        verb = "watch";
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    a.resource = rest.first().unwrap_or(&"").to_string();
    a.name = rest.get(1).unwrap_or(&"").to_string();
    a.subresource = rest.get(2).unwrap_or(&"").to_string();
    let watch = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "watch" && matches!(&*v, "true" | "1" | "True"));
    if verb == "get" && watch {
        verb = "watch";
    }
    if a.name.is_empty() && verb == "get" {
        verb = "list";
    }
    if a.name.is_empty() && verb == "delete" {
        verb = "deletecollection";
    }
    // Streaming subresources upgrade a GET; they need `create` like their POST form
    // (upstream's AuthorizePodWebsocketUpgradeCreatePermission).
    if verb == "get"
        && a.api_group.is_empty()
        && a.resource == "pods"
        && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward")
    {
        verb = "create";
    }
    a.verb = verb.to_string();
    a
}

/// Who decides.
#[derive(Clone)]
pub enum Authorizer {
    /// Everything authenticated is allowed (tests of other layers).
    AllowAll,
    Rbac(rbac::RbacCache),
}

/// How long a request waits for the RBAC cache's first list at start-up.
const CACHE_WAIT: Duration = Duration::from_secs(10);

impl Authorizer {
    /// RBAC over a cache fed by watching the four RBAC kinds.
    pub fn rbac(registry: Registry) -> Self {
        Authorizer::Rbac(rbac::RbacCache::watch(registry))
    }

    /// Whether `user` may do `a`.
    pub async fn allowed(&self, user: &UserInfo, a: &Attributes) -> bool {
        if user.in_group(MASTERS) {
            return true;
        }
        match self {
            Authorizer::AllowAll => true,
            Authorizer::Rbac(cache) => {
                let _ = tokio::time::timeout(CACHE_WAIT, cache.wait_ready()).await;
                cache.allows(user, a)
            }
        }
    }

    /// `Ok` when allowed, else upstream's 403 Forbidden Status.
    pub async fn authorize(&self, user: &UserInfo, a: &Attributes) -> Result<(), ApiError> {
        if self.allowed(user, a).await {
            Ok(())
        } else {
            Err(forbidden(user, a))
        }
    }
}

/// The request-path hook: authorizes `user` for this HTTP request.
pub async fn authorize_request(
    authorizer: &Authorizer,
    user: Option<&UserInfo>,
    method: &Method,
    uri: &http::Uri,
) -> Result<(), ApiError> {
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let attrs = request_attributes(method, uri.path(), uri.query());
    authorizer.authorize(user, &attrs).await
}

/// `User "jane" cannot list resource "pods" in API group "" in the namespace "default"`.
fn forbidden_reason(user: &UserInfo, a: &Attributes) -> String {
    let who = &user.name;
    if !a.resource_request {
        return format!("User {who:?} cannot {} path {:?}", a.verb, a.path);
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    format!(
        "User {who:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, a.api_group
    )
}

/// The Forbidden Status exactly as upstream words it.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    let reason = forbidden_reason(user, a);
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if !a.resource_request || a.resource.is_empty() {
        format!("forbidden: {reason}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", a.name)
    };
    ApiError::Forbidden {
        message,
        subject: Subject {
            group: a.api_group.clone(),
            kind: a.resource.clone(),
            name: a.name.clone(),
        },
    }
}

//! RBAC escalation prevention on create and update: a Role or ClusterRole may only grant what
//! its author already holds (or the author has `escalate` on it), and a binding may only refer
//! to a role whose permissions its author holds (or the author has `bind` on that role).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::{Attributes, Authorizer, request_attributes};
use crate::apiserver::auth::{MASTERS, UserInfo};
use crate::apiserver::error::{ApiError, Subject};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn or_star(v: &Option<Vec<String>>) -> Vec<String> {
    v.clone()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| vec![String::new()])
}

/// The rules of `rules` that `user` does not hold in `namespace` (`""`: cluster-wide).
pub async fn not_held(
    authorizer: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in rules {
        let mut held = true;
        'check: for verb in &rule.verbs {
            let base = Attributes {
                verb: verb.clone(),
                namespace: namespace.to_string(),
                ..Default::default()
            };
            if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
                for u in urls {
                    let a = Attributes {
                        path: u.clone(),
                        ..base.clone()
                    };
                    if !authorizer.allowed(user, &a).await {
                        held = false;
                        break 'check;
                    }
                }
                continue;
            }
            for group in or_star(&rule.api_groups) {
                for resource in or_star(&rule.resources) {
                    let (resource, sub) = resource
                        .split_once('/')
                        .map(|(r, s)| (r.to_string(), s.to_string()))
                        .unwrap_or((resource.clone(), String::new()));
                    for name in or_star(&rule.resource_names) {
                        let a = Attributes {
                            resource_request: true,
                            api_group: group.clone(),
                            resource: resource.clone(),
                            subresource: sub.clone(),
                            name,
                            ..base.clone()
                        };
                        if !authorizer.allowed(user, &a).await {
                            held = false;
                            break 'check;
                        }
                    }
                }
            }
        }
        if !held {
            missing.push(rule.clone());
        }
    }
    missing
}

fn refusal(a: &Attributes, user: &UserInfo, what: String) -> ApiError {
    ApiError::Forbidden {
        message: format!(
            "{}.{RBAC_GROUP} {:?} is forbidden: user {:?} (groups={:?}) is attempting to {what}",
            a.resource, a.name, user.name, user.groups
        ),
        subject: Subject {
            group: RBAC_GROUP.into(),
            kind: a.resource.clone(),
            name: a.name.clone(),
        },
    }
}

fn describe(rules: &[PolicyRule]) -> String {
    rules
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks a create or update (`body` is the new object) of an RBAC kind; anything else passes.
pub async fn check(
    authorizer: &Authorizer,
    user: &UserInfo,
    method: &http::Method,
    path: &str,
    body: &Value,
) -> Result<(), ApiError> {
    let mut a = request_attributes(method, path, None);
    if a.api_group != RBAC_GROUP
        || !matches!(a.verb.as_str(), "create" | "update")
        || !a.subresource.is_empty()
        || user.in_group(MASTERS)
    {
        return Ok(());
    }
    if a.name.is_empty() {
        a.name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let Authorizer::Rbac(cache) = authorizer else {
        return Ok(());
    };
    match a.resource.as_str() {
        "roles" | "clusterroles" => {
            let escalate = Attributes {
                verb: "escalate".into(),
                ..a.clone()
            };
            if authorizer.allowed(user, &escalate).await {
                return Ok(());
            }
            let rules: Vec<PolicyRule> =
                serde_json::from_value(body["rules"].clone()).unwrap_or_default();
            let missing = not_held(authorizer, user, &a.namespace, &rules).await;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(refusal(
                    &a,
                    user,
                    format!(
                        "grant RBAC permissions not currently held:\n{}",
                        describe(&missing)
                    ),
                ))
            }
        }
        "rolebindings" | "clusterrolebindings" => {
            let Ok(role_ref) = serde_json::from_value::<RoleRef>(body["roleRef"].clone()) else {
                return Ok(()); // validation reports it
            };
            let bind = Attributes {
                verb: "bind".into(),
                resource: if role_ref.kind == "Role" {
                    "roles".into()
                } else {
                    "clusterroles".into()
                },
                name: role_ref.name.clone(),
                subresource: String::new(),
                ..a.clone()
            };
            if authorizer.allowed(user, &bind).await {
                return Ok(());
            }
            let rules = cache.role_rules(&a.namespace, &role_ref);
            let missing = not_held(authorizer, user, &a.namespace, &rules).await;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(refusal(
                    &a,
                    user,
                    format!(
                        "grant RBAC permissions not currently held:\n{}",
                        describe(&missing)
                    ),
                ))
            }
        }
        _ => Ok(()),
    }
}

//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` headers, as
//! `kubectl --as` / `--as-group` send): each requested identity needs the `impersonate` verb on
//! users, groups, serviceaccounts or uids; the request then runs as the impersonated user.

use http::HeaderMap;

use super::{Attributes, Authorizer};
use crate::apiserver::auth::{AUTHENTICATED, UserInfo};
use crate::apiserver::error::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";

fn impersonate_attrs(resource: &str, namespace: &str, name: &str, group: &str) -> Attributes {
    Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        api_version: "v1".into(),
        namespace: namespace.into(),
        resource: resource.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// `user` itself when no impersonation header is present; else the impersonated identity
/// after checking each part, or 403 naming the first part `user` may not impersonate.
pub async fn apply(
    authorizer: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let target = values(USER).into_iter().next();
    let groups = values(GROUP);
    let uid = values(UID).into_iter().next();
    let Some(target) = target else {
        if groups.is_empty() && uid.is_none() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "requested impersonation without a user (Impersonate-User)",
        ));
    };
    let mut checks = Vec::new();
    let mut result = if let Some(rest) = target.strip_prefix("system:serviceaccount:") {
        let (ns, name) = rest.split_once(':').unwrap_or(("", rest));
        checks.push(impersonate_attrs("serviceaccounts", ns, name, ""));
        let ns_group = format!("system:serviceaccounts:{ns}");
        UserInfo::new(
            target.clone(),
            &["system:serviceaccounts", ns_group.as_str()],
        )
    } else {
        checks.push(impersonate_attrs("users", "", &target, ""));
        UserInfo {
            name: target.clone(),
            ..Default::default()
        }
    };
    for g in &groups {
        checks.push(impersonate_attrs("groups", "", g, ""));
        if !result.in_group(g) {
            result.groups.push(g.clone());
        }
    }
    if let Some(uid) = uid {
        checks.push(impersonate_attrs("uids", "", &uid, "authentication.k8s.io"));
        result.uid = uid;
    }
    if !result.in_group(AUTHENTICATED) && result.name != "system:anonymous" {
        result.groups.push(AUTHENTICATED.into());
    }
    for a in &checks {
        authorizer.authorize(&user, a).await?;
    }
    Ok(result)
}

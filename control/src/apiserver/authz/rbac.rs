//! The RBAC evaluator: rules of Roles and ClusterRoles reached through RoleBindings and
//! ClusterRoleBindings whose subjects match the user, read from a cache that watches the four
//! RBAC kinds (no store read per request).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::Attributes;
use crate::apiserver::auth::UserInfo;
use crate::apiserver::registry::Registry;
use crate::controllers::runtime::ObjectKey;
use crate::controllers::runtime::reflector::{self, Reader, Writer};
use crate::controllers::runtime::watcher::{Object, watcher};

/// The cached RBAC objects.
#[derive(Clone)]
pub struct RbacCache {
    roles: Reader<Role>,
    cluster_roles: Reader<ClusterRole>,
    role_bindings: Reader<RoleBinding>,
    cluster_role_bindings: Reader<ClusterRoleBinding>,
}

/// The writing halves (fed by watchers, or directly by tests).
pub struct RbacWriters {
    pub roles: Writer<Role>,
    pub cluster_roles: Writer<ClusterRole>,
    pub role_bindings: Writer<RoleBinding>,
    pub cluster_role_bindings: Writer<ClusterRoleBinding>,
}

fn feed<K: Object>(registry: Registry, mut writer: Writer<K>) {
    tokio::spawn(async move {
        let mut events = watcher::<K>(registry);
        while let Some(e) = events.next().await {
            writer.apply(&e);
        }
    });
}

impl RbacCache {
    /// An empty cache and its writers.
    pub fn new() -> (RbacCache, RbacWriters) {
        let (roles, rw) = reflector::store();
        let (cluster_roles, crw) = reflector::store();
        let (role_bindings, rbw) = reflector::store();
        let (cluster_role_bindings, crbw) = reflector::store();
        (
            RbacCache {
                roles,
                cluster_roles,
                role_bindings,
                cluster_role_bindings,
            },
            RbacWriters {
                roles: rw,
                cluster_roles: crw,
                role_bindings: rbw,
                cluster_role_bindings: crbw,
            },
        )
    }

    /// A cache kept current by watching `registry` (spawns four watchers).
    pub fn watch(registry: Registry) -> RbacCache {
        let (cache, w) = RbacCache::new();
        feed(registry.clone(), w.roles);
        feed(registry.clone(), w.cluster_roles);
        feed(registry.clone(), w.role_bindings);
        feed(registry, w.cluster_role_bindings);
        cache
    }

    /// Waits for the first full list of every kind.
    pub async fn wait_ready(&self) {
        self.roles.wait_ready().await;
        self.cluster_roles.wait_ready().await;
        self.role_bindings.wait_ready().await;
        self.cluster_role_bindings.wait_ready().await;
    }

    /// The rules of the role a binding in `namespace` (`""`: cluster scope) refers to.
    pub fn role_rules(&self, namespace: &str, role_ref: &RoleRef) -> Vec<PolicyRule> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&ObjectKey::new(None, &role_ref.name))
                .and_then(|r| r.rules.clone())
                .unwrap_or_default(),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&ObjectKey::new(Some(namespace), &role_ref.name))
                .and_then(|r| r.rules.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Calls `f` with every rule that applies to `user` in `namespace` (cluster-wide rules
    /// always; `""` = cluster scope only) until `f` returns true; true when it did.
    pub fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut f: impl FnMut(&PolicyRule) -> bool,
    ) -> bool {
        let crbs: Vec<Arc<ClusterRoleBinding>> = self.cluster_role_bindings.list();
        for b in &crbs {
            if applies(b.subjects.as_deref(), "", user)
                && self.role_rules("", &b.role_ref).iter().any(&mut f)
            {
                return true;
            }
        }
        if namespace.is_empty() {
            return false;
        }
        for b in self.role_bindings.list() {
            if b.metadata.namespace.as_deref() == Some(namespace)
                && applies(b.subjects.as_deref(), namespace, user)
                && self.role_rules(namespace, &b.role_ref).iter().any(&mut f)
            {
                return true;
            }
        }
        false
    }

    /// Whether some rule allows `a` for `user`.
    pub fn allows(&self, user: &UserInfo, a: &Attributes) -> bool {
        self.visit_rules(user, &a.namespace, |r| rule_allows(r, a))
    }
}

/// Whether a binding's subjects include `user` (`namespace`: the binding's, for
/// ServiceAccount subjects without one).
pub fn applies(subjects: Option<&[Subject]>, namespace: &str, user: &UserInfo) -> bool {
    subjects
        .unwrap_or_default()
        .iter()
        .any(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.in_group(&s.name),
            "ServiceAccount" => {
                let ns = s
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
            }
            _ => false,
        })
}

fn has(list: Option<&Vec<String>>, want: &str) -> bool {
    list.is_some_and(|l| l.iter().any(|x| x == "*" || x == want))
}

fn resource_matches(rules: Option<&Vec<String>>, resource: &str, sub: &str) -> bool {
    let combined = if sub.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{sub}")
    };
    rules.into_iter().flatten().any(|r| {
        r == "*" || *r == combined || (!sub.is_empty() && r.strip_prefix("*/") == Some(sub))
    })
}

fn url_matches(rules: Option<&Vec<String>>, path: &str) -> bool {
    rules.into_iter().flatten().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether one rule allows `a` (upstream's RuleAllows).
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(Some(&rule.verbs), &a.verb) {
        return false;
    }
    if !a.resource_request {
        return url_matches(rule.non_resource_urls.as_ref(), &a.path);
    }
    has(rule.api_groups.as_ref(), &a.api_group)
        && resource_matches(rule.resources.as_ref(), &a.resource, &a.subresource)
        && match rule.resource_names.as_deref() {
            None | Some([]) => true,
            Some(names) => names.contains(&a.name),
        }
}

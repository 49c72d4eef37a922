//! The resource table: one `ResourceDef` per served kind (names, scope, discovery data,
//! subresources, field selectors, and the per-kind hooks for defaulting, validation and Table
//! columns). Adding a kind is one entry here plus, if it has rules of its own, a small module.

use serde_json::Value;

use super::error::FieldError;
use super::table::Column;
use super::validation::NameRule;

mod apps;
mod batch;
mod core;
mod core_config;
mod core_quota;
mod cron;
mod groups;
pub mod pods;
mod rbac;
mod revisions;
pub mod scale;
pub mod scheduling;
pub mod services;
mod workloads;

#[cfg(test)]
mod kubectl_tests;

pub use services::{ServiceNetwork, ServiceNetworkError};

/// A subresource as discovery lists it.
#[derive(Debug, Clone, Copy)]
pub struct SubresourceDef {
    pub name: &'static str,
    /// Kind of the request/response body (`Binding` for pods/binding).
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
    /// `(group, version)` of `kind` when it is not the parent's (`Binding` is core/v1,
    /// `Scale` autoscaling/v1).
    pub api: Option<(&'static str, &'static str)>,
}

impl SubresourceDef {
    /// `(group, version, kind)` of the subresource's request and response body.
    pub fn response_kind(
        &self,
        parent: &ResourceDef,
    ) -> (&'static str, &'static str, &'static str) {
        let kind = if self.kind.is_empty() {
            parent.kind
        } else {
            self.kind
        };
        match self.api {
            Some((g, v)) => (g, v, kind),
            None => (parent.group, parent.version, kind),
        }
    }
}

/// The `status` subresource (its kind is the parent's).
pub const STATUS_SUBRESOURCE: SubresourceDef = SubresourceDef {
    name: "status",
    kind: "",
    verbs: &["get", "patch", "update"],
    api: None,
};

/// The `scale` subresource (autoscaling/v1 Scale).
pub const SCALE_SUBRESOURCE: SubresourceDef = SubresourceDef {
    name: "scale",
    kind: "Scale",
    verbs: &["get", "patch", "update"],
    api: Some(("autoscaling", "v1")),
};

/// Per-kind behaviour. Every hook works on the JSON form of the object.
#[derive(Clone, Copy)]
pub struct Strategy {
    /// Defaulting applied to every write (create, update), like Kubernetes' defaulters.
    pub defaults: fn(&mut Value),
    /// Create-only preparation (e.g. a pod's initial status).
    pub prepare_create: fn(&mut Value),
    /// Kind-specific validation of the whole object (metadata is checked generically).
    pub validate: fn(&Value) -> Vec<FieldError>,
    /// Extra checks on update (immutable fields): `(new, old)`.
    pub validate_update: fn(&Value, &Value) -> Vec<FieldError>,
    /// Allocation of cluster-unique values (service IPs, node ports). The registry calls it
    /// in the write path after validation, under one allocation lock, with every stored object
    /// of the kind except the one being written, so two writers never get the same value.
    pub allocate: Option<AllocateFn>,
}

/// `(object, old object on update, the kind's other stored objects, service ranges)`.
pub type AllocateFn = fn(&mut Value, Option<&Value>, &[Value], &ServiceNetwork) -> Vec<FieldError>;

fn no_op(_: &mut Value) {}
fn no_errors(_: &Value) -> Vec<FieldError> {
    Vec::new()
}
fn no_update_errors(_: &Value, _: &Value) -> Vec<FieldError> {
    Vec::new()
}

impl Strategy {
    /// A kind with no rules beyond metadata validation.
    pub const PLAIN: Strategy = Strategy {
        defaults: no_op,
        prepare_create: no_op,
        validate: no_errors,
        validate_update: no_update_errors,
        allocate: None,
    };
}

/// How `kubectl get` shows a kind.
#[derive(Clone, Copy)]
pub struct TableDef {
    pub columns: &'static [Column],
    /// The cells of one row, in column order (`now` is the rendering time).
    pub row: fn(&Value, jiff::Timestamp) -> Vec<Value>,
}

/// One served resource.
#[derive(Clone, Copy)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    pub name_rule: NameRule,
    /// Field selector paths beyond `metadata.name` / `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// `metadata.generation` is set to 1 on create and bumped when `spec` changes.
    pub tracks_generation: bool,
    pub strategy: Strategy,
    pub table: TableDef,
    /// The store's name for the kind when two group-versions would share a plural (`""`: the
    /// plural).
    pub storage: &'static str,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourceDef({}/{})", self.group_version(), self.plural)
    }
}

/// The verbs of a top-level resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn no_row(_: &Value, _: jiff::Timestamp) -> Vec<Value> {
    Vec::new()
}

/// A template for entries: `ResourceDef { plural: .., ..ResourceDef::BASE }`.
impl ResourceDef {
    pub const BASE: ResourceDef = ResourceDef {
        group: "",
        version: "v1",
        plural: "",
        singular: "",
        kind: "",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        name_rule: NameRule::Dns1123Subdomain,
        field_selectors: &[],
        tracks_generation: false,
        strategy: Strategy::PLAIN,
        table: TableDef {
            columns: &[],
            row: no_row,
        },
        storage: "",
    };

    fn store_name(&self) -> &'static str {
        if self.storage.is_empty() {
            self.plural
        } else {
            self.storage
        }
    }
}

impl ResourceDef {
    /// `v1` or `coordination.k8s.io/v1`.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/{name}", self.store_name()),
            _ => format!("/registry/{}/{name}", self.store_name()),
        }
    }

    /// The store prefix of a list (one namespace, or all of them).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/", self.store_name()),
            _ => format!("/registry/{}/", self.store_name()),
        }
    }
}

/// Every served resource.
pub static RESOURCES: &[ResourceDef] = &[
    core::NAMESPACES,
    core::NODES,
    pods::PODS,
    core::EVENTS,
    core::LEASES,
    core_config::CONFIGMAPS,
    core_config::SECRETS,
    core_config::SERVICEACCOUNTS,
    services::SERVICES,
    core_config::ENDPOINTS,
    core_quota::LIMITRANGES,
    core_quota::RESOURCEQUOTAS,
    apps::DEPLOYMENTS,
    apps::REPLICASETS,
    apps::DAEMONSETS,
    apps::STATEFULSETS,
    revisions::CONTROLLERREVISIONS,
    batch::JOBS,
    batch::CRONJOBS,
    groups::ENDPOINTSLICES,
    groups::PODDISRUPTIONBUDGETS,
    groups::EVENTS_V1,
    rbac::ROLES,
    rbac::ROLEBINDINGS,
    rbac::CLUSTERROLES,
    rbac::CLUSTERROLEBINDINGS,
    scheduling::PRIORITYCLASSES,
    crate::apiserver::crd::CUSTOMRESOURCEDEFINITIONS,
];

/// Looks a resource up by group, version and plural name: the static table first, then the
/// custom resources of established CRDs.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == resource)
        .or_else(|| crate::apiserver::crd::kinds::find(group, version, resource))
}

/// Looks a resource up by group and plural only (for the typed API; a custom resource's
/// storage version).
pub fn find_plural(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .or_else(|| crate::apiserver::crd::kinds::find_plural(group, plural))
}

/// Every served resource: the static table, then each served version of each custom resource.
pub fn all() -> Vec<&'static ResourceDef> {
    let mut out: Vec<&'static ResourceDef> = RESOURCES.iter().collect();
    out.extend(crate::apiserver::crd::kinds::all().iter().map(|k| k.def));
    out
}

/// The served group-versions, core (`""`) first, custom resources' last.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out.sort_by_key(|(g, _)| !g.is_empty());
    for gv in crate::apiserver::crd::kinds::group_versions() {
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefixes() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("ns"), "a"), "/registry/pods/ns/a");
        assert_eq!(pods.prefix(Some("ns")), "/registry/pods/ns/");
        assert_eq!(pods.prefix(None), "/registry/pods/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        let leases = find("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(leases.group_version(), "coordination.k8s.io/v1");
        assert_eq!(leases.list_kind(), "LeaseList");
        assert!(find("", "v1", "leases").is_none());
        assert_eq!(
            group_versions()[..10],
            [
                ("", "v1"),
                ("coordination.k8s.io", "v1"),
                ("apps", "v1"),
                ("batch", "v1"),
                ("discovery.k8s.io", "v1"),
                ("policy", "v1"),
                ("events.k8s.io", "v1"),
                ("rbac.authorization.k8s.io", "v1"),
                ("scheduling.k8s.io", "v1"),
                ("apiextensions.k8s.io", "v1"),
            ]
        );
    }

    #[test]
    fn every_kind_has_its_own_store_prefix() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !a.prefix(None).starts_with(&b.prefix(None))
                        && !b.prefix(None).starts_with(&a.prefix(None)),
                    "{a:?} and {b:?} share a store prefix"
                );
            }
            let table_first = a.table.columns.first().map(|c| c.name);
            assert!(table_first.is_some(), "{a:?} has no Table columns");
        }
        let deploy = find("apps", "v1", "deployments").unwrap();
        let scale = deploy
            .subresources
            .iter()
            .find(|s| s.name == "scale")
            .unwrap();
        assert_eq!(scale.response_kind(deploy), ("autoscaling", "v1", "Scale"));
        let status = deploy
            .subresources
            .iter()
            .find(|s| s.name == "status")
            .unwrap();
        assert_eq!(status.response_kind(deploy), ("apps", "v1", "Deployment"));
    }

    #[test]
    fn table_rows_match_columns() {
        let obj = serde_json::json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        for r in RESOURCES {
            let cells = (r.table.row)(&obj, jiff::Timestamp::now());
            assert_eq!(cells.len(), r.table.columns.len(), "{}", r.plural);
            let first = if r.plural == "events" {
                "Last Seen"
            } else {
                "Name"
            };
            assert_eq!(r.table.columns[0].name, first);
        }
    }
}

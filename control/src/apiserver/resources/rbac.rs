//! rbac.authorization.k8s.io/v1: roles, clusterroles, rolebindings and clusterrolebindings —
//! stored and validated (rules, roleRef, subjects); enforcement is not here.

use serde_json::{Value, json};

use super::core_quota::{CREATED_AT_COLUMNS, created_at_row};
use super::{ResourceDef, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};
use crate::apiserver::validation::NameRule;

const RBAC: ResourceDef = ResourceDef {
    group: "rbac.authorization.k8s.io",
    // Role names are path segments: anything but `.`, `..`, `/` and `%`.
    name_rule: NameRule::PathSegment,
    ..ResourceDef::BASE
};

pub const ROLES: ResourceDef = ResourceDef {
    plural: "roles",
    singular: "role",
    kind: "Role",
    strategy: Strategy {
        validate: role_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: CREATED_AT_COLUMNS,
        row: created_at_row,
    },
    ..RBAC
};

pub const CLUSTERROLES: ResourceDef = ResourceDef {
    plural: "clusterroles",
    singular: "clusterrole",
    kind: "ClusterRole",
    namespaced: false,
    strategy: Strategy {
        validate: clusterrole_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: CREATED_AT_COLUMNS,
        row: created_at_row,
    },
    ..RBAC
};

pub const ROLEBINDINGS: ResourceDef = ResourceDef {
    plural: "rolebindings",
    singular: "rolebinding",
    kind: "RoleBinding",
    strategy: Strategy {
        validate: rolebinding_validate,
        validate_update: roleref_immutable,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: BINDING_COLUMNS,
        row: binding_row,
    },
    ..RBAC
};

pub const CLUSTERROLEBINDINGS: ResourceDef = ResourceDef {
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    kind: "ClusterRoleBinding",
    namespaced: false,
    strategy: Strategy {
        validate: clusterrolebinding_validate,
        validate_update: roleref_immutable,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: BINDING_COLUMNS,
        row: binding_row,
    },
    ..RBAC
};

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn validate_rules(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("rules[{i}]");
        if strings(&r["verbs"]).is_empty() {
            errs.push(FieldError::required(format!("{path}.verbs")));
        }
        let urls = strings(&r["nonResourceURLs"]);
        let resources = strings(&r["resources"]);
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid_raw(
                    format!("{path}.nonResourceURLs"),
                    format!("{urls:?}"),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !resources.is_empty() || !strings(&r["apiGroups"]).is_empty() {
                errs.push(FieldError::invalid_raw(
                    format!("{path}.nonResourceURLs"),
                    format!("{urls:?}"),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
        } else {
            if r["apiGroups"].as_array().is_none_or(Vec::is_empty) {
                errs.push(FieldError {
                    detail: "resource rules must supply at least one api group".into(),
                    ..FieldError::required(format!("{path}.apiGroups"))
                });
            }
            if resources.is_empty() {
                errs.push(FieldError {
                    detail: "resource rules must supply at least one resource".into(),
                    ..FieldError::required(format!("{path}.resources"))
                });
            }
        }
    }
    errs
}

fn role_validate(role: &Value) -> Vec<FieldError> {
    validate_rules(role, true)
}

fn clusterrole_validate(role: &Value) -> Vec<FieldError> {
    let mut errs = validate_rules(role, false);
    if !role["aggregationRule"].is_null()
        && role["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required("aggregationRule.clusterRoleSelectors"));
    }
    errs
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn validate_binding(b: &Value, kinds: &[&str], cluster: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rr = &b["roleRef"];
    if rr.is_null() {
        errs.push(FieldError::required("roleRef"));
    } else {
        let group = rr["apiGroup"].as_str().unwrap_or_default();
        if group != RBAC_GROUP {
            errs.push(FieldError::not_supported(
                "roleRef.apiGroup",
                group,
                &[RBAC_GROUP],
            ));
        }
        let kind = rr["kind"].as_str().unwrap_or_default();
        if !kinds.contains(&kind) {
            errs.push(FieldError::not_supported("roleRef.kind", kind, kinds));
        }
        if rr["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required("roleRef.name"));
        }
    }
    for (i, s) in b["subjects"].as_array().into_iter().flatten().enumerate() {
        let path = format!("subjects[{i}]");
        if s["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("{path}.name")));
        }
        let kind = s["kind"].as_str().unwrap_or_default();
        match kind {
            "ServiceAccount" => {
                if let Some(g) = s["apiGroup"].as_str().filter(|g| !g.is_empty()) {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        g,
                        &[""],
                    ));
                }
                if cluster && s["namespace"].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("{path}.namespace")));
                }
            }
            "User" | "Group" => {
                let g = s["apiGroup"].as_str().unwrap_or_default();
                if g != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        g,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

fn rolebinding_validate(b: &Value) -> Vec<FieldError> {
    validate_binding(b, &["Role", "ClusterRole"], false)
}

fn clusterrolebinding_validate(b: &Value) -> Vec<FieldError> {
    validate_binding(b, &["ClusterRole"], true)
}

fn roleref_immutable(new: &Value, old: &Value) -> Vec<FieldError> {
    if new["roleRef"] != old["roleRef"] {
        return vec![FieldError::invalid_raw(
            "roleRef",
            &new["roleRef"],
            "cannot change roleRef",
        )];
    }
    Vec::new()
}

static BINDING_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Role",
        "string",
        "",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
        0,
    ),
    AGE_COLUMN,
    Column::new("Users", "string", "", "Users in the binding", 1),
    Column::new("Groups", "string", "", "Groups in the binding", 1),
    Column::new(
        "ServiceAccounts",
        "string",
        "",
        "ServiceAccounts in the binding",
        1,
    ),
];

fn binding_row(b: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| {
                let name = s["name"].as_str().unwrap_or_default();
                match s["namespace"].as_str() {
                    Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                    _ => name.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        b["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            b["roleRef"]["kind"].as_str().unwrap_or_default(),
            b["roleRef"]["name"].as_str().unwrap_or_default()
        )),
        object_age(b, now),
        json!(of("User")),
        json!(of("Group")),
        json!(of("ServiceAccount")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn rules() {
        let ok = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        assert!(role_validate(&ok).is_empty());
        let bad = json!({"rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert_eq!(
            bodies(&role_validate(&bad)),
            [
                "rules[0].verbs: Required value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                r#"rules[1].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs"#,
            ]
        );
        let cluster = json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert!(clusterrole_validate(&cluster).is_empty());
    }

    #[test]
    fn bindings() {
        let b = json!({
            "metadata": {"name": "b", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "apiGroup": RBAC_GROUP, "name": "alice"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}
            ]
        });
        assert!(rolebinding_validate(&b).is_empty());
        assert!(clusterrolebinding_validate(&b).is_empty());
        let cells = binding_row(&b, jiff::Timestamp::now());
        assert_eq!(cells[1], "ClusterRole/view");
        assert_eq!(cells[3], "alice");
        assert_eq!(cells[5], "kube-system/default");
        let mut role = b.clone();
        role["roleRef"]["kind"] = json!("Role");
        assert_eq!(
            bodies(&clusterrolebinding_validate(&role)),
            [r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#]
        );
        assert_eq!(
            bodies(&roleref_immutable(&role, &b))[0].split(':').next(),
            Some("roleRef")
        );
        let no_ns = json!({"roleRef": b["roleRef"], "subjects": [{"kind": "ServiceAccount", "name": "x"}, {"kind": "Robot", "name": "r"}]});
        assert_eq!(
            bodies(&clusterrolebinding_validate(&no_ns)),
            [
                "subjects[0].namespace: Required value",
                r#"subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#
            ]
        );
    }
}

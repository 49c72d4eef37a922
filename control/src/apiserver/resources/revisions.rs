//! apps/v1 controllerrevisions: the immutable snapshots of a DaemonSet's or StatefulSet's pod
//! template that `kubectl rollout history|undo` reads (upstream's validation and Table).

use serde_json::{Value, json};

use super::{ResourceDef, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age, or_none};

pub const CONTROLLERREVISIONS: ResourceDef = ResourceDef {
    group: "apps",
    plural: "controllerrevisions",
    singular: "controllerrevision",
    kind: "ControllerRevision",
    strategy: Strategy {
        validate: revision_validate,
        validate_update: revision_update,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: REVISION_COLUMNS,
        row: revision_row,
    },
    ..ResourceDef::BASE
};

fn revision_validate(r: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match &r["revision"] {
        Value::Null => {}
        v => {
            if v.as_i64().is_none_or(|n| n < 0) {
                errs.push(FieldError::invalid_raw(
                    "revision",
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    errs
}

/// `data` may not change once written (upstream's ValidateControllerRevisionUpdate).
fn revision_update(new: &Value, old: &Value) -> Vec<FieldError> {
    if new["data"] != old["data"] {
        return vec![FieldError::invalid_raw(
            "data",
            &new["data"],
            "field is immutable",
        )];
    }
    Vec::new()
}

static REVISION_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Controller",
        "string",
        "",
        "The controller that owns this revision.",
        0,
    ),
    Column::new(
        "Revision",
        "integer",
        "",
        "Revision indicates the revision of the state represented by Data.",
        0,
    ),
    AGE_COLUMN,
];

/// `daemonset.apps/web` for the controller reference, as kubectl prints it.
fn controller_cell(r: &Value) -> String {
    let refs = r["metadata"]["ownerReferences"].as_array();
    let Some(owner) = refs
        .into_iter()
        .flatten()
        .find(|o| o["controller"] == json!(true))
    else {
        return String::new();
    };
    let kind = owner["kind"].as_str().unwrap_or_default().to_lowercase();
    let group = owner["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let name = owner["name"].as_str().unwrap_or_default();
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

fn revision_row(r: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        r["metadata"]["name"].clone(),
        or_none(&controller_cell(r)),
        json!(r["revision"].as_i64().unwrap_or(0)),
        object_age(r, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_row() {
        assert!(revision_validate(&json!({"revision": 3})).is_empty());
        assert_eq!(
            revision_validate(&json!({"revision": -1}))[0].field,
            "revision"
        );
        let old = json!({"data": {"spec": {"template": {"a": 1}}}, "revision": 1});
        let bumped = json!({"data": {"spec": {"template": {"a": 1}}}, "revision": 4});
        assert!(revision_update(&bumped, &old).is_empty());
        let changed = json!({"data": {"spec": {"template": {"a": 2}}}, "revision": 1});
        assert_eq!(revision_update(&changed, &old)[0].field, "data");
        let r = json!({
            "metadata": {"name": "web-abc", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "uid": "u", "controller": true}
            ]},
            "revision": 2
        });
        let row = revision_row(&r, jiff::Timestamp::now());
        assert_eq!(row[1], json!("daemonset.apps/web"));
        assert_eq!(row[2], json!(2));
    }
}

//! `meta.k8s.io/v1 Table` rendering for `kubectl get`: column definitions, rows with the
//! per-kind cells, embedded objects per `includeObject`, and kubectl's age format.

use serde_json::{Value, json};

use super::resources::ResourceDef;

/// A Table column definition.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i32,
}

impl Column {
    pub const fn new(
        name: &'static str,
        kind: &'static str,
        format: &'static str,
        description: &'static str,
        priority: i32,
    ) -> Self {
        Column {
            name,
            kind,
            format,
            description,
            priority,
        }
    }
}

/// The Name column every kind starts with.
pub const NAME_COLUMN: Column = Column::new(
    "Name",
    "string",
    "name",
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    0,
);

/// The Age column.
pub const AGE_COLUMN: Column = Column::new(
    "Age",
    "string",
    "",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    0,
);

/// What each row embeds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// kubectl's `HumanDuration` of a number of seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let d = hours / 24;
        return if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let y = hours / 24 / 365;
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an RFC 3339 timestamp at `now`, or `<unknown>`.
pub fn age(ts: &Value, now: jiff::Timestamp) -> String {
    match ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// The age of the object's creationTimestamp.
pub fn object_age(obj: &Value, now: jiff::Timestamp) -> Value {
    Value::String(age(&obj["metadata"]["creationTimestamp"], now))
}

/// A string cell, or `<none>` when empty.
pub fn or_none(s: &str) -> Value {
    Value::String(if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    })
}

fn column_json(c: &Column) -> Value {
    json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
}

fn row_json(def: &ResourceDef, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let cells = (def.table.row)(obj, now);
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"].clone(),
            });
        }
    }
    row
}

/// A Table of `objects`. `list_meta` is the list's metadata (resourceVersion, continue).
pub fn table(
    def: &ResourceDef,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let columns: Vec<Value> = if with_columns {
        def.table.columns.iter().map(column_json).collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row_json(def, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(182), "3m2s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(15 * 60 + 5), "15m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(2 * 86400), "2d");
        assert_eq!(human_duration(2 * 86400 + 3 * 3600), "2d3h");
        assert_eq!(human_duration(30 * 86400), "30d");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(human_duration(-5), "<invalid>");
        let now: jiff::Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(age(&json!("2024-01-01T00:07:58Z"), now), "2m2s");
        assert_eq!(age(&Value::Null, now), "<unknown>");
    }

    #[test]
    fn table_embeds_partial_metadata_by_default() {
        let def = super::super::resources::find("", "v1", "namespaces").unwrap();
        let ns = json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Active"}});
        let t = table(
            def,
            std::slice::from_ref(&ns),
            json!({"resourceVersion": "7"}),
            IncludeObject::default(),
            true,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Status", "Age"]);
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["rows"][0]["cells"][1], "Active");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "a");
        let t = table(def, &[ns], json!({}), IncludeObject::None, false);
        assert!(t["rows"][0].get("object").is_none());
        assert_eq!(t["columnDefinitions"], json!([]));
    }
}

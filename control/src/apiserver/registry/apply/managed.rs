//! `metadata.managedFields`: reading and writing the entries, recording what an update changed
//! under its manager (taking those fields from everyone else), and the apply operation with its
//! conflicts, as upstream's field manager does it.

use serde_json::{Map, Value, json};

use super::fieldset::FieldSet;
use super::merge;
use super::schema::Schema;
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{Subresource, object};
use crate::apiserver::resources::ResourceDef;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(t) = &self.time {
            v["time"] = json!(t);
        }
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    /// How upstream names this manager in conflicts (`"kubectl-scale" using apps/v1`).
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// The entries of `obj`.
pub fn read(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    list.iter()
        .filter(|e| e.is_object() && e["fieldsType"] == "FieldsV1")
        .map(|e| Entry {
            manager: s(e, "manager"),
            operation: s(e, "operation"),
            api_version: s(e, "apiVersion"),
            time: e["time"].as_str().map(str::to_string),
            subresource: s(e, "subresource"),
            fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Sets the entries of `obj` (dropping the empty ones; no key when none is left).
pub fn write(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_value)
        .collect();
    if let Some(m) = obj["metadata"].as_object_mut() {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Whether a request asks to clear the entries (`managedFields: [{}]`).
pub fn is_reset(obj: &Value) -> bool {
    obj["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|l| l.len() == 1 && l[0].as_object().is_some_and(Map::is_empty))
}

/// The part of an object whose fields are tracked for `sub`: no type meta or server-set
/// metadata, and only the status (for `Status`) or no status (main resource of a kind with a
/// status subresource).
pub fn tracked(def: &ResourceDef, obj: &Value, sub: Subresource) -> Value {
    let mut o = obj.clone();
    let Some(m) = o.as_object_mut() else {
        return Value::Object(Map::new());
    };
    m.remove("apiVersion");
    m.remove("kind");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if meta.is_empty() {
            m.remove("metadata");
        }
    }
    match sub {
        Subresource::Status => {
            let status = m.remove("status");
            m.clear();
            if let Some(s) = status {
                m.insert("status".into(), s);
            }
        }
        Subresource::Main if def.has_status() => {
            m.remove("status");
        }
        Subresource::Main => {}
    }
    o
}

fn subresource_name(sub: Subresource) -> &'static str {
    match sub {
        Subresource::Main => "",
        Subresource::Status => "status",
    }
}

/// Records an update (create, replace or non-apply patch) by `manager` from `old` (`None` on
/// create) to `new`: the fields it changed become the manager's, and nobody else's. `via` is the
/// subresource recorded (`status`, `scale`, or empty).
pub fn record_update(
    def: &ResourceDef,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    (sub, via): (Subresource, &str),
) {
    let reset = is_reset(new);
    let mut entries = match old {
        Some(o) if !reset => read(o),
        _ => Vec::new(),
    };
    let schema = Schema::for_kind(&def.group_version(), def.kind);
    let after = tracked(def, new, sub);
    // A create starts from the empty object, as upstream's from the zero value.
    let before = old.map_or_else(|| json!({}), |o| tracked(def, o, sub));
    let mut changed = FieldSet::default();
    merge::changed(Some(&before), &after, &schema, &mut changed);
    let mut all_present = FieldSet::default();
    merge::present(
        &tracked(def, new, Subresource::Main),
        &schema,
        &mut all_present,
    );
    if let Some(s) = new.get("status") {
        merge::present(
            s,
            &schema.field("status"),
            all_present.child("f:status".into()),
        );
    }
    let me = Entry {
        manager: manager.to_string(),
        operation: "Update".into(),
        api_version: def.group_version(),
        time: Some(object::now()),
        subresource: via.into(),
        fields: changed.clone(),
    };
    let mut found = false;
    for e in &mut entries {
        if e.same_owner(&me) {
            found = true;
            if !changed.is_empty() {
                e.fields.union(&changed);
                e.time = me.time.clone();
            }
        } else {
            e.fields = e.fields.difference(&changed);
        }
        e.fields = e.fields.intersection(&all_present);
    }
    if !found && !changed.is_empty() {
        entries.push(me);
    }
    write(new, &entries);
}

/// Server-side apply of `applied` by `manager` onto `live` (`None`: the object is created).
/// Returns the merged object with its managed fields; fields another manager owns with a
/// different value conflict unless `force` (then they change owner).
pub fn apply(
    def: &ResourceDef,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    sub: Subresource,
) -> Result<Value, ApiError> {
    let schema = Schema::for_kind(&def.group_version(), def.kind);
    let config = tracked(def, applied, sub);
    let mut new_set = FieldSet::default();
    merge::to_set(&config, &schema, &mut new_set);
    let empty = Value::Object(Map::new());
    let live_obj = live.unwrap_or(&empty);
    let mut entries = read(live_obj);
    let me = Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: def.group_version(),
        time: Some(object::now()),
        subresource: subresource_name(sub).into(),
        fields: new_set.clone(),
    };
    // What the merge changes, against what others own.
    let mut merged = merge::merge(live_obj, applied, &schema);
    let before = tracked(def, live_obj, sub);
    let mut diff = FieldSet::default();
    merge::changed(
        Some(&before),
        &tracked(def, &merged, sub),
        &schema,
        &mut diff,
    );
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in entries.iter_mut().filter(|e| !e.same_owner(&me)) {
        let clash = e.fields.intersection(&diff);
        if clash.is_empty() {
            continue;
        }
        if force {
            e.fields = e.fields.difference(&clash);
        } else {
            for p in clash.paths() {
                conflicts.push((p, e.describe()));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(conflicts));
    }
    // Fields this manager applied before and no longer does go, unless someone else owns them.
    let previous = entries
        .iter()
        .find(|e| e.same_owner(&me))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut others = FieldSet::default();
    for e in entries.iter().filter(|e| !e.same_owner(&me)) {
        others.union(&e.fields);
    }
    let removed = previous.difference(&new_set).difference(&others);
    if !removed.is_empty() {
        merge::remove(&mut merged, &removed, &schema);
        merge::prune_empty(&mut merged, &removed);
    }
    match entries.iter_mut().find(|e| e.same_owner(&me)) {
        Some(e) => {
            if e.fields != new_set || e.api_version != me.api_version {
                e.time = me.time.clone();
            }
            e.fields = new_set;
            e.api_version = me.api_version.clone();
        }
        None => entries.push(me),
    }
    write(&mut merged, &entries);
    Ok(merged)
}

/// The 409 upstream answers an apply with conflicts.
fn conflict_error(conflicts: Vec<(String, String)>) -> ApiError {
    let message = match conflicts.as_slice() {
        [(path, who)] => format!("Apply failed with 1 conflict: conflict with {who}: {path}"),
        many => {
            let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (path, who) in many {
                by_manager.entry(who).or_default().push(path);
            }
            let mut lines = Vec::new();
            for (who, paths) in by_manager {
                lines.push(format!("conflicts with {who}:"));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::ApplyConflict {
        message,
        causes: conflicts
            .into_iter()
            .map(|(path, who)| (path, format!("conflict with {who}")))
            .collect(),
    }
}

//! Sets of field paths and their `FieldsV1` encoding (upstream structured-merge-diff's): a JSON
//! object whose keys are path elements, `f:<field>`, `k:<json of the key fields>` (an item of a
//! map list), `v:<json value>` (an item of a set), and `.` when a node with children is itself
//! a member; a member without children is `{}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of paths: this node is a member or not, and its children by path element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// The child at `element`, created if absent.
    pub fn child(&mut self, element: String) -> &mut FieldSet {
        self.children.entry(element).or_default()
    }

    /// The `fieldsV1` value.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        let children: Vec<(&String, &FieldSet)> = self
            .children
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if self.member && !children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Reads a `fieldsV1` value (anything else is the empty set).
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let Some(m) = v.as_object() else {
            return FieldSet::default();
        };
        let mut s = FieldSet {
            member: m.is_empty() || m.contains_key("."),
            children: BTreeMap::new(),
        };
        for (k, c) in m.iter().filter(|(k, _)| *k != ".") {
            s.children.insert(k.clone(), FieldSet::from_fields_v1(c));
        }
        s
    }

    /// Adds every member of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.child(k.clone()).union(c);
        }
    }

    /// The members of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// The members in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Every member path, in order, rendered as upstream prints paths
    /// (`.spec.containers[name="a"].image`, `.metadata.finalizers[="x"]`).
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: String, out: &mut Vec<String>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            c.collect_paths(format!("{prefix}{}", render_element(k)), out);
        }
    }
}

/// The element of a field.
pub fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// The element of a set item.
pub fn value_element(v: &Value) -> String {
    format!("v:{v}")
}

/// The element of a map-list item from its key fields (sorted by name, as upstream does).
pub fn key_element(keys: &BTreeMap<&str, Value>) -> String {
    let body: Vec<String> = keys
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("k:{{{}}}", body.join(","))
}

fn render_element(e: &str) -> String {
    if let Some(f) = e.strip_prefix("f:") {
        return format!(".{f}");
    }
    if let Some(v) = e.strip_prefix("v:") {
        return format!("[={v}]");
    }
    if let Some(k) = e.strip_prefix("k:")
        && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(k)
    {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return format!("[{}]", parts.join(","));
    }
    format!("[{e}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_and_renders_paths() {
        let v = json!({
            "f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        });
        let s = FieldSet::from_fields_v1(&v);
        assert_eq!(s.to_fields_v1(), v);
        assert_eq!(
            s.paths(),
            vec![
                ".metadata.finalizers[=\"a/b\"]",
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"c\"]",
                ".spec.template.spec.containers[name=\"c\"].image",
                ".spec.template.spec.containers[name=\"c\"].name",
            ]
        );
        let mut keys = BTreeMap::new();
        keys.insert("protocol", json!("TCP"));
        keys.insert("containerPort", json!(80));
        assert_eq!(
            key_element(&keys),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}}));
        let b = FieldSet::from_fields_v1(&json!({"f:b": {"f:c": {}}, "f:e": {}}));
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:d": {}}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:b": {"f:c": {}}})
        );
        let mut u = a.clone();
        u.union(&b);
        assert_eq!(
            u.to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}, "f:e": {}})
        );
        assert!(a.difference(&a).is_empty());
    }
}

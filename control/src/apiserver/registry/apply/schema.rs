//! The structure server-side apply merges by: for each field of an upstream kind, whether a list
//! is `atomic`, a `set` or a `map` keyed by some of its items' fields, and whether an object is
//! atomic. From the `+listType` / `+listMapKey` / `+mapType` / `+structType` markers (build.rs),
//! falling back on the strategic-merge metadata the way upstream's schema conversion does
//! (`patchStrategy=merge` with a merge key is a map list, without one a set). Kinds without an
//! upstream type (custom resources) have granular objects and atomic lists.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::apiserver::protobuf;
use crate::apiserver::registry::patch::strategic::definition_patch_meta;

type Tables = (
    &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )],
    &'static [&'static str],
);

/// (message, field, list type, keys, map type) and the atomic structs, from build.rs.
static TABLES: Tables = include!(concat!(env!("OUT_DIR"), "/k8s_list_meta.rs"));

type FieldMeta = (&'static str, &'static str, &'static str);

static FIELDS: LazyLock<HashMap<(&'static str, &'static str), FieldMeta>> = LazyLock::new(|| {
    TABLES
        .0
        .iter()
        .map(|&(m, f, list, keys, map)| ((m, f), (list, keys, map)))
        .collect()
});

static ATOMIC_STRUCTS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| TABLES.1.iter().copied().collect());

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole.
    Atomic,
    /// Scalars, merged as a set.
    Set,
    /// Objects identified by these fields.
    Map(Vec<&'static str>),
}

#[derive(Debug, Clone)]
enum Shape {
    Message(MessageDescriptor),
    /// A Go map whose values are of this message, if any.
    MapOf(Option<MessageDescriptor>),
    Any,
}

/// Where a value sits in its kind's type tree.
#[derive(Debug, Clone)]
pub struct Schema {
    shape: Shape,
    /// An object to replace whole (`+mapType=atomic`, `+structType=atomic`).
    pub atomic: bool,
    /// How this value merges if it is a list.
    pub list: ListType,
}

/// The JSON name build.rs gives a field Go embeds inline.
const INLINE: &str = ",inline";

fn find_field(m: &MessageDescriptor, key: &str) -> Option<(MessageDescriptor, FieldDescriptor)> {
    for f in m.fields() {
        if f.json_name() == key {
            return Some((m.clone(), f));
        }
        if f.json_name() == INLINE
            && let Kind::Message(inner) = f.kind()
            && let Some(found) = find_field(&inner, key)
        {
            return Some(found);
        }
    }
    None
}

impl Schema {
    fn any() -> Schema {
        Schema {
            shape: Shape::Any,
            atomic: false,
            list: ListType::Atomic,
        }
    }

    fn message(m: MessageDescriptor) -> Schema {
        Schema {
            atomic: ATOMIC_STRUCTS.contains(m.full_name()),
            shape: Shape::Message(m),
            list: ListType::Atomic,
        }
    }

    /// The schema of a top-level kind (`apps/v1`, `Deployment`).
    pub fn for_kind(api_version: &str, kind: &str) -> Schema {
        protobuf::message_for(api_version, kind).map_or_else(Schema::any, Schema::message)
    }

    /// Whether this is a Go map (its entries are free keys), as opposed to a struct.
    pub fn is_map(&self) -> bool {
        matches!(self.shape, Shape::MapOf(_) | Shape::Any)
    }

    /// The schema of field `key` of this object.
    pub fn field(&self, key: &str) -> Schema {
        match &self.shape {
            Shape::Any => Schema::any(),
            Shape::MapOf(v) => v.clone().map_or_else(Schema::any, Schema::message),
            Shape::Message(m) => {
                let Some((owner, f)) = find_field(m, key) else {
                    return Schema::any();
                };
                let mut s = match f.kind() {
                    Kind::Message(entry) if f.is_map() => Schema {
                        shape: Shape::MapOf(
                            entry.map_entry_value_field().kind().as_message().cloned(),
                        ),
                        atomic: false,
                        list: ListType::Atomic,
                    },
                    Kind::Message(inner) => Schema::message(inner),
                    _ => Schema {
                        shape: Shape::Any,
                        atomic: true,
                        list: ListType::Atomic,
                    },
                };
                let meta = FIELDS.get(&(owner.full_name(), f.json_name())).copied();
                if let Some((_, _, "atomic")) = meta {
                    s.atomic = true;
                }
                if f.is_list() {
                    s.list = list_type(&owner, &f, meta);
                }
                s
            }
        }
    }

    /// The schema of the items of this list.
    pub fn item(&self) -> Schema {
        Schema {
            list: ListType::Atomic,
            ..self.clone()
        }
    }
}

fn list_type(owner: &MessageDescriptor, f: &FieldDescriptor, meta: Option<FieldMeta>) -> ListType {
    match meta {
        Some(("atomic", _, _)) => return ListType::Atomic,
        Some(("set", _, _)) => return ListType::Set,
        Some(("map", keys, _)) if !keys.is_empty() => {
            return ListType::Map(keys.split(',').collect());
        }
        _ => {}
    }
    match definition_patch_meta(owner.full_name(), f.json_name()) {
        Some(m) if m.strategy.split(',').any(|s| s == "merge") => {
            if m.merge_key.is_empty() {
                ListType::Set
            } else {
                ListType::Map(vec![m.merge_key])
            }
        }
        _ => ListType::Atomic,
    }
}

/// The value upstream's schema defaults a list-map key field to when an item omits it.
pub fn key_default(key: &str) -> Option<serde_json::Value> {
    (key == "protocol").then(|| serde_json::Value::from("TCP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_list_types() {
        let d = Schema::for_kind("apps/v1", "Deployment");
        let pod_spec = d.field("spec").field("template").field("spec");
        assert_eq!(
            pod_spec.field("containers").list,
            ListType::Map(vec!["name"])
        );
        let c = pod_spec.field("containers").item();
        assert_eq!(
            c.field("ports").list,
            ListType::Map(vec!["containerPort", "protocol"])
        );
        assert_eq!(c.field("args").list, ListType::Atomic);
        assert!(d.field("spec").field("selector").atomic);
        assert!(d.field("metadata").field("labels").is_map());
        assert!(!d.field("spec").is_map());
        assert_eq!(d.field("metadata").field("finalizers").list, ListType::Set);
        assert_eq!(
            d.field("metadata").field("ownerReferences").list,
            ListType::Map(vec!["uid"])
        );
        let w = Schema::for_kind("example.com/v1", "Widget");
        assert_eq!(w.field("spec").field("items").list, ListType::Atomic);
        assert!(w.field("spec").is_map());
    }
}

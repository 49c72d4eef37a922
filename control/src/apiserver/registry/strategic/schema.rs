//! The patch metadata of the upstream kinds: a table (message, JSON field) → (strategy, merge key)
//! that build.rs extracts from the Go markers in the `k8s-pb` sources, and the type tree from the
//! protobuf descriptors of the same build (which field holds which message, maps, inline
//! embedding). Nothing here is written per kind.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::{PatchMeta, PatchSchema};
use crate::apiserver::protobuf;

/// (message full name, JSON field, strategy, merge key), from build.rs.
static TABLE: &[(&str, &str, &str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/k8s_patch_meta.rs"));

static INDEX: LazyLock<HashMap<(&'static str, &'static str), PatchMeta>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|&(message, field, strategy, merge_key)| {
            (
                (message, field),
                PatchMeta {
                    strategy,
                    merge_key,
                },
            )
        })
        .collect()
});

/// The JSON name build.rs gives a field Go embeds inline (`json:",inline"`).
const INLINE: &str = ",inline";

/// Where a JSON value sits in the type tree of a kind.
#[derive(Debug, Clone)]
pub enum KindSchema {
    /// An object of this message.
    Message(MessageDescriptor),
    /// A JSON object with free keys (a Go map) whose values are of this message, if any.
    MapOf(Option<MessageDescriptor>),
    /// A value the type tree says nothing about.
    Any,
}

impl KindSchema {
    /// The schema of a top-level kind (`v1`, `Pod`); `None` for kinds with no upstream type (to
    /// which upstream does not apply strategic merge patches).
    pub fn for_kind(api_version: &str, kind: &str) -> Option<KindSchema> {
        protobuf::message_for(api_version, kind).map(KindSchema::Message)
    }
}

/// The field with JSON name `key` of `message` or of a message it embeds inline, with the
/// message that declares it. Like Go's decoder, an exact match wins over a case-insensitive one.
fn find_field(
    message: &MessageDescriptor,
    key: &str,
) -> Option<(MessageDescriptor, FieldDescriptor)> {
    let mut fold = None;
    for f in message.fields() {
        if f.json_name() == key {
            return Some((message.clone(), f));
        }
        if f.json_name() == INLINE {
            if let Kind::Message(inner) = f.kind()
                && let Some(found) = find_field(&inner, key)
            {
                return Some(found);
            }
        } else if fold.is_none() && f.json_name().eq_ignore_ascii_case(key) {
            fold = Some((message.clone(), f));
        }
    }
    fold
}

fn lookup(owner: &MessageDescriptor, field: &FieldDescriptor) -> PatchMeta {
    INDEX
        .get(&(owner.full_name(), field.json_name()))
        .copied()
        .unwrap_or_default()
}

impl PatchSchema for KindSchema {
    fn field(&self, key: &str) -> (Self, PatchMeta) {
        match self {
            KindSchema::Message(m) => {
                let Some((owner, f)) = find_field(m, key) else {
                    return (KindSchema::Any, PatchMeta::default());
                };
                let meta = lookup(&owner, &f);
                let sub = match f.kind() {
                    Kind::Message(entry) if f.is_map() => KindSchema::MapOf(
                        entry.map_entry_value_field().kind().as_message().cloned(),
                    ),
                    Kind::Message(inner) => KindSchema::Message(inner),
                    _ => KindSchema::Any,
                };
                (sub, meta)
            }
            KindSchema::MapOf(value) => (
                value.clone().map_or(KindSchema::Any, KindSchema::Message),
                PatchMeta::default(),
            ),
            KindSchema::Any => (KindSchema::Any, PatchMeta::default()),
        }
    }

    fn name(&self) -> String {
        match self {
            KindSchema::Message(m) => m.name().to_string(),
            KindSchema::MapOf(_) => "map".into(),
            KindSchema::Any => "interface".into(),
        }
    }
}

/// A definition or message name without its `io.k8s.`/`k8s.io.` root, lowercase, without `-`
/// and `_` (k8s-openapi's `io.k8s.api.storage.v1.CSINodeSpec` is k8s-pb's
/// `k8s.io.api.storage.v1.CsiNodeSpec`).
fn normalize(name: &str) -> String {
    let name = name
        .strip_prefix("io.k8s.")
        .or_else(|| name.strip_prefix("k8s.io."))
        .unwrap_or(name);
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

static BY_DEFINITION: LazyLock<HashMap<String, MessageDescriptor>> = LazyLock::new(|| {
    protobuf::message_for("v1", "Pod")
        .map(|pod| {
            pod.parent_pool()
                .all_messages()
                .map(|m| (normalize(m.full_name()), m))
                .collect()
        })
        .unwrap_or_default()
});

/// The patch metadata of `property` of the OpenAPI definition `definition`
/// (`io.k8s.api.core.v1.PodSpec`, `containers` → merge on `name`), for the served documents.
pub fn definition_patch_meta(definition: &str, property: &str) -> Option<PatchMeta> {
    let message = BY_DEFINITION.get(&normalize(definition))?;
    let (owner, f) = find_field(message, property)?;
    Some(lookup(&owner, &f)).filter(|m| *m != PatchMeta::default())
}

//! Why a strategic merge patch cannot be applied, with upstream's messages, and how the API server
//! answers each (upstream's `interpretStrategicMergePatchError`: malformed directives are 400,
//! lists of lists 422, everything else a 500 carrying the message).

use serde_json::Value;

use crate::apiserver::error::ApiError;

/// A strategic merge patch that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// A `$patch` directive with a value other than replace/delete (merge on a map included).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    /// A list item without the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// A value of the wrong JSON type where a map or list was needed.
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    /// A malformed `$deleteFromPrimitiveList/...` key.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A `$retainKeys` that is not a list, or a patched key missing from it.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A malformed `$setElementOrder/...` key.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// A `$setElementOrder` list whose order contradicts the patch list.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch { patch: String, order: String },
    /// A list whose items are lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A list mixing item types.
    #[error("list element types are not identical: {0}")]
    MixedElements(String),
    /// Only empty lists where an item type was needed.
    #[error("no elements in any of the given slices")]
    NoElements,
    /// A list of maps with the merge strategy but no merge key.
    #[error("cannot merge lists without merge key for {0}")]
    NoListMergeKey(String),
    /// `$patch: merge` as a list item.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeListDirective,
    /// A field declaring more strategies than upstream allows.
    #[error("unexpected patch strategy: {0}")]
    UnexpectedStrategy(String),
    /// A list with the merge strategy holding a non-map among maps.
    #[error("value for key {0} is not a map")]
    NotAMap(usize),
}

impl From<StrategicError> for ApiError {
    fn from(e: StrategicError) -> Self {
        match e {
            StrategicError::BadPrimitiveList
            | StrategicError::BadRetainKeys
            | StrategicError::BadSetElementOrder => ApiError::bad_request(e.to_string()),
            StrategicError::ListOfLists => ApiError::Invalid {
                message: e.to_string(),
                subject: Default::default(),
                causes: Vec::new(),
            },
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The Go type name of a JSON value, as upstream's messages print it.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    }
}

/// A JSON value printed like Go's `%v` of its decoded form (`map[k:v]`, `[a b]`).
pub(crate) fn go_fmt(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_fmt).collect();
            format!("[{}]", items.join(" "))
        }
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

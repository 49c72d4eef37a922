//! The merge itself: maps key by key (with the map directives), lists by their field's strategy
//! (merge by key, union of primitives, or replace). Mirrors upstream's `mergeMap`/`mergeSlice`
//! with the server's options (parallel deletion lists applied, unmatched nulls ignored).

use serde_json::{Map, Value};

use super::errors::{StrategicError, go_fmt, go_type};
use super::order::{self, Kind};
use super::{PatchMeta, PatchSchema};

pub(super) const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
pub(super) const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// The field name after `prefix/`, or the prefix's format error.
fn extract_key<'a>(key: &'a str, prefix: &str) -> Result<&'a str, StrategicError> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == SET_ELEMENT_ORDER => Err(StrategicError::BadSetElementOrder),
        _ => Err(StrategicError::BadPrimitiveList),
    }
}

/// Same JSON type, as Go's `reflect.TypeOf` compares decoded values.
fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Merges `patch` into `original`.
pub(super) fn merge_map<S: PatchSchema>(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &S,
) -> Result<Map<String, Value>, StrategicError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some(REPLACE) => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some(DELETE) => Ok(Map::new()),
            _ => Err(StrategicError::BadPatchType {
                directive: go_fmt(directive),
                map: go_fmt(&Value::Object(patch.clone())),
            }),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_element_order_lists(&mut original, &mut patch, schema)?;

    // Deletion lists first, so that a list patched and pruned at once ends the same every time.
    let mut keys: Vec<String> = patch.keys().cloned().collect();
    keys.sort_by_key(|k| !k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for k in keys {
        let Some(mut patch_v) = patch.remove(&k) else {
            continue;
        };
        let (key, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                extract_key(&k, DELETE_FROM_PRIMITIVE_LIST)?.to_string(),
                true,
            )
        } else {
            (k, false)
        };
        if patch_v.is_null() {
            original.remove(&key);
            continue;
        }
        let taken = match original.get(&key) {
            Some(o) if same_type(o, &patch_v) => original.remove(&key),
            _ => None,
        };
        let Some(orig_v) = taken else {
            // Absent or of another type: the patch value replaces it.
            if !is_delete_list {
                discard_nulls(&mut patch_v);
                match remove_directives(patch_v) {
                    Some(v) => original.insert(key, v),
                    None => original.remove(&key),
                };
            }
            continue;
        };
        let merged = match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let (sub, meta) = schema.field(&key);
                if meta.merge_strategy()? == REPLACE {
                    Value::Object(p)
                } else {
                    Value::Object(merge_map(o, p, &sub)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                let (sub, meta) = schema.field(&key);
                Value::Array(merge_slice_handler(o, p, &sub, meta, is_delete_list)?)
            }
            (_, p) => match remove_directives(p) {
                Some(v) => v,
                None => continue,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// `$retainKeys`: keys of `original` not listed are cleared; every key the patch sets must be
/// listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), StrategicError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(StrategicError::BadRetainKeys);
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(StrategicError::BadRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

fn as_list(v: Option<&Value>) -> Result<Option<Vec<Value>>, StrategicError> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(other) => Err(StrategicError::BadArgType {
            expected: "[]interface {}",
            actual: go_type(other),
        }),
    }
}

/// `$setElementOrder/<field>`: merges the field's patch list (if any) and orders the result: the
/// directive's order first, then the patch's, then the live object's.
fn merge_element_order_lists<S: PatchSchema>(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &S,
) -> Result<(), StrategicError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order_v) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order_v else {
            return Err(StrategicError::BadArgType {
                expected: "[]interface {}",
                actual: go_type(&order_v),
            });
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?.to_string();
        let orig_list = as_list(original.get(&field))?;
        let patch_list = as_list(patch.get(&field))?;
        let (sub, meta) = schema.field(&field);
        meta.merge_strategy()?;
        validate_with_order(
            patch_list.as_deref().unwrap_or_default(),
            &order,
            meta.merge_key,
        )?;
        let merged = match (&orig_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                Some(Value::Array(a)) => a,
                _ => continue,
            },
            (Some(o), Some(p)) => merge_slice_handler(o.clone(), p.clone(), &sub, meta, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = order::partition(merged, &order, meta.merge_key)?;
        let orig_list = orig_list.unwrap_or_default();
        let kind = order::element_kind(&[&orig_list, patch_list.as_deref().unwrap_or_default()])?;
        let both = order::normalize(
            in_order,
            server_only,
            &order,
            &orig_list,
            meta.merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

/// Checks that the patch list's items appear in the `$setElementOrder` list, in its order.
fn validate_with_order(patch: &[Value], order: &[Value], key: &str) -> Result<(), StrategicError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> = if key.is_empty() {
        patch.to_vec()
    } else {
        order::split_deletions(patch.to_vec())?.0
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if order::merge_key_equal(&non_delete[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(StrategicError::OrderMismatch {
            patch: go_fmt(&Value::Array(patch.to_vec())),
            order: go_fmt(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

/// Merges a list by the field's strategy; deletion lists always merge.
fn merge_slice_handler<S: PatchSchema>(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: &S,
    meta: PatchMeta,
    is_delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if meta.merge_strategy()? == MERGE || is_delete_list {
        merge_slice(original, patch, schema, meta.merge_key, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// Merges two lists with the merge strategy.
fn merge_slice<S: PatchSchema>(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: &S,
    key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = order::element_kind(&[&original, &patch])?;
    let (merged, patch_order, server_order) = if kind != Kind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (merged, patch, original)
    } else {
        if key.is_empty() {
            return Err(StrategicError::NoListMergeKey(schema.name()));
        }
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let server_order = original.clone();
        let merged = merge_items(original, patch.clone(), key, schema)?;
        (merged, patch, server_order)
    };
    let (in_patch, server_only) = order::partition(merged, &patch_order, key)?;
    order::normalize(
        in_patch,
        server_only,
        &patch_order,
        &server_order,
        key,
        kind,
    )
}

/// Applies `$patch: delete` and `$patch: replace` items; returns the original left and the
/// patch items without directives.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Some(directive) = v.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let Some(value) = v.get(key) else {
                    return Err(order::no_merge_key(&v, key));
                };
                for (i, item) in original.iter().enumerate() {
                    if !item.is_object() {
                        return Err(StrategicError::NotAMap(i));
                    }
                }
                original.retain(|item| item.get(key) != Some(value));
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err(StrategicError::MergeListDirective),
            _ => {
                return Err(StrategicError::BadPatchType {
                    directive: go_fmt(directive),
                    map: go_fmt(&v),
                });
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch item into the original item with the same merge key, or appends it.
fn merge_items<S: PatchSchema>(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    schema: &S,
) -> Result<Vec<Value>, StrategicError> {
    for v in patch {
        let Value::Object(item) = v else {
            return Err(StrategicError::BadArgType {
                expected: "map[string]interface {}",
                actual: go_type(&v),
            });
        };
        let Some(value) = item.get(key).cloned() else {
            return Err(order::no_merge_key(&Value::Object(item), key));
        };
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            let Value::Object(o) = o else {
                return Err(StrategicError::NotAMap(i));
            };
            if o.get(key) == Some(&value) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut original[i]) else {
                    unreachable!("checked above");
                };
                original[i] = Value::Object(merge_map(o, item, schema)?);
            }
            None => original.push(Value::Object(item)),
        }
    }
    Ok(original)
}

/// Drops `null` values (at every depth) from a value that is added as a whole.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops maps carrying `$patch` (at every depth); `None` when `v` itself is one.
pub(super) fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Removes directive keys that upstream leaves in a merged map when it takes a patch value
/// whole (its typed decoding drops them afterwards): `$patch`, `$retainKeys`,
/// `$setElementOrder/...`, `$deleteFromPrimitiveList/...`.
pub(super) fn strip_leftover_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                k != DIRECTIVE
                    && k != RETAIN_KEYS
                    && !k.starts_with(SET_ELEMENT_ORDER)
                    && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            });
            m.values_mut().for_each(strip_leftover_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_leftover_directives),
        _ => {}
    }
}

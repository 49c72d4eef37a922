//! The value side of server-side apply, all driven by [`Schema`]: the field set of an applied
//! configuration, the fields an update changed, merging an applied configuration into the live
//! object, and removing the fields an applier gave up.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, field_element, key_element, value_element};
use super::schema::{ListType, Schema, key_default};

/// The element naming `item` of a map list with `keys`; `None` if it lacks a key field.
fn item_key(item: &Value, keys: &[&'static str]) -> Option<String> {
    let mut m = BTreeMap::new();
    for k in keys {
        let v = match item.get(*k) {
            Some(v) if !v.is_null() => v.clone(),
            _ => key_default(k)?,
        };
        m.insert(*k, v);
    }
    Some(key_element(&m))
}

/// The items of a map list by element, or `None` if one lacks its keys or repeats one.
fn keyed<'a>(items: &'a [Value], keys: &[&'static str]) -> Option<Vec<(String, &'a Value)>> {
    let mut out: Vec<(String, &Value)> = Vec::with_capacity(items.len());
    for item in items {
        let k = item_key(item, keys)?;
        if out.iter().any(|(o, _)| *o == k) {
            return None;
        }
        out.push((k, item));
    }
    Some(out)
}

fn scalars(items: &[Value]) -> bool {
    items.iter().all(|i| !i.is_object() && !i.is_array())
}

/// The fields an applied configuration sets: its leaves and the items of its map and set
/// lists (objects are not members themselves unless empty or atomic).
pub fn to_set(value: &Value, schema: &Schema, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !schema.atomic && !m.is_empty() => {
            for (k, v) in m {
                to_set(v, &schema.field(k), out.child(field_element(k)));
            }
        }
        Value::Array(items) => match &schema.list {
            ListType::Set if scalars(items) => {
                for i in items {
                    out.child(value_element(i)).member = true;
                }
                out.member |= items.is_empty();
            }
            ListType::Map(keys) if !items.is_empty() => match keyed(items, keys) {
                Some(entries) => {
                    for (k, item) in entries {
                        let c = out.child(k);
                        c.member = true;
                        to_set(item, &schema.item(), c);
                        c.member = true;
                    }
                }
                None => out.member = true,
            },
            _ => out.member = true,
        },
        _ => out.member = true,
    }
}

/// The fields an update changed from `old` to `new` (added or modified; upstream also marks a
/// Go map or list item that appeared as a member).
pub fn changed(old: Option<&Value>, new: &Value, schema: &Schema, out: &mut FieldSet) {
    match new {
        Value::Object(m) if !schema.atomic && !m.is_empty() => {
            let old_map = old.and_then(Value::as_object);
            if old_map.is_none() && schema.is_map() {
                out.member = true;
            }
            for (k, v) in m {
                let o = old_map.and_then(|o| o.get(k));
                if o != Some(v) {
                    changed(o, v, &schema.field(k), out.child(field_element(k)));
                }
            }
        }
        Value::Array(items) if old != Some(new) => {
            let old_items = old.and_then(Value::as_array).map(Vec::as_slice);
            match &schema.list {
                ListType::Set if scalars(items) && !items.is_empty() => {
                    for i in items {
                        if !old_items.is_some_and(|o| o.contains(i)) {
                            out.child(value_element(i)).member = true;
                        }
                    }
                }
                ListType::Map(keys) if !items.is_empty() => {
                    let old_keyed = old_items.and_then(|o| keyed(o, keys));
                    match keyed(items, keys) {
                        Some(entries) => {
                            for (k, item) in entries {
                                let before = old_keyed
                                    .as_ref()
                                    .and_then(|o| o.iter().find(|(ok, _)| *ok == k))
                                    .map(|(_, v)| *v);
                                if before == Some(item) {
                                    continue;
                                }
                                let c = out.child(k);
                                if before.is_none() {
                                    c.member = true;
                                }
                                changed(before, item, &schema.item(), c);
                                if before.is_none() {
                                    c.member = true;
                                }
                            }
                        }
                        None => out.member = true,
                    }
                }
                _ => out.member = true,
            }
        }
        _ => {
            if old != Some(new) {
                out.member = true;
            }
        }
    }
}

/// Every path present in `value`, each a member (to drop ownership of fields that are gone).
pub fn present(value: &Value, schema: &Schema, out: &mut FieldSet) {
    out.member = true;
    match value {
        Value::Object(m) if !schema.atomic => {
            for (k, v) in m {
                present(v, &schema.field(k), out.child(field_element(k)));
            }
        }
        Value::Array(items) => match &schema.list {
            ListType::Set if scalars(items) => {
                for i in items {
                    out.child(value_element(i)).member = true;
                }
            }
            ListType::Map(keys) => {
                if let Some(entries) = keyed(items, keys) {
                    for (k, item) in entries {
                        present(item, &schema.item(), out.child(k));
                    }
                }
            }
            _ => {}
        },
        _ => {}
    }
}

/// Merges an applied configuration into the live value.
pub fn merge(live: &Value, applied: &Value, schema: &Schema) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !schema.atomic => {
            let mut out = l.clone();
            for (k, v) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, v, &schema.field(k)),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match &schema.list {
            ListType::Set if scalars(l) && scalars(a) => {
                let mut out = l.clone();
                for i in a {
                    if !out.contains(i) {
                        out.push(i.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => match (keyed(l, keys), keyed(a, keys)) {
                (Some(lk), Some(ak)) => {
                    let mut out: Vec<Value> = lk
                        .iter()
                        .map(|(k, lv)| match ak.iter().find(|(key, _)| key == k) {
                            Some((_, av)) => merge(lv, av, &schema.item()),
                            None => (*lv).clone(),
                        })
                        .collect();
                    for (k, av) in &ak {
                        if !lk.iter().any(|(key, _)| key == k) {
                            out.push((*av).clone());
                        }
                    }
                    Value::Array(out)
                }
                _ => applied.clone(),
            },
            _ => applied.clone(),
        },
        _ => applied.clone(),
    }
}

/// Removes the members of `set` from `value`.
pub fn remove(value: &mut Value, set: &FieldSet, schema: &Schema) {
    match value {
        Value::Object(m) => {
            for (element, c) in &set.children {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                if c.member {
                    m.remove(name);
                } else if let Some(v) = m.get_mut(name) {
                    remove(v, c, &schema.field(name));
                }
            }
        }
        Value::Array(items) => match &schema.list {
            ListType::Set => items.retain(|i| {
                !set.children
                    .get(&value_element(i))
                    .is_some_and(|c| c.member)
            }),
            ListType::Map(keys) => {
                let keys = keys.clone();
                let mut kept = Vec::with_capacity(items.len());
                for mut item in std::mem::take(items) {
                    match item_key(&item, &keys).and_then(|k| set.children.get(&k)) {
                        Some(c) if c.member => continue,
                        Some(c) => remove(&mut item, c, &schema.item()),
                        None => {}
                    }
                    kept.push(item);
                }
                *items = kept;
            }
            ListType::Atomic => {}
        },
        _ => {}
    }
}

/// Drops empty objects `remove` left behind where the applier had set children only.
pub fn prune_empty(value: &mut Value, set: &FieldSet) {
    if let Value::Object(m) = value {
        let mut gone = Vec::new();
        for (element, c) in &set.children {
            let Some(name) = element.strip_prefix("f:") else {
                continue;
            };
            if let Some(v) = m.get_mut(name) {
                prune_empty(v, c);
                if v.as_object().is_some_and(Map::is_empty) && !c.children.is_empty() {
                    gone.push(name.to_string());
                }
            }
        }
        for g in gone {
            m.remove(&g);
        }
    }
}

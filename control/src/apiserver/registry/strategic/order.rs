//! The element order of merged lists, as upstream keeps it: items named by the patch (or by a
//! `$setElementOrder` list) in the patch's order, server-only items in the live object's order,
//! the two interleaved where the live order relates them.

use std::cmp::Ordering;

use serde_json::Value;

use super::errors::{StrategicError, go_fmt, go_type};
use super::merge::DIRECTIVE;

/// The item type of a list: maps merge by key, everything else by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Map,
    List,
    String,
    Number,
    Bool,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Object(_) => Some(Kind::Map),
        Value::Array(_) => Some(Kind::List),
        Value::String(_) => Some(Kind::String),
        Value::Number(_) => Some(Kind::Number),
        Value::Bool(_) => Some(Kind::Bool),
        Value::Null => None,
    }
}

/// The common item type of the lists; lists of lists and mixed lists are errors.
pub(super) fn element_kind(lists: &[&[Value]]) -> Result<Kind, StrategicError> {
    let mut prev: Option<Kind> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let current = kind_of(v);
        match prev {
            None => {
                prev = current;
                if prev == Some(Kind::List) {
                    return Err(StrategicError::ListOfLists);
                }
            }
            Some(p) if Some(p) != current => {
                let all: Vec<String> = lists
                    .iter()
                    .map(|l| go_fmt(&Value::Array(l.to_vec())))
                    .collect();
                return Err(StrategicError::MixedElements(format!(
                    "[{}]",
                    all.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    prev.ok_or(StrategicError::NoElements)
}

pub(super) fn no_merge_key(v: &Value, key: &str) -> StrategicError {
    StrategicError::NoMergeKey {
        map: go_fmt(v),
        key: key.to_string(),
    }
}

/// Whether two items have the same merge key value (the same value without a key).
pub(super) fn merge_key_equal(a: &Value, b: &Value, key: &str) -> Result<bool, StrategicError> {
    if key.is_empty() {
        return Ok(a == b);
    }
    let value = |v: &Value| -> Result<Value, StrategicError> {
        let Value::Object(m) = v else {
            return Err(StrategicError::BadArgType {
                expected: "map[string]interface {}",
                actual: go_type(v),
            });
        };
        m.get(key).cloned().ok_or_else(|| no_merge_key(v, key))
    };
    Ok(value(a)? == value(b)?)
}

/// The position of `item` in `list`, comparing merge key values for maps.
fn index(list: &[Value], item: &Value, key: &str, kind: Kind) -> Option<usize> {
    if kind == Kind::Map {
        let k = |v: &Value| v.as_object().and_then(|m| m.get(key)).cloned();
        let want = k(item);
        list.iter().position(|v| k(v) == want)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// Splits a list of maps into the items to keep and the `$patch: delete` items.
pub(super) fn split_deletions(
    list: Vec<Value>,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        if !v.is_object() {
            return Err(StrategicError::BadArgType {
                expected: "map[string]interface {}",
                actual: go_type(&v),
            });
        }
        if v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// Splits `merged` into the items present in `by` (by merge key for maps) and the rest.
pub(super) fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in merged {
        let found = if key.is_empty() {
            by.contains(&v)
        } else {
            let Value::Object(m) = &v else {
                return Err(StrategicError::BadArgType {
                    expected: "map[string]interface {}",
                    actual: go_type(&v),
                });
            };
            let Some(value) = m.get(key) else {
                return Err(no_merge_key(&v, key));
            };
            let mut found = false;
            for (i, b) in by.iter().enumerate() {
                let Value::Object(b) = b else {
                    return Err(StrategicError::NotAMap(i));
                };
                if b.get(key) == Some(value) {
                    found = true;
                    break;
                }
            }
            found
        };
        if found {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Sorts `list` by the positions of its items in `order` (stable; items `order` lacks keep
/// their place); `$patch: delete` items go last.
fn sort_by_order(
    list: Vec<Value>,
    order: &[Value],
    key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let (mut list, deletions) = if kind == Kind::Map {
        for v in list.iter().chain(order.iter()) {
            let Value::Object(m) = v else {
                return Err(StrategicError::BadArgType {
                    expected: "map[string]interface {}",
                    actual: go_type(v),
                });
            };
            if !m.contains_key(key) {
                return Err(no_merge_key(v, key));
            }
        }
        split_deletions(list)?
    } else {
        (list, Vec::new())
    };
    list.sort_by(
        |a, b| match (index(order, a, key, kind), index(order, b, key, kind)) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => Ordering::Equal,
        },
    );
    list.extend(deletions);
    Ok(list)
}

/// Orders the merged list: `patch` items by `patch_order`, `server_only` items by
/// `server_order`, then interleaves them, a server-only item going before a patch item when the
/// live list has it before that item.
pub(super) fn normalize(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let right = sort_by_order(patch, patch_order, key, kind)?;
    let left = sort_by_order(server_only, server_order, key, kind)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (
                index(server_order, l, key, kind),
                index(server_order, r, key, kind),
            ) {
                (Some(i), Some(j)) => i < j,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

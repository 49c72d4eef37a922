//! Label selectors (the full string syntax: `a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`,
//! `!a`, `a>1`, `a<1`) and field selectors (`f=v`, `f==v`, `f!=v`) with per-kind field lookup.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ApiError;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector: all requirements must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

fn bad_label(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} (selector {sel:?})"
    ))
}

fn check_key(sel: &str, key: &str) -> Result<String, ApiError> {
    let errs = super::validation::qualified_name(key);
    if let Some(e) = errs.first() {
        return Err(bad_label(sel, &format!("invalid label key {key:?}: {e}")));
    }
    Ok(key.to_string())
}

fn check_value(sel: &str, v: &str) -> Result<String, ApiError> {
    if let Some(e) = super::validation::label_value(v).first() {
        return Err(bad_label(sel, &format!("invalid label value: {v:?}: {e}")));
    }
    Ok(v.to_string())
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(sel: &str, rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad_label(sel, "expected a parenthesised set of values"))?;
    inner
        .split(',')
        .map(|v| check_value(sel, v.trim()))
        .collect()
}

impl LabelSelector {
    pub fn parse(sel: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        if sel.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for part in split_top(sel) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad_label(sel, "found '', expected: identifier"));
            }
            if let Some(k) = p.strip_prefix('!') {
                requirements.push(Requirement::DoesNotExist(check_key(sel, k.trim())?));
                continue;
            }
            if let Some(i) = p.find("!=") {
                let (k, v) = (&p[..i], &p[i + 2..]);
                requirements.push(Requirement::NotEquals(
                    check_key(sel, k.trim())?,
                    check_value(sel, v.trim())?,
                ));
                continue;
            }
            if let Some(i) = p.find("==") {
                let (k, v) = (&p[..i], &p[i + 2..]);
                requirements.push(Requirement::Equals(
                    check_key(sel, k.trim())?,
                    check_value(sel, v.trim())?,
                ));
                continue;
            }
            if let Some(i) = p.find('=') {
                let (k, v) = (&p[..i], &p[i + 1..]);
                requirements.push(Requirement::Equals(
                    check_key(sel, k.trim())?,
                    check_value(sel, v.trim())?,
                ));
                continue;
            }
            if let Some(i) = p.find(['>', '<']) {
                let (k, v) = (&p[..i], p[i + 1..].trim());
                let n: i64 = v.parse().map_err(|_| {
                    bad_label(
                        sel,
                        &format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"),
                    )
                })?;
                let k = check_key(sel, k.trim())?;
                requirements.push(if p.as_bytes()[i] == b'>' {
                    Requirement::GreaterThan(k, n)
                } else {
                    Requirement::LessThan(k, n)
                });
                continue;
            }
            let mut words = p.splitn(2, char::is_whitespace);
            let key = words.next().unwrap_or_default();
            let rest = words.next().unwrap_or("").trim_start();
            if rest.is_empty() {
                requirements.push(Requirement::Exists(check_key(sel, key)?));
            } else if let Some(r) = rest.strip_prefix("notin") {
                requirements.push(Requirement::NotIn(check_key(sel, key)?, parse_set(sel, r)?));
            } else if let Some(r) = rest.strip_prefix("in") {
                requirements.push(Requirement::In(check_key(sel, key)?, parse_set(sel, r)?));
            } else {
                return Err(bad_label(
                    sel,
                    &format!("found '{rest}', expected: in, notin, =, ==, !=, gt, lt"),
                ));
            }
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = obj["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

/// One field requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the selector and checks every field against `supported` (besides
    /// `metadata.name` and `metadata.namespace`, which every kind has).
    pub fn parse(sel: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in sel.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {part:?}: expected an operator (=, ==, !=)"
                )));
            };
            let field = field.trim();
            if !(field == "metadata.name"
                || field == "metadata.namespace"
                || supported.contains(&field))
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            requirements.push(FieldRequirement {
                field: field.into(),
                value: value.trim().into(),
                equal,
            });
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value of `metadata.name` when the selector pins it (lets a list read one key).
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.equal && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }

    /// Matches an object; `lookup` resolves a field path to the object's value ("" if unset).
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) == r.equal
        })
    }
}

/// The string value of a dotted field path (`spec.nodeName`, `involvedObject.kind`), "" if
/// unset. Numbers and booleans render as text.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_label_syntax() {
        let s = LabelSelector::parse(
            "app=web, tier!=db,env in (prod, staging),!legacy,track notin (canary),zone",
        )
        .unwrap();
        assert_eq!(s.requirements.len(), 6);
        let good = labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "prod"),
            ("track", "stable"),
            ("zone", "a"),
        ]);
        assert!(s.matches(&good));
        let mut bad = good.clone();
        bad.insert("legacy".into(), "1".into());
        assert!(!s.matches(&bad));
        let mut bad = good.clone();
        bad.insert("env".into(), "dev".into());
        assert!(!s.matches(&bad));
        let mut bad = good.clone();
        bad.remove("zone");
        assert!(!s.matches(&bad));
        let mut ok = good;
        ok.remove("track");
        assert!(s.matches(&ok), "notin matches a missing key");
    }

    #[test]
    fn label_numeric_and_errors() {
        let s = LabelSelector::parse("n>3,m<2").unwrap();
        assert!(s.matches(&labels(&[("n", "4"), ("m", "1")])));
        assert!(!s.matches(&labels(&[("n", "3"), ("m", "1")])));
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("a,,b").is_err());
        assert!(LabelSelector::parse("").unwrap().is_empty());
        let e = LabelSelector::parse("x y").unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = FieldSelector::parse(
            "spec.nodeName=n1,status.phase!=Failed",
            &["spec.nodeName", "status.phase"],
        )
        .unwrap();
        assert!(s.matches_object(&pod));
        let s = FieldSelector::parse("spec.nodeName=", &["spec.nodeName"]).unwrap();
        assert!(!s.matches_object(&pod));
        let s = FieldSelector::parse("metadata.name==p", &[]).unwrap();
        assert_eq!(s.pinned_name(), Some("p"));
        assert!(s.matches_object(&pod));
        let e = FieldSelector::parse("spec.foo=x", &["spec.nodeName"]).unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.foo");
        assert_eq!(e.code(), 400);
    }
}

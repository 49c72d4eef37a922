//! Name and metadata validation shared by all kinds: DNS-1123 labels and subdomains, qualified
//! names (label and annotation keys), label values, with Kubernetes' error texts.

use serde_json::Value;

use super::error::FieldError;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Problems with `value` as an RFC 1123 label (empty when valid).
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-');
    if !ok {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with `value` as an RFC 1123 subdomain (empty when valid).
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = !value.is_empty()
        && value.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && is_lower_alnum(b[0])
                && is_lower_alnum(b[b.len() - 1])
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        });
    if !ok {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Problems with `value` as a qualified name (`[prefix/]name`), e.g. a label key.
pub fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !name_part_ok(name) {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

/// Problems with `value` as a label value.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !name_part_ok(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// How a kind's object names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Label,
    Dns1123Subdomain,
    /// Any name usable as a path segment (RBAC: `system:basic-user`).
    PathSegment,
}

impl NameRule {
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Dns1123Label => dns1123_label(name),
            NameRule::Dns1123Subdomain => dns1123_subdomain(name),
            NameRule::PathSegment => path_segment(name),
        }
    }
}

/// Upstream's `path.IsValidPathSegmentName`.
fn path_segment(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// Validates the object's `metadata`: name, labels, annotation keys.
pub fn validate_metadata(obj: &Value, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    match meta["name"].as_str() {
        None | Some("") => errs.push(FieldError::required("metadata.name")),
        Some(name) => {
            for e in rule.check(name) {
                errs.push(FieldError::invalid("metadata.name", name, e));
            }
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            for e in qualified_name(k) {
                errs.push(FieldError::invalid("metadata.labels", k, e));
            }
            match v.as_str() {
                Some(s) => {
                    for e in label_value(s) {
                        errs.push(FieldError::invalid(format!("metadata.labels[{k}]"), s, e));
                    }
                }
                None => errs.push(FieldError::invalid_raw(
                    format!("metadata.labels[{k}]"),
                    v,
                    "must be a string",
                )),
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        for k in ann.keys() {
            for e in qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid("metadata.annotations", k, e));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(dns1123_label("my-name").is_empty());
        assert!(dns1123_label("123-abc").is_empty());
        assert!(!dns1123_label("My-name").is_empty());
        assert!(!dns1123_label("-a").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain("Bad_Name").is_empty());
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("example.com/My_Key.1").is_empty());
        assert!(!qualified_name("/x").is_empty());
        assert!(!qualified_name("Example.com/x").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_x").is_empty());
        assert!(!label_value("-x").is_empty());
        assert!(!label_value("a b").is_empty());
    }

    #[test]
    fn metadata_errors_have_field_paths() {
        let obj = serde_json::json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "fine", "k": "bad value"}}});
        let errs = validate_metadata(&obj, NameRule::Dns1123Subdomain);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(errs[0].to_string().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert_eq!(errs[1].field, "metadata.labels[k]");
        let none = serde_json::json!({"metadata": {}});
        assert_eq!(
            validate_metadata(&none, NameRule::Dns1123Label)[0].to_string(),
            "metadata.name: Required value"
        );
    }
}

//! Selector matching on typed objects: metav1 `LabelSelector` (pod affinity, topology spread,
//! PodDisruptionBudgets) and core `NodeSelectorTerm` (node affinity, with `matchFields` on
//! `metadata.name`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// Whether `labels` match `sel`. An empty selector matches everything; an unknown operator
/// matches nothing.
pub fn selector_matches(sel: &LabelSelector, labels: &Labels) -> bool {
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let got = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    })
}

/// An optional selector: `None` matches nothing (as for affinity terms without a selector).
pub fn opt_selector_matches(sel: Option<&LabelSelector>, labels: &Labels) -> bool {
    sel.is_some_and(|s| selector_matches(s, labels))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(|v| int(v)),
                values.first().and_then(|v| int(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// Whether a node (its labels and name) matches one term: every expression and every field
/// requirement holds. A term with neither matches nothing.
pub fn node_term_matches(term: &NodeSelectorTerm, labels: &Labels, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node_name.to_string();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(&name))
        })
}

/// Node names a term can only match (its `matchFields` `metadata.name In` list), if it pins any.
pub fn pinned_node_names(term: &NodeSelectorTerm) -> Option<Vec<String>> {
    term.match_fields
        .iter()
        .flatten()
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .map(|r| r.values.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_terms_table() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let term = |exprs: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>| {
            NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: Some(fields),
            }
        };
        let cases = [
            (term(vec![req("zone", "In", &["a", "b"])], vec![]), true),
            (term(vec![req("zone", "NotIn", &["a"])], vec![]), false),
            (term(vec![req("gpu", "NotIn", &["x"])], vec![]), true),
            (term(vec![req("zone", "Exists", &[])], vec![]), true),
            (term(vec![req("zone", "DoesNotExist", &[])], vec![]), false),
            (term(vec![req("cores", "Gt", &["4"])], vec![]), true),
            (term(vec![req("cores", "Lt", &["4"])], vec![]), false),
            (term(vec![req("zone", "Gt", &["4"])], vec![]), false),
            (
                term(vec![], vec![req("metadata.name", "In", &["n1"])]),
                true,
            ),
            (
                term(vec![], vec![req("metadata.name", "NotIn", &["n1"])]),
                false,
            ),
            (
                term(
                    vec![req("zone", "In", &["a"])],
                    vec![req("metadata.name", "In", &["n2"])],
                ),
                false,
            ),
            (term(vec![], vec![]), false),
        ];
        for (i, (t, want)) in cases.iter().enumerate() {
            assert_eq!(node_term_matches(t, &l, "n1"), *want, "case {i}");
        }
    }

    #[test]
    fn label_selectors_table() {
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(&LabelSelector::default(), &l));
        assert!(!opt_selector_matches(None, &l));
        assert!(selector_matches(&expr("app", "In", &["web"]), &l));
        assert!(!selector_matches(&expr("app", "NotIn", &["web"]), &l));
        assert!(selector_matches(&expr("db", "DoesNotExist", &[]), &l));
        let ml = LabelSelector {
            match_labels: Some(labels(&[("app", "db")])),
            ..Default::default()
        };
        assert!(!selector_matches(&ml, &l));
    }
}

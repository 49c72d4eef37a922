//! The taints the node lifecycle controller owns (`not-ready`, `unreachable`) and when a pod's
//! tolerations of a node's NoExecute taints run out.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::ready_condition;

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
const OWNED: [&str; 2] = [NOT_READY_TAINT, UNREACHABLE_TAINT];
const EFFECTS: [&str; 2] = ["NoSchedule", "NoExecute"];

/// The node with its owned taints matching its Ready condition (`unreachable` for Unknown,
/// `not-ready` for False, none for True); None when they already do. Taints someone else set
/// are kept; a kept taint keeps its timeAdded.
pub fn desired(node: &Node, now: Timestamp) -> Option<Node> {
    let want = match ready_condition(node).map(|c| c.status.as_str()) {
        Some("True") => None,
        Some("False") => Some(NOT_READY_TAINT),
        Some(_) => Some(UNREACHABLE_TAINT),
        // Never reported: left for the grace period to decide.
        None => return None,
    };
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !OWNED.contains(&t.key.as_str()) || Some(t.key.as_str()) == want)
        .cloned()
        .collect();
    if let Some(key) = want {
        for effect in EFFECTS {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    if taints == current {
        return None;
    }
    let mut node = node.clone();
    node.spec.get_or_insert_with(Default::default).taints = (!taints.is_empty()).then_some(taints);
    Some(node)
}

/// The node's NoExecute taints.
pub fn no_execute(node: &Node) -> impl Iterator<Item = &Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "NoExecute")
}

fn matches(t: &Toleration, taint: &Taint) -> bool {
    let exists = t.operator.as_deref() == Some("Exists");
    let key = t.key.as_deref().unwrap_or("");
    if key.is_empty() {
        if !exists {
            return false;
        }
    } else if key != taint.key {
        return false;
    }
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

/// When `pod` must leave `node` (at once when a NoExecute taint is not tolerated, after the
/// smallest tolerationSeconds of the tolerations used, counted from when the taints were
/// added); None when it may stay for ever.
pub fn eviction_time(node: &Node, pod: &Pod, now: Timestamp) -> Option<Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut seconds: Option<i64> = None;
    let mut since: Option<Timestamp> = None;
    for taint in no_execute(node) {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| matches(t, taint)).collect();
        if used.is_empty() {
            return Some(now);
        }
        for t in used {
            if let Some(s) = t.toleration_seconds {
                seconds = Some(seconds.map_or(s, |m| m.min(s)));
            }
        }
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        since = Some(since.map_or(added, |s| s.min(added)));
    }
    let seconds = seconds?.max(0);
    Some(since.unwrap_or(now) + SignedDuration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [], "tolerations": tolerations}
        }))
        .unwrap()
    }

    fn keys(n: &Node) -> Vec<(String, String)> {
        n.spec
            .as_ref()
            .unwrap()
            .taints
            .iter()
            .flatten()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    #[test]
    fn taints_follow_ready() {
        let now = Timestamp::now();
        let user = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let n = desired(&node("Unknown", user.clone()), now).unwrap();
        assert_eq!(
            keys(&n),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (UNREACHABLE_TAINT.into(), "NoSchedule".into()),
                (UNREACHABLE_TAINT.into(), "NoExecute".into()),
            ]
        );
        assert!(desired(&n, now).is_none(), "already in step");
        // Unknown → False swaps unreachable for not-ready.
        let mut f = n.clone();
        f.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        let f = desired(&f, now).unwrap();
        assert_eq!(
            keys(&f)[1..],
            [
                (NOT_READY_TAINT.to_string(), "NoSchedule".to_string()),
                (NOT_READY_TAINT.to_string(), "NoExecute".to_string()),
            ]
        );
        // Ready again: only the user's taint stays.
        let mut r = f.clone();
        r.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        let r = desired(&r, now).unwrap();
        assert_eq!(keys(&r), vec![("dedicated".into(), "NoSchedule".into())]);
    }

    #[test]
    fn eviction_times() {
        let now = Timestamp::now();
        let n = desired(&node("Unknown", json!([])), now).unwrap();
        let s = |secs: i64| Some(now + SignedDuration::from_secs(secs));
        assert_eq!(eviction_time(&n, &pod(json!([])), now), Some(now));
        let defaults = json!([
            {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]);
        assert_eq!(eviction_time(&n, &pod(defaults), now), s(300));
        let forever = json!([{"key": UNREACHABLE_TAINT, "operator": "Exists"}]);
        assert_eq!(eviction_time(&n, &pod(forever), now), None);
        let wildcard = json!([{"operator": "Exists", "tolerationSeconds": 7}]);
        assert_eq!(eviction_time(&n, &pod(wildcard), now), s(7));
        let other_key = json!([{"key": NOT_READY_TAINT, "operator": "Exists"}]);
        assert_eq!(eviction_time(&n, &pod(other_key), now), Some(now));
        let ready = node("True", json!([]));
        assert_eq!(eviction_time(&ready, &pod(json!([])), now), None);
    }
}

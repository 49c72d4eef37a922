//! How failed pods count: the Job's podFailurePolicy (FailJob / Ignore / Count on container
//! exit codes and pod conditions), when a pod finished, and the exponential back-off before
//! replacing failed pods.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;

/// What a failed pod means for its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counts toward backoffLimit (no rule matched, or a `Count` rule).
    Count,
    /// Neither counted nor fatal (an `Ignore` rule).
    Ignore,
    /// Fails the whole Job at once, with this message (a `FailJob` rule).
    FailJob(String),
}

/// Applies the policy's rules in order to a failed pod; the first match decides.
pub fn judge(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let action = rule.action.as_str();
        let message = if rule.on_exit_codes.is_some() {
            let Some((c, code)) = matching_container(rule, pod) else {
                continue;
            };
            format!(
                "Container {c} for pod {ns}/{name} failed with exit code {code} matching {action} rule at index {i}"
            )
        } else {
            let Some(ty) = matching_condition(rule, pod) else {
                continue;
            };
            format!("Pod {ns}/{name} has condition {ty} matching {action} rule at index {i}")
        };
        return match action {
            "FailJob" => Verdict::FailJob(message),
            "Ignore" => Verdict::Ignore,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// The type of the first pod condition a rule's `onPodConditions` matches.
fn matching_condition(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let have = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    rule.on_pod_conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|want| {
            have.iter()
                .any(|c| c.type_ == want.type_ && c.status == want.status)
        })
        .map(|want| want.type_.clone())
}

/// The first terminated container (init containers included) with a non-zero exit code the
/// rule's operator accepts.
fn matching_container(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<(String, i32)> {
    let req = rule.on_exit_codes.as_ref()?;
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in all {
        if req.container_name.as_ref().is_some_and(|n| *n != cs.name) {
            continue;
        }
        let Some(code) = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
        else {
            continue;
        };
        if code == 0 {
            continue;
        }
        let listed = req.values.contains(&code);
        let ok = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        if ok {
            return Some((cs.name.clone(), code));
        }
    }
    None
}

/// When a finished pod finished: its containers' latest `finishedAt`, else its latest
/// condition transition, else its creation.
pub fn finish_time(pod: &Pod) -> Option<jiff::Timestamp> {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let finished = containers
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished
        .or_else(|| {
            status
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
                .max()
        })
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The back-off before the next replacement after `failures` failures in a row:
/// `base · 2^(failures-1)`, at most `max`; zero without failures.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(30);
    base.saturating_mul(1u32 << shift).min(max)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn failed_pod(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": code, "finishedAt": "2024-01-01T00:00:05Z"}}}
            ]}
        }))
        .unwrap()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": rules})).unwrap()
    }

    #[test]
    fn rules_in_order() {
        let p = policy(json!([
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}
        ]));
        assert_eq!(
            judge(Some(&p), &failed_pod(42, json!([]))),
            Verdict::FailJob(
                "Container main for pod default/p failed with exit code 42 matching FailJob rule at index 0".into()
            )
        );
        let disrupted = failed_pod(137, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(judge(Some(&p), &disrupted), Verdict::Ignore);
        assert_eq!(judge(Some(&p), &failed_pod(1, json!([]))), Verdict::Count);
        assert_eq!(judge(None, &failed_pod(42, json!([]))), Verdict::Count);
    }

    #[test]
    fn not_in_ignores_exit_code_zero() {
        let p = policy(json!([
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [5]}}
        ]));
        assert_eq!(judge(Some(&p), &failed_pod(0, json!([]))), Verdict::Count);
        assert!(matches!(
            judge(Some(&p), &failed_pod(3, json!([]))),
            Verdict::FailJob(_)
        ));
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(0, s(10), s(360)), s(0));
        assert_eq!(backoff(1, s(10), s(360)), s(10));
        assert_eq!(backoff(3, s(10), s(360)), s(40));
        assert_eq!(backoff(7, s(10), s(360)), s(360));
        assert_eq!(backoff(100, s(10), s(360)), s(360));
    }

    #[test]
    fn finish_time_from_containers() {
        let t = finish_time(&failed_pod(1, json!([]))).unwrap();
        assert_eq!(t.to_string(), "2024-01-01T00:00:05Z");
    }
}

//! Helpers the controllers share: label selector matching, pod readiness/availability,
//! ownerReferences, Events about workload objects, and creating/deleting an owner's pods with
//! their Events (upstream's PodControl).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::{Metadata, Resource};

use crate::apiserver::registry::Registry;

/// The component name in Events, as kube-controller-manager's controllers report.
pub fn component(controller: &str) -> String {
    format!("{controller}-controller")
}

/// Whether `labels` satisfy `selector`. An empty selector matches nothing (apps/v1 rule for
/// controllers: a nil or empty selector selects no pods).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    let wanted = selector.match_labels.as_ref();
    if exprs.is_empty() && wanted.is_none_or(|m| m.is_empty()) {
        return false;
    }
    if let Some(m) = wanted
        && m.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    exprs.iter().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    })
}

pub fn is_terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Not finished and not being deleted (what upstream's FilterActivePods keeps).
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !is_terminating(&pod.metadata)
}

/// When the pod's Ready condition turned True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        cond.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0
            || since + jiff::SignedDuration::from_secs(min_ready_seconds.into()) <= now
    })
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum()
}

/// The controller ownerReference pointing at `owner`.
pub fn controller_ref_to<K: Resource + Metadata<Ty = ObjectMeta>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.metadata().name.clone().unwrap_or_default(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Records an Event about `obj` (best effort: a failure is only logged).
pub async fn record<K: Resource + Metadata<Ty = ObjectMeta>>(
    registry: &Registry,
    obj: &K,
    component: &str,
    type_: &str,
    reason: &str,
    message: String,
) {
    let now = jiff::Timestamp::now();
    let meta = obj.metadata();
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::API_VERSION.into()),
            kind: Some(K::KIND.into()),
            name: Some(name),
            namespace: Some(namespace),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    if let Err(e) = registry.create::<Event>(&event).await {
        tracing::debug!(error = %e, reason, "recording event failed");
    }
}

/// Creates a pod for `owner` and records SuccessfulCreate / FailedCreate on it, as upstream's
/// PodControl does for every workload controller.
pub async fn create_owned_pod<K: Resource + Metadata<Ty = ObjectMeta>>(
    registry: &Registry,
    owner: &K,
    component: &str,
    pod: &Pod,
) -> Result<Pod, super::ControllerError> {
    match registry.create(pod).await {
        Ok(pod) => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            tracing::info!(pod = %name, owner = K::KIND, "created pod");
            let msg = format!("Created pod: {name}");
            record(
                registry,
                owner,
                component,
                "Normal",
                "SuccessfulCreate",
                msg,
            )
            .await;
            Ok(pod)
        }
        Err(e) => {
            let msg = format!("Error creating: {e}");
            record(registry, owner, component, "Warning", "FailedCreate", msg).await;
            Err(e.into())
        }
    }
}

/// Deletes `pod` of `owner` by uid (so a same-named successor is safe; a pod already gone is
/// fine), with `grace` seconds if given, and records SuccessfulDelete / FailedDelete.
pub async fn delete_owned_pod<K: Resource + Metadata<Ty = ObjectMeta>>(
    registry: &Registry,
    owner: &K,
    component: &str,
    pod: &Pod,
    grace: Option<i64>,
) -> Result<(), super::ControllerError> {
    use crate::apiserver::registry::{DeleteParams, Preconditions};
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        },
        grace_period_seconds: grace,
        ..Default::default()
    };
    let ns = pod.metadata.namespace.as_deref();
    match super::not_found_ok(registry.delete::<Pod>(ns, &name, &params).await) {
        Ok(_) => {
            tracing::info!(pod = %name, owner = K::KIND, "deleted pod");
            let msg = format!("Deleted pod: {name}");
            record(
                registry,
                owner,
                component,
                "Normal",
                "SuccessfulDelete",
                msg,
            )
            .await;
            Ok(())
        }
        Err(e) => {
            let msg = format!("Error deleting: {e}");
            record(registry, owner, component, "Warning", "FailedDelete", msg).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(selector_matches(&sel, Some(&labels(&[("app", "web")]))));
        assert!(!selector_matches(
            &sel,
            Some(&labels(&[("app", "web"), ("tier", "db")]))
        ));
        assert!(!selector_matches(&sel, Some(&labels(&[("app", "api")]))));
        assert!(!selector_matches(
            &LabelSelector::default(),
            Some(&labels(&[("a", "b")]))
        ));
    }
}

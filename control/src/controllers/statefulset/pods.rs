//! A StatefulSet's pods: ordinals and stable names (`<set>-<ordinal>`), the identity labels
//! and hostname/subdomain, the pod for one ordinal at one revision, and the health predicates
//! the ordered algorithm waits on.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::common::{
    controller_ref_to, is_available, is_ready, is_terminating, phase,
};
use crate::controllers::daemonset::history::REVISION_HASH_LABEL;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// The ordinal of a pod named `<set>-<n>`, if it is one of `set`'s.
pub fn ordinal(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let (parent, n) = name.rsplit_once('-')?;
    if parent != set_name(set) || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok().filter(|n: &i32| *n >= 0)
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// The revision name a pod was made from.
pub fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_HASH_LABEL))
        .map(String::as_str)
}

/// The identity labels are right (upstream's identityMatches; the name already is).
pub fn identity_matches(pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_NAME_LABEL))
        .is_some_and(|v| v == name)
}

pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

pub fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

pub fn running_and_available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    running_and_ready(pod) && is_available(pod, min_ready, now)
}

pub fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !is_terminating(&pod.metadata)
}

/// The pod for `ordinal` from `template`, labelled with revision `revision`.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let name = pod_name(set, ordinal);
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

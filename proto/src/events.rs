//! core/v1 Events about pods, shaped like the ones Kubernetes components record, so
//! `kubectl describe pod` and `kubectl get events` read familiar. Used by the scheduler and the
//! agent.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// Who records an event: `component` (`kubelet`, `default-scheduler`) on `host` (a node name).
#[derive(Debug, Clone, Copy)]
pub struct Reporter<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

/// An Event about `pod` (and one of its containers, if given); `type_` is Normal or Warning.
pub fn pod_event(
    pod: &Pod,
    reporter: Reporter<'_>,
    container: Option<&str>,
    type_: &str,
    reason: &str,
    message: String,
) -> Event {
    let now = jiff::Timestamp::now();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta {
            // Unique per event, like client-go's `<object>.<unix nanos in hex>`.
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(namespace),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(reporter.component.into()),
            host: reporter.host.map(str::to_string),
        }),
        reporting_component: Some(reporter.component.into()),
        reporting_instance: reporter.host.map(str::to_string),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_the_pod_and_container() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.uid = Some("u1".into());
        let reporter = Reporter {
            component: "kubelet",
            host: Some("n1"),
        };
        let e = pod_event(
            &pod,
            reporter,
            Some("c"),
            "Normal",
            "Started",
            "Started container c".into(),
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.name.unwrap().starts_with("web."));
        assert_eq!(
            e.involved_object.field_path.as_deref(),
            Some("spec.containers{c}")
        );
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(e.source.unwrap().host.as_deref(), Some("n1"));
    }
}

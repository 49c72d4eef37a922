//! A Job's pods: sorting them into active / succeeded / failed / terminating, and making new
//! ones from the template (names, labels, ownerReference, and for Indexed Jobs the completion
//! index annotation, label, hostname and `JOB_COMPLETION_INDEX`).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::indexes::INDEX_KEY;
use crate::controllers::common::{self, controller_ref_to, is_terminating};

/// The Job's pods, by state.
#[derive(Debug, Default)]
pub struct PodSets {
    /// Running or pending, not being deleted.
    pub active: Vec<Pod>,
    /// Being deleted and not yet finished.
    pub terminating: Vec<Pod>,
    pub succeeded: Vec<Pod>,
    pub failed: Vec<Pod>,
}

impl PodSets {
    pub fn sort(pods: Vec<Pod>) -> Self {
        let mut sets = PodSets::default();
        for p in pods {
            match common::phase(&p) {
                "Succeeded" => sets.succeeded.push(p),
                "Failed" => sets.failed.push(p),
                _ if is_terminating(&p.metadata) => sets.terminating.push(p),
                _ => sets.active.push(p),
            }
        }
        sets
    }

    /// Active pods whose Ready condition is True.
    pub fn ready(&self) -> usize {
        self.active.iter().filter(|p| common::is_ready(p)).count()
    }

    /// Container restarts of the active pods (they count as failures with OnFailure).
    pub fn active_restarts(&self) -> u32 {
        self.active
            .iter()
            .map(|p| common::restarts(p).max(0) as u32)
            .sum()
    }
}

/// The labels every Job pod carries (added when the template lacks them).
fn job_labels(job: &Job) -> [(&'static str, String); 4] {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    [
        ("batch.kubernetes.io/job-name", name.clone()),
        ("job-name", name),
        ("batch.kubernetes.io/controller-uid", uid.clone()),
        ("controller-uid", uid),
    ]
}

/// A new pod for the Job; `index` for Indexed Jobs.
pub fn new_pod(job: &Job, index: Option<u32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let manual = job
        .spec
        .as_ref()
        .and_then(|s| s.manual_selector)
        .unwrap_or(false);
    if !manual {
        for (k, v) in job_labels(job) {
            labels.entry(k.into()).or_insert(v);
        }
    }
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            annotations.insert(INDEX_KEY.into(), i.to_string());
            labels.insert(INDEX_KEY.into(), i.to_string());
            spec.hostname = Some(format!("{name}-{i}"));
            spec.containers.iter_mut().for_each(add_index_env);
            spec.init_containers
                .iter_mut()
                .flatten()
                .for_each(add_index_env);
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `JOB_COMPLETION_INDEX` from the index annotation, unless the container sets it itself.
fn add_index_env(c: &mut Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
        return;
    }
    env.push(EnvVar {
        name: "JOB_COMPLETION_INDEX".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: format!("metadata.annotations['{INDEX_KEY}']"),
            }),
            ..Default::default()
        }),
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job() -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "template": {
                "metadata": {"labels": {"app": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }}
        }))
        .unwrap()
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let pod = new_pod(&job(), Some(3));
        let meta = &pod.metadata;
        assert_eq!(meta.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(meta.annotations.as_ref().unwrap()[INDEX_KEY], "3");
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[INDEX_KEY], "3");
        assert_eq!(labels["app"], "pi");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u1");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));

        let plain = new_pod(&job(), None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(plain.metadata.annotations.is_none());
    }
}

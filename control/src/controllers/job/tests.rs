//! Job controller behaviour over the in-memory registry, with an injected clock and a short
//! back-off; pods are finished by hand (standing in for the agent).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{Value, json};

use super::indexes::INDEX_KEY;
use super::{JobConfig, reconcile};
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use crate::controllers::runtime::{Action, ObjectKey};
use crate::controllers::testutil::{self, pods};

const CFG: JobConfig = JobConfig {
    backoff_base: Duration::from_secs(10),
    backoff_max: Duration::from_secs(360),
};

fn t(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn t0() -> jiff::Timestamp {
    t("2030-01-01T00:00:00Z")
}

fn after(secs: i64) -> jiff::Timestamp {
    t0() + jiff::SignedDuration::from_secs(secs)
}

async fn create_job(r: &Registry, name: &str, spec: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({
        "spec": {"restartPolicy": spec.get("restartPolicy").cloned().unwrap_or(json!("Never")),
                 "containers": [{"name": "main", "image": "busybox"}]}
    });
    if let Some(m) = spec.as_object_mut() {
        m.remove("restartPolicy");
    }
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .unwrap();
    r.create(&job).await.unwrap()
}

async fn sync(r: &Registry, name: &str, now: jiff::Timestamp) -> Action {
    reconcile(r, &CFG, &ObjectKey::new(Some("default"), name), now)
        .await
        .unwrap()
}

async fn get(r: &Registry, name: &str) -> Job {
    r.get::<Job>(Some("default"), name).await.unwrap()
}

fn active(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| crate::controllers::common::is_active(p))
        .collect()
}

/// Finishes a pod: phase Succeeded (code 0) or Failed, with a terminated container.
async fn finish(r: &Registry, pod: &Pod, code: i32, at: jiff::Timestamp) {
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let status = json!({"status": {"phase": phase, "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "finishedAt": at.to_string()}}
    }]}});
    let name = pod.metadata.name.as_deref().unwrap();
    r.patch_status::<Pod>(Some("default"), name, PatchType::Merge, &status)
        .await
        .unwrap();
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<(&'a str, &'a str)> {
    let c = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.as_str(), c.reason.as_deref().unwrap_or_default()))
}

async fn event_reasons(r: &Registry) -> Vec<String> {
    r.list::<Event>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn completions_with_parallelism() {
    let r = testutil::registry().await;
    create_job(&r, "five", json!({"completions": 5, "parallelism": 2})).await;
    let mut most_active = 0;
    for round in 0..10 {
        sync(&r, "five", after(round)).await;
        let all = pods(&r).await;
        let running = active(&all);
        most_active = most_active.max(running.len());
        if running.is_empty() {
            break;
        }
        let pod = running[0];
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "five");
        assert!(pod.metadata.name.as_ref().unwrap().starts_with("five-"));
        finish(&r, pod, 0, after(round)).await;
    }
    assert_eq!(most_active, 2);
    assert_eq!(pods(&r).await.len(), 5, "exactly five pods ran");
    let job = get(&r, "five").await;
    let st = job.status.clone().unwrap();
    assert_eq!(st.succeeded, Some(5));
    assert_eq!(st.active, Some(0));
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    assert_eq!(
        condition(&job, "SuccessCriteriaMet"),
        Some(("True", "CompletionsReached"))
    );
    assert_eq!(
        condition(&job, "Complete"),
        Some(("True", "CompletionsReached"))
    );
    let reasons = event_reasons(&r).await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "SuccessfulCreate").count(),
        5
    );
    assert!(reasons.contains(&"Completed".to_string()));
    // A finished Job makes no more pods.
    assert_eq!(sync(&r, "five", after(60)).await, Action::AwaitChange);
    assert_eq!(pods(&r).await.len(), 5);
}

#[tokio::test]
async fn failures_back_off_then_exceed_the_limit() {
    let r = testutil::registry().await;
    create_job(&r, "bad", json!({"backoffLimit": 1})).await;
    sync(&r, "bad", t0()).await;
    let first = pods(&r).await;
    assert_eq!(first.len(), 1);
    finish(&r, &first[0], 1, after(1)).await;
    // Within the 10 s back-off no replacement is made; the controller comes back at its end.
    let action = sync(&r, "bad", after(2)).await;
    assert_eq!(action, Action::Requeue(Duration::from_secs(9)));
    assert_eq!(pods(&r).await.len(), 1);
    assert_eq!(get(&r, "bad").await.status.unwrap().failed, Some(1));
    sync(&r, "bad", after(11)).await;
    let all = pods(&r).await;
    assert_eq!(all.len(), 2);
    let second = active(&all)[0].clone();
    finish(&r, &second, 1, after(12)).await;
    sync(&r, "bad", after(13)).await;
    let job = get(&r, "bad").await;
    assert_eq!(
        condition(&job, "FailureTarget"),
        Some(("True", "BackoffLimitExceeded"))
    );
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True", "BackoffLimitExceeded"))
    );
    assert_eq!(job.status.as_ref().unwrap().failed, Some(2));
    assert!(job.status.as_ref().unwrap().completion_time.is_none());
    assert!(
        event_reasons(&r)
            .await
            .contains(&"BackoffLimitExceeded".to_string())
    );
    assert_eq!(pods(&r).await.len(), 2);
}

#[tokio::test]
async fn indexed_jobs_fill_each_index_once() {
    let r = testutil::registry().await;
    create_job(
        &r,
        "idx",
        json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
    )
    .await;
    sync(&r, "idx", t0()).await;
    let all = pods(&r).await;
    let mut idx: Vec<String> = all
        .iter()
        .map(|p| p.metadata.annotations.as_ref().unwrap()[INDEX_KEY].clone())
        .collect();
    idx.sort();
    assert_eq!(idx, ["0", "1", "2"]);
    let by_index = |i: &str| {
        all.iter()
            .find(|p| p.metadata.annotations.as_ref().unwrap()[INDEX_KEY] == i)
            .unwrap()
            .clone()
    };
    finish(&r, &by_index("1"), 0, after(1)).await;
    finish(&r, &by_index("2"), 0, after(1)).await;
    // Index 0's pod vanishes (deleted by someone): a new pod takes index 0 again.
    let p0 = by_index("0");
    r.delete::<Pod>(
        Some("default"),
        p0.metadata.name.as_deref().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    sync(&r, "idx", after(2)).await;
    let job = get(&r, "idx").await;
    assert_eq!(
        job.status.as_ref().unwrap().completed_indexes.as_deref(),
        Some("1-2")
    );
    let now = pods(&r).await;
    let fresh = active(&now);
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].metadata.labels.as_ref().unwrap()[INDEX_KEY], "0");
    assert!(
        fresh[0]
            .metadata
            .name
            .as_ref()
            .unwrap()
            .starts_with("idx-0-")
    );
    finish(&r, fresh[0], 0, after(3)).await;
    sync(&r, "idx", after(4)).await;
    let job = get(&r, "idx").await;
    assert_eq!(
        job.status.as_ref().unwrap().completed_indexes.as_deref(),
        Some("0-2")
    );
    assert_eq!(
        condition(&job, "Complete"),
        Some(("True", "CompletionsReached"))
    );
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_stops_its_pods() {
    let r = testutil::registry().await;
    create_job(
        &r,
        "slow",
        json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 30}),
    )
    .await;
    let action = sync(&r, "slow", t0()).await;
    assert_eq!(action, Action::Requeue(Duration::from_secs(30)));
    assert_eq!(active(&pods(&r).await).len(), 2);
    sync(&r, "slow", after(31)).await;
    assert!(pods(&r).await.is_empty(), "active pods are deleted");
    let job = get(&r, "slow").await;
    assert_eq!(
        condition(&job, "FailureTarget"),
        Some(("True", "DeadlineExceeded"))
    );
    assert_eq!(
        condition(&job, "Failed"),
        None,
        "not before the pods are gone"
    );
    sync(&r, "slow", after(32)).await;
    let job = get(&r, "slow").await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True", "DeadlineExceeded"))
    );
}

#[tokio::test]
async fn suspend_and_resume() {
    let r = testutil::registry().await;
    create_job(&r, "s", json!({"suspend": true})).await;
    sync(&r, "s", t0()).await;
    assert!(pods(&r).await.is_empty());
    let job = get(&r, "s").await;
    assert_eq!(condition(&job, "Suspended"), Some(("True", "JobSuspended")));
    assert!(job.status.unwrap().start_time.is_none());
    r.patch::<Job>(
        Some("default"),
        "s",
        PatchType::Merge,
        &json!({"spec": {"suspend": false}}),
    )
    .await
    .unwrap();
    sync(&r, "s", after(5)).await;
    assert_eq!(pods(&r).await.len(), 1);
    let job = get(&r, "s").await;
    assert_eq!(condition(&job, "Suspended"), Some(("False", "JobResumed")));
    assert_eq!(job.status.unwrap().start_time.unwrap().0, after(5));
    let reasons = event_reasons(&r).await;
    assert!(reasons.contains(&"Suspended".to_string()) && reasons.contains(&"Resumed".to_string()));
}

#[tokio::test]
async fn ttl_deletes_the_finished_job() {
    let r = testutil::registry().await;
    create_job(&r, "ttl", json!({"ttlSecondsAfterFinished": 20})).await;
    sync(&r, "ttl", t0()).await;
    finish(&r, &pods(&r).await[0], 0, after(1)).await;
    let action = sync(&r, "ttl", after(2)).await;
    assert_eq!(action, Action::Requeue(Duration::from_secs(20)));
    assert_eq!(
        sync(&r, "ttl", after(10)).await,
        Action::Requeue(Duration::from_secs(12))
    );
    sync(&r, "ttl", after(22)).await;
    assert!(r.get::<Job>(Some("default"), "ttl").await.is_err());
}

#[tokio::test]
async fn pod_failure_policy_fails_or_ignores() {
    let r = testutil::registry().await;
    create_job(
        &r,
        "pfp",
        json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
        ]}}),
    )
    .await;
    sync(&r, "pfp", t0()).await;
    finish(&r, &pods(&r).await[0], 3, after(1)).await;
    sync(&r, "pfp", after(2)).await;
    let job = get(&r, "pfp").await;
    assert_eq!(
        condition(&job, "Failed"),
        None,
        "an ignored failure is not counted"
    );
    assert_eq!(job.status.unwrap().failed, Some(0));
    let all = pods(&r).await;
    assert_eq!(active(&all).len(), 1, "replaced without back-off");
    finish(&r, active(&all)[0], 42, after(3)).await;
    sync(&r, "pfp", after(4)).await;
    let job = get(&r, "pfp").await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True", "PodFailurePolicy"))
    );
    let msg = job
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap()
        .message
        .unwrap();
    assert!(
        msg.starts_with("Container main for pod default/pfp-"),
        "{msg}"
    );
    assert!(
        msg.ends_with("failed with exit code 42 matching FailJob rule at index 1"),
        "{msg}"
    );
}

#[tokio::test]
async fn restarts_count_with_on_failure() {
    let r = testutil::registry().await;
    create_job(
        &r,
        "of",
        json!({"backoffLimit": 2, "restartPolicy": "OnFailure"}),
    )
    .await;
    sync(&r, "of", t0()).await;
    let pod = pods(&r).await.remove(0);
    assert_eq!(
        pod.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("OnFailure")
    );
    let status = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}}
    }]}});
    r.patch_status::<Pod>(
        Some("default"),
        pod.metadata.name.as_deref().unwrap(),
        PatchType::Merge,
        &status,
    )
    .await
    .unwrap();
    sync(&r, "of", after(1)).await;
    assert!(pods(&r).await.is_empty(), "the running pod is stopped");
    sync(&r, "of", after(2)).await;
    let job = get(&r, "of").await;
    assert_eq!(
        condition(&job, "Failed"),
        Some(("True", "BackoffLimitExceeded"))
    );
}

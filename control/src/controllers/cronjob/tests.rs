//! CronJob controller behaviour over the in-memory registry with an injected clock: each test
//! pins `status.lastScheduleTime` to a fixed minute and moves `now` by hand.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use serde_json::{Value, json};

use super::{SCHEDULED_TIMESTAMP, job_name, reconcile};
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use crate::controllers::runtime::{Action, ObjectKey};
use crate::controllers::testutil;

fn t0() -> jiff::Timestamp {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn after(secs: i64) -> jiff::Timestamp {
    t0() + jiff::SignedDuration::from_secs(secs)
}

/// A CronJob whose last run was at `t0()`.
async fn create_cj(r: &Registry, name: &str, extra: Value) -> CronJob {
    let mut spec = json!({
        "schedule": "* * * * *",
        "jobTemplate": {
            "metadata": {"labels": {"run": name}},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .unwrap();
    r.create(&cj).await.unwrap();
    let status = json!({"status": {"lastScheduleTime": t0().to_string()}});
    r.patch_status::<CronJob>(Some("default"), name, PatchType::Merge, &status)
        .await
        .unwrap()
}

async fn sync(r: &Registry, name: &str, now: jiff::Timestamp) -> Action {
    reconcile(r, &ObjectKey::new(Some("default"), name), now)
        .await
        .unwrap()
}

async fn jobs(r: &Registry) -> Vec<Job> {
    r.list::<Job>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
}

async fn job_names(r: &Registry) -> Vec<String> {
    let mut names: Vec<String> = jobs(r)
        .await
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

async fn get(r: &Registry, name: &str) -> CronJob {
    r.get::<CronJob>(Some("default"), name).await.unwrap()
}

/// Marks a Job finished (`Complete` or `Failed`) at `at`.
async fn finish(r: &Registry, name: &str, how: &str, at: jiff::Timestamp) {
    let mut status = json!({"startTime": at.to_string(), "conditions": [
        {"type": how, "status": "True", "lastTransitionTime": at.to_string()}
    ]});
    if how == "Complete" {
        status["completionTime"] = json!(at.to_string());
    }
    r.patch_status::<Job>(
        Some("default"),
        name,
        PatchType::Merge,
        &json!({"status": status}),
    )
    .await
    .unwrap();
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
async fn runs_each_scheduled_minute_once() {
    let r = testutil::registry().await;
    create_cj(&r, "tick", json!({})).await;
    let action = sync(&r, "tick", after(30)).await;
    assert_eq!(action, Action::Requeue(Duration::from_millis(30_100)));
    assert!(
        jobs(&r).await.is_empty(),
        "nothing is due before the next minute"
    );

    sync(&r, "tick", after(61)).await;
    let first = job_name("tick", after(60));
    assert_eq!(first, format!("tick-{}", after(60).as_second() / 60));
    assert_eq!(job_names(&r).await, [first.as_str()]);
    let job = &jobs(&r).await[0];
    let meta = &job.metadata;
    assert_eq!(
        meta.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2030-01-01T00:01:00Z"
    );
    assert_eq!(meta.labels.as_ref().unwrap()["run"], "tick");
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("CronJob", Some(true))
    );
    let st = get(&r, "tick").await.status.unwrap();
    assert_eq!(st.last_schedule_time.unwrap().0, after(60));
    assert_eq!(st.active.unwrap()[0].name.as_deref(), Some(first.as_str()));

    // The same minute again starts nothing new.
    sync(&r, "tick", after(62)).await;
    assert_eq!(jobs(&r).await.len(), 1);
    assert!(
        event_reasons(&r)
            .await
            .contains(&"SuccessfulCreate".to_string())
    );
}

#[tokio::test]
async fn forbid_waits_for_the_running_job() {
    let r = testutil::registry().await;
    create_cj(&r, "fb", json!({"concurrencyPolicy": "Forbid"})).await;
    sync(&r, "fb", after(60)).await;
    sync(&r, "fb", after(120)).await;
    assert_eq!(jobs(&r).await.len(), 1, "the second run waits");
    assert!(
        event_reasons(&r)
            .await
            .contains(&"JobAlreadyActive".to_string())
    );
    finish(&r, &job_name("fb", after(60)), "Complete", after(125)).await;
    // The missed 00:02 run starts once the first is done.
    sync(&r, "fb", after(126)).await;
    assert_eq!(
        job_names(&r).await,
        [job_name("fb", after(60)), job_name("fb", after(120))]
    );
    let st = get(&r, "fb").await.status.unwrap();
    assert_eq!(st.last_successful_time.unwrap().0, after(125));
    assert_eq!(st.active.unwrap().len(), 1);
    assert!(
        event_reasons(&r)
            .await
            .contains(&"SawCompletedJob".to_string())
    );
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let r = testutil::registry().await;
    create_cj(&r, "rp", json!({"concurrencyPolicy": "Replace"})).await;
    sync(&r, "rp", after(60)).await;
    sync(&r, "rp", after(120)).await;
    assert_eq!(job_names(&r).await, [job_name("rp", after(120))]);
}

#[tokio::test]
async fn allow_runs_side_by_side() {
    let r = testutil::registry().await;
    create_cj(&r, "al", json!({})).await;
    sync(&r, "al", after(60)).await;
    sync(&r, "al", after(120)).await;
    assert_eq!(jobs(&r).await.len(), 2);
    assert_eq!(get(&r, "al").await.status.unwrap().active.unwrap().len(), 2);
}

#[tokio::test]
async fn starting_deadline_skips_late_runs() {
    let r = testutil::registry().await;
    create_cj(
        &r,
        "late",
        json!({"schedule": "*/10 * * * *", "startingDeadlineSeconds": 20}),
    )
    .await;
    // 00:10 was due 30 s ago, beyond the 20 s deadline.
    sync(&r, "late", after(630)).await;
    assert!(jobs(&r).await.is_empty());
    let r = testutil::registry().await;
    create_cj(
        &r,
        "late",
        json!({"schedule": "*/10 * * * *", "startingDeadlineSeconds": 60}),
    )
    .await;
    // Many runs missed, only the most recent one within the deadline starts.
    sync(&r, "late", after(3630)).await;
    assert_eq!(job_names(&r).await, [job_name("late", after(3600))]);
}

#[tokio::test]
async fn history_limits_prune_the_oldest() {
    let r = testutil::registry().await;
    create_cj(
        &r,
        "h",
        json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
    )
    .await;
    for m in 1..=4 {
        sync(&r, "h", after(60 * m)).await;
        let how = if m == 2 { "Failed" } else { "Complete" };
        finish(&r, &job_name("h", after(60 * m)), how, after(60 * m + 5)).await;
    }
    sync(&r, "h", after(60 * 4 + 10)).await;
    assert_eq!(
        job_names(&r).await,
        [job_name("h", after(120)), job_name("h", after(240))],
        "the newest success and the newest failure remain"
    );
}

#[tokio::test]
async fn suspended_cronjobs_start_nothing() {
    let r = testutil::registry().await;
    create_cj(&r, "sus", json!({"suspend": true})).await;
    assert_eq!(sync(&r, "sus", after(600)).await, Action::AwaitChange);
    assert!(jobs(&r).await.is_empty());
}

#[tokio::test]
async fn time_zone_shifts_the_schedule() {
    let r = testutil::registry().await;
    create_cj(
        &r,
        "tz",
        json!({"schedule": "0 1 * * *", "timeZone": "Europe/Berlin"}),
    )
    .await;
    // 01:00 in Berlin is 00:00 UTC on 2030-01-02.
    sync(&r, "tz", after(86_400)).await;
    let job = &jobs(&r).await[0];
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2030-01-02T01:00:00+01:00"
    );
}

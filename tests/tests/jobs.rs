//! Jobs and CronJobs end to end with the real kubectl and a real agent: a Job of 5 completions
//! with parallelism 2 (never more than 2 pods active, COMPLETIONS 5/5, `kubectl wait`,
//! `describe` Events), a failing Job that stops at its backoffLimit, and
//! `kubectl create job --from=cronjob/x`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const FIVE: &str = r#"{
  "apiVersion": "batch/v1", "kind": "Job",
  "metadata": {"name": "five"},
  "spec": {"completions": 5, "parallelism": 2, "template": {"spec": {
    "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "work", "image": "busybox", "command": ["sh", "-c", "sleep 1; echo done"]}]
  }}}
}"#;

const FAILING: &str = r#"{
  "apiVersion": "batch/v1", "kind": "Job",
  "metadata": {"name": "failing"},
  "spec": {"backoffLimit": 1, "template": {"spec": {
    "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "work", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]
  }}}
}"#;

/// `(name, phase, terminating)` of the pods of Job `job`.
fn job_pods(cluster: &Cluster, job: &str) -> Vec<(String, String, bool)> {
    let out = cluster
        .kubectl(&[
            "get",
            "pods",
            "-l",
            &format!("batch.kubernetes.io/job-name={job}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .stdout;
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let phase = w.next().unwrap_or("Pending").to_string();
            Some((name, phase, w.next().is_some()))
        })
        .collect()
}

fn job_field(cluster: &Cluster, job: &str, path: &str) -> String {
    cluster
        .kubectl(&["get", "job", job, "-o", &format!("jsonpath={path}")])
        .stdout
}

#[test]
fn jobs_and_cronjobs() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::start("jobs");
    cluster.wait_ready();
    let dir = cluster.dir.path();
    for (file, body) in [("five.json", FIVE), ("failing.json", FAILING)] {
        std::fs::write(dir.join(file), body).expect("writing manifest");
    }
    let five = dir.join("five.json");
    let failing = dir.join("failing.json");
    cluster.kubectl_ok(&["create", "-f", five.to_str().unwrap()]);
    cluster.kubectl_ok(&["create", "-f", failing.to_str().unwrap()]);
    // Far-off schedule: only the manual run below may start.
    cluster.kubectl_ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=0 0 1 1 *",
        "--",
        "sh",
        "-c",
        "echo tick",
    ]);
    cluster.kubectl_ok(&["create", "job", "manual", "--from=cronjob/tick"]);

    // Five completions, two at a time: poll the pods until the Job is complete.
    let start = Instant::now();
    let mut most_active = 0;
    let mut seen = BTreeSet::new();
    loop {
        let pods = job_pods(&cluster, "five");
        let active = pods
            .iter()
            .filter(|(_, phase, terminating)| {
                !terminating && phase != "Succeeded" && phase != "Failed"
            })
            .count();
        most_active = most_active.max(active);
        seen.extend(pods.into_iter().map(|(name, _, _)| name));
        let complete = job_field(
            &cluster,
            "five",
            "{.status.conditions[?(@.type==\"Complete\")].status}",
        );
        if complete == "True" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "job five did not complete: {}\n{}",
            cluster.kubectl(&["describe", "job", "five"]).stdout,
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(most_active <= 2, "saw {most_active} active pods at once");
    assert_eq!(most_active, 2, "the Job never ran two pods in parallel");
    assert_eq!(seen.len(), 5, "pods: {seen:?}");
    assert!(seen.iter().all(|n| n.starts_with("five-")), "{seen:?}");
    assert_eq!(job_field(&cluster, "five", "{.status.succeeded}"), "5");
    let wait = cluster.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=10s",
    ]);
    assert!(wait.contains("job.batch/five condition met"), "{wait}");
    let get = cluster.kubectl_ok(&["get", "jobs", "five"]);
    let row: Vec<&str> = get
        .lines()
        .find(|l| l.starts_with("five "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1).copied(), Some("5/5"), "{get}");
    assert!(
        row.get(2)
            .is_some_and(|d| d.ends_with('s') || d.ends_with('m')),
        "DURATION: {get}"
    );
    let describe = cluster.kubectl_ok(&["describe", "job", "five"]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
    assert!(describe.contains("Completed"), "{describe}");
    let logs = cluster.kubectl_ok(&["logs", "job/five"]);
    assert_eq!(logs.trim(), "done");

    // The failing Job: two failures with backoffLimit 1, then Failed.
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/failing",
        "--timeout=60s",
    ]);
    assert_eq!(
        job_field(
            &cluster,
            "failing",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(job_field(&cluster, "failing", "{.status.failed}"), "2");
    let pods = job_pods(&cluster, "failing");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods.iter().all(|(_, phase, _)| phase == "Failed"),
        "{pods:?}"
    );
    let describe = cluster.kubectl_ok(&["describe", "job", "failing"]);
    assert!(describe.contains("BackoffLimitExceeded"), "{describe}");

    // `kubectl create job --from=cronjob/tick` is a plain Job owned by the CronJob.
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);
    assert_eq!(
        job_field(
            &cluster,
            "manual",
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
        ),
        "CronJob/tick"
    );
    assert_eq!(
        job_field(
            &cluster,
            "manual",
            "{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"
        ),
        "manual"
    );
    assert_eq!(cluster.kubectl_ok(&["logs", "job/manual"]).trim(), "tick");
    let cj = cluster.kubectl_ok(&["get", "cronjob", "tick"]);
    assert!(cj.contains("0 0 1 1 *"), "{cj}");
    // The CronJob controller saw its child finish.
    wait_for("tick's lastSuccessfulTime", Duration::from_secs(30), || {
        let st = cluster
            .kubectl(&[
                "get",
                "cronjob",
                "tick",
                "-o",
                "jsonpath={.status.lastSuccessfulTime}",
            ])
            .stdout;
        (!st.trim().is_empty()).then_some(())
    });

    // Deleting a Job (background propagation) removes its pods through the garbage collector;
    // deleting the CronJob removes the Jobs it made.
    cluster.kubectl_ok(&["delete", "job", "five"]);
    wait_for(
        "five's pods to be collected",
        Duration::from_secs(60),
        || job_pods(&cluster, "five").is_empty().then_some(()),
    );
    cluster.kubectl_ok(&["delete", "cronjob", "tick"]);
    wait_for(
        "tick's job to be collected",
        Duration::from_secs(60),
        || {
            let jobs = cluster.kubectl(&["get", "jobs", "-o", "name"]).stdout;
            (!jobs.contains("job.batch/manual")).then_some(())
        },
    );
}

//! Deployments end to end with the real kubectl and a real agent: create, rollout status,
//! READY 2/2, scale, `set image` rolling to a new ReplicaSet, and cascading deletion.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

/// Non-terminating pods of the deployment, as `name image` lines.
fn web_pods(cluster: &Cluster) -> Vec<String> {
    let out = cluster
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .stdout;
    out.lines()
        .filter(|l| l.split_whitespace().count() == 2)
        .map(|l| l.trim().to_string())
        .collect()
}

fn replica_sets(cluster: &Cluster) -> Vec<String> {
    cluster
        .kubectl(&["get", "rs", "-l", "app=web", "-o", "name"])
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

fn all_web_pods(cluster: &Cluster) -> String {
    cluster
        .kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
        .stdout
}

#[test]
fn deployment_lifecycle() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let mut cluster = Cluster::start("deploy");
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "nodes"]).stdout;
        out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .then_some(())
    });
    // The namespace controller gives every namespace its default service account.
    wait_for(
        "the default service account",
        Duration::from_secs(30),
        || {
            cluster
                .kubectl(&["get", "serviceaccount", "default"])
                .ok
                .then_some(())
        },
    );

    cluster.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    ]);
    // `sleep` as PID 1 ignores SIGTERM: keep the grace period short so deletions are quick.
    cluster.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1}}}}"#,
    ]);
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let get = cluster.kubectl_ok(&["get", "deploy", "web"]);
    let row = get
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.get(1..4), Some(&["2/2", "2", "2"][..]), "{get}");
    assert_eq!(web_pods(&cluster).len(), 2);
    // One set, or two when the controller was quicker than the patch above.
    let rs_before = replica_sets(&cluster);
    assert!(matches!(rs_before.len(), 1 | 2), "{rs_before:?}");

    // Scale to 3.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=3"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    wait_for("READY 3/3", Duration::from_secs(60), || {
        let get = cluster.kubectl(&["get", "deploy", "web"]).stdout;
        get.contains(" 3/3 ").then_some(())
    });
    assert_eq!(replica_sets(&cluster), rs_before, "scaling keeps the set");

    // A new image rolls out through a new ReplicaSet.
    cluster.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:1.35"]);
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        status.contains("successfully rolled out"),
        "{status}\n{}",
        cluster.logs()
    );
    let sets = replica_sets(&cluster);
    assert_eq!(sets.len(), rs_before.len() + 1, "{sets:?}");
    let new_rs = sets
        .iter()
        .find(|s| !rs_before.contains(s))
        .expect("a new set");
    let desired = cluster.kubectl_ok(&["get", new_rs, "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(desired, "3");
    let revision = "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}";
    assert_eq!(
        cluster.kubectl_ok(&["get", new_rs, "-o", revision]),
        cluster.kubectl_ok(&["get", "deployment/web", "-o", revision]),
        "the new set carries the deployment's revision"
    );
    wait_for(
        "three pods of the new image",
        Duration::from_secs(60),
        || {
            let pods = web_pods(&cluster);
            (pods.len() == 3 && pods.iter().all(|p| p.ends_with(" busybox:1.35"))).then_some(())
        },
    );
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions = history
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(revisions, sets.len(), "{history}");

    // Undo goes back to the previous template, reusing its set.
    cluster.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert_eq!(
        replica_sets(&cluster).len(),
        sets.len(),
        "undo should reuse a set; set templates:\n{}\ndeployment template:\n{}",
        cluster
            .kubectl(&[
                "get",
                "rs",
                "-o",
                "jsonpath={range .items[*]}{.spec.template}{\"\\n\"}{end}"
            ])
            .stdout,
        cluster
            .kubectl(&["get", "deploy", "-o", "jsonpath={.items[0].spec.template}"])
            .stdout,
    );
    wait_for(
        "three pods of the old image",
        Duration::from_secs(60),
        || {
            let pods = web_pods(&cluster);
            (pods.len() == 3 && pods.iter().all(|p| p.ends_with(" busybox"))).then_some(())
        },
    );

    // Paused: a template change waits; resumed: it rolls. Restart makes yet another set.
    cluster.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    cluster.kubectl_ok(&["set", "image", "deployment/web", "busybox=busybox:1.35"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        replica_sets(&cluster).len(),
        sets.len(),
        "paused: no new set"
    );
    cluster.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    cluster.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert_eq!(
        replica_sets(&cluster).len(),
        sets.len() + 1,
        "restart adds a set"
    );

    // Deleting the deployment removes its sets and their pods.
    cluster.kubectl_ok(&["delete", "deployment", "web"]);
    wait_for("the sets to go", Duration::from_secs(30), || {
        replica_sets(&cluster).is_empty().then_some(())
    });
    wait_for("the pods to go", Duration::from_secs(60), || {
        all_web_pods(&cluster).trim().is_empty().then_some(())
    });

    cluster.stop_agent();
    let cleanup = cluster.cleanup_agent();
    assert!(cleanup.ok, "skiff-agent cleanup failed: {cleanup:?}");
    let leftovers = cluster.leftovers();
    assert!(leftovers.is_empty(), "left behind: {leftovers:#?}");
}

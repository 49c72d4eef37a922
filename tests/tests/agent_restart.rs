//! An agent that is killed and started again re-adopts the containers it left running: the pod
//! stays Running with the same container, and can still be deleted cleanly afterwards.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

#[test]
fn killed_agent_readopts_running_pods() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let mut cluster = Cluster::start("restart");
    let field = |c: &Cluster, path: &str| {
        c.kubectl(&["get", "pod", "sleeper", "-o", &format!("jsonpath={path}")])
            .stdout
    };
    cluster.kubectl_ok(&["run", "sleeper", "--image=busybox", "--", "sleep", "3600"]);
    wait_for("sleeper to run", Duration::from_secs(60), || {
        (field(&cluster, "{.status.phase}") == "Running").then_some(())
    });
    let container = field(&cluster, "{.status.containerStatuses[0].containerID}");
    assert!(container.starts_with("skiff://"), "{container:?}");

    // kill -9: no chance to clean anything up.
    cluster.kill_agent();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        cluster.pod_process_running("sleep 3600"),
        "the container must outlive its agent"
    );
    cluster.start_agent();
    // The new agent reports again; the container is the same one, not restarted.
    wait_for(
        "the restarted agent to report",
        Duration::from_secs(30),
        || {
            let ok = field(&cluster, "{.status.phase}") == "Running"
                && field(&cluster, "{.status.containerStatuses[0].containerID}") == container;
            ok.then_some(())
        },
    );
    assert_eq!(
        field(&cluster, "{.status.containerStatuses[0].restartCount}"),
        "0"
    );

    cluster.kubectl_ok(&["delete", "pod", "sleeper", "--grace-period=1"]);
    assert!(
        !cluster.pod_process_running("sleep 3600"),
        "the container should be gone after delete"
    );
}

#[test]
fn finished_pods_stay_finished_after_cleanup_and_restart() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let mut cluster = Cluster::start("rerun");
    let field = |c: &Cluster, path: &str| {
        c.kubectl(&["get", "pod", "once", "-o", &format!("jsonpath={path}")])
            .stdout
    };
    cluster.kubectl_ok(&[
        "run",
        "once",
        "--image=busybox",
        "--restart=Never",
        "--",
        "true",
    ]);
    wait_for("once to complete", Duration::from_secs(60), || {
        (field(&cluster, "{.status.phase}") == "Succeeded").then_some(())
    });
    let finished = "{.status.containerStatuses[0].state.terminated.finishedAt}";
    let finished_at = field(&cluster, finished);
    assert!(!finished_at.is_empty());

    // What `cargo xtask down` then `up` does to the node: everything local is gone.
    cluster.stop_agent();
    let cleanup = cluster.cleanup_agent();
    assert!(cleanup.ok, "{cleanup:?}");
    cluster.start_agent();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(field(&cluster, "{.status.phase}"), "Succeeded");
    assert_eq!(
        field(&cluster, finished),
        finished_at,
        "the pod must not run again"
    );
}

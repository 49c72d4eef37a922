//! Lifecycle hooks end to end: postStart runs in the container right after it starts, a failing
//! postStart kills it with a FailedPostStartHook event (and the restart policy restarts it),
//! and preStop runs before SIGTERM when the pod is deleted.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'echo GOT-TERM; sleep 2; exit 0' TERM; while [ ! -f /tmp/post ]; do sleep 0.1; done; echo post=$(cat /tmp/post); while true; do sleep 0.2; done"]
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo from-hook > /tmp/post"]
      preStop:
        exec:
          command: ["sh", "-c", "echo PRESTOP-RAN > /proc/1/fd/1; sleep 3"]
---
apiVersion: v1
kind: Pod
metadata:
  name: badhook
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo nope; exit 7"]
"#;

#[test]
fn lifecycle_hooks_run_around_the_container() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("hooks");
    cluster.create_yaml("objects.yaml", OBJECTS);

    // postStart ran inside the container.
    wait_for("the postStart file", Duration::from_secs(90), || {
        let logs = cluster.kubectl(&["logs", "hooks"]).stdout;
        logs.contains("post=from-hook").then_some(())
    });

    // A failing postStart: the event, and the container is restarted.
    let events = wait_for("FailedPostStartHook", Duration::from_secs(90), || {
        let out = cluster
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=badhook",
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ])
            .stdout;
        out.contains("FailedPostStartHook").then_some(out)
    });
    assert!(
        events.contains(
            "FailedPostStartHook: Exec lifecycle hook ([sh -c echo nope; exit 7]) for Container \"app\" in Pod \"badhook_default("
        ),
        "{events}"
    );
    wait_for("badhook to be restarted", Duration::from_secs(90), || {
        let n = cluster
            .kubectl(&[
                "get",
                "pod",
                "badhook",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ])
            .stdout;
        (n.parse::<i32>().unwrap_or(0) >= 1).then_some(())
    });

    // preStop runs before SIGTERM when the pod is deleted.
    cluster.kubectl_ok(&["delete", "pod", "hooks", "--wait=false"]);
    let logs = wait_for("the preStop hook", Duration::from_secs(30), || {
        let logs = cluster.kubectl(&["logs", "hooks"]).stdout;
        logs.contains("PRESTOP-RAN").then_some(logs)
    });
    assert!(
        !logs.contains("GOT-TERM"),
        "SIGTERM came before preStop ended: {logs}"
    );
    let logs = wait_for("SIGTERM after preStop", Duration::from_secs(30), || {
        let logs = cluster.kubectl(&["logs", "hooks"]).stdout;
        logs.contains("GOT-TERM").then_some(logs)
    });
    let pre = logs.find("PRESTOP-RAN").unwrap();
    let term = logs.find("GOT-TERM").unwrap();
    assert!(pre < term, "{logs}");
}

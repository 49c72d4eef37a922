//! `kubectl logs` end to end: --tail, --timestamps, --limit-bytes, --since, -c and
//! --all-containers, -f until the container exits, and --previous after a restart.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo err-line >&2; sleep 0.5; for i in 1 2 3 4 5; do echo line-$i; done; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: duo
spec:
  containers:
  - name: a
    image: busybox
    command: ["sh", "-c", "echo from-a; sleep 3600"]
  - name: b
    image: busybox
    command: ["sh", "-c", "echo from-b; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: counter
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "sleep 2; for i in 1 2 3 4 5 6 7 8; do echo tick-$i; sleep 0.3; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo attempt-started; sleep 2; echo attempt-ending; exit 1"]
"#;

#[test]
fn kubectl_logs_options() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("logs");
    cluster.create_yaml("objects.yaml", OBJECTS);
    wait_for("talker's output", Duration::from_secs(90), || {
        let logs = cluster.kubectl(&["logs", "talker"]).stdout;
        logs.contains("line-5").then_some(())
    });

    // -f follows a running container until it exits, and sees every line.
    wait_for("counter to run", Duration::from_secs(60), || {
        let phase = cluster
            .kubectl(&["get", "pod", "counter", "-o", "jsonpath={.status.phase}"])
            .stdout;
        (phase == "Running").then_some(())
    });
    let followed = cluster.kubectl_ok(&["logs", "-f", "counter"]);
    let ticks: Vec<&str> = followed.lines().collect();
    assert_eq!(
        ticks,
        (1..=8).map(|i| format!("tick-{i}")).collect::<Vec<_>>(),
        "{followed}"
    );

    let all = cluster.kubectl_ok(&["logs", "talker"]);
    assert_eq!(all, "err-line\nline-1\nline-2\nline-3\nline-4\nline-5\n");
    assert_eq!(
        cluster.kubectl_ok(&["logs", "talker", "--tail=2"]),
        "line-4\nline-5\n"
    );
    let stamped = cluster.kubectl_ok(&["logs", "talker", "--tail=1", "--timestamps"]);
    let (stamp, text) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "line-5");
    assert!(
        stamp.len() == "2026-01-01T00:00:00.000000000Z".len()
            && stamp.as_bytes()[10] == b'T'
            && stamp.ends_with('Z'),
        "{stamped}"
    );
    assert_eq!(
        cluster.kubectl_ok(&["logs", "talker", "--limit-bytes=12"]),
        "err-line\nlin"
    );
    assert_eq!(cluster.kubectl_ok(&["logs", "talker", "--since=1s"]), "");
    assert!(
        cluster
            .kubectl_ok(&["logs", "talker", "--since=1h"])
            .contains("line-5")
    );

    // -c picks one container; --all-containers shows both.
    wait_for("duo's output", Duration::from_secs(60), || {
        let logs = cluster.kubectl(&["logs", "duo", "-c", "b"]).stdout;
        (logs == "from-b\n").then_some(())
    });
    assert_eq!(cluster.kubectl_ok(&["logs", "duo", "-c", "a"]), "from-a\n");
    let both = cluster.kubectl_ok(&["logs", "duo", "--all-containers"]);
    assert!(both.contains("from-a") && both.contains("from-b"), "{both}");

    // --previous: the last terminated attempt's log, after a restart.
    wait_for("crasher to restart", Duration::from_secs(90), || {
        let n = cluster
            .kubectl(&[
                "get",
                "pod",
                "crasher",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ])
            .stdout;
        (n.parse::<i32>().unwrap_or(0) >= 1).then_some(())
    });
    let previous = cluster.kubectl_ok(&["logs", "crasher", "--previous"]);
    assert_eq!(previous, "attempt-started\nattempt-ending\n");
    let out = cluster.kubectl(&["logs", "talker", "--previous"]);
    assert!(!out.ok, "no previous attempt: {}", out.stdout);
}

//! Node lifecycle end to end: an agent that stops heartbeating gets its node marked Unknown and
//! tainted `unreachable` and its pods marked not Ready; a pod whose toleration runs out is
//! evicted, and the node (and its pods) come back Ready without the taints when the agent
//! starts again.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: short
spec:
  terminationGracePeriodSeconds: 1
  tolerations:
  - key: node.kubernetes.io/unreachable
    operator: Exists
    effect: NoExecute
    tolerationSeconds: 5
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: steady
spec:
  terminationGracePeriodSeconds: 1
  tolerations:
  - key: node.kubernetes.io/unreachable
    operator: Exists
    effect: NoExecute
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
"#;

#[test]
fn silent_node_is_tainted_and_its_pods_evicted() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    // The agent heartbeats every 10 s; 20 s is two missed beats.
    let mut cluster = Cluster::start_with("nodelife", &["--node-monitor-grace-period", "20s"]);
    let manifest = cluster.dir.path().join("short.yaml");
    std::fs::write(&manifest, POD).expect("writing manifest");
    cluster.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let get = |c: &Cluster, kind: &str, name: &str, path: &str| {
        c.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")])
            .stdout
    };
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    let taints = "{.spec.taints[*].key}";
    let pod_ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    wait_for("short and steady to run", Duration::from_secs(60), || {
        (get(&cluster, "pod", "short", "{.status.phase}") == "Running"
            && get(&cluster, "pod", "steady", pod_ready) == "True")
            .then_some(())
    });
    assert_eq!(get(&cluster, "node", "skiff-e2e", ready), "True");

    cluster.kill_agent();
    wait_for("the node to go Unknown", Duration::from_secs(60), || {
        (get(&cluster, "node", "skiff-e2e", ready) == "Unknown").then_some(())
    });
    let reason = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    assert_eq!(
        get(&cluster, "node", "skiff-e2e", reason),
        "NodeStatusUnknown"
    );
    assert!(
        get(&cluster, "node", "skiff-e2e", taints).contains("node.kubernetes.io/unreachable"),
        "no unreachable taint"
    );
    // Pods of a silent node stop being Ready (so endpoints drop them); steady tolerates the
    // taint for ever and stays.
    wait_for(
        "steady to be marked not ready",
        Duration::from_secs(15),
        || (get(&cluster, "pod", "steady", pod_ready) == "False").then_some(()),
    );
    // Evicted after its 5 s toleration: marked for deletion (the node is away, so it stays
    // Terminating until the agent is back).
    wait_for("short to be evicted", Duration::from_secs(30), || {
        let out = cluster.kubectl(&[
            "get",
            "pod",
            "short",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        (!out.ok || !out.stdout.is_empty()).then_some(())
    });
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=short",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("TaintManagerEviction"),
        "no TaintManagerEviction event: {events}"
    );

    cluster.start_agent();
    wait_for(
        "the node to be Ready again",
        Duration::from_secs(60),
        || {
            let back = get(&cluster, "node", "skiff-e2e", ready) == "True"
                && get(&cluster, "node", "skiff-e2e", taints).is_empty();
            back.then_some(())
        },
    );
    wait_for("short to be gone", Duration::from_secs(60), || {
        (!cluster.kubectl(&["get", "pod", "short"]).ok).then_some(())
    });
    // The agent, back, posts the truth about steady again.
    wait_for("steady to be Ready again", Duration::from_secs(30), || {
        (get(&cluster, "pod", "steady", pod_ready) == "True").then_some(())
    });
}

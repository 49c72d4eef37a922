//! Hollow nodes (`skiff-agent hollow`) against a real control plane: a fleet registers and goes
//! Ready, a Deployment's pods spread over it and run, and when one fleet stops heartbeating its
//! pods are evicted after their toleration and replaced on the nodes that are left.

use std::collections::BTreeMap;
use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      containers:
      - name: c
        image: busybox
        resources:
          requests: {cpu: 100m, memory: 64Mi}
"#;

fn ready_nodes(cluster: &Cluster) -> usize {
    cluster
        .kubectl(&["get", "nodes", "--no-headers"])
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
        .count()
}

/// Running, non-terminating web pods per node.
fn running_per_node(cluster: &Cluster) -> BTreeMap<String, usize> {
    let out = cluster.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    let mut per_node = BTreeMap::new();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [node, "Running"] = fields.as_slice() {
            *per_node.entry(node.to_string()).or_default() += 1;
        }
    }
    per_node
}

fn total(per_node: &BTreeMap<String, usize>) -> usize {
    per_node.values().sum()
}

#[test]
fn hollow_fleet_runs_and_reschedules_a_deployment() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let mut cluster =
        Cluster::control_plane_with("hollow", &["--node-monitor-grace-period", "20s"]);
    cluster.start_hollow("a-", 1, 10);
    wait_for(
        "hollow node a-00000 to be Ready",
        Duration::from_secs(30),
        || (ready_nodes(&cluster) == 1).then_some(()),
    );
    let manifest = cluster.dir.path().join("web.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("writing manifest");
    cluster.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    wait_for("5 pods running on a-00000", Duration::from_secs(30), || {
        (running_per_node(&cluster).get("a-00000") == Some(&5)).then_some(())
    });

    cluster.start_hollow("b-", 30, 10);
    wait_for("31 Ready nodes", Duration::from_secs(60), || {
        (ready_nodes(&cluster) == 31).then_some(())
    });
    cluster.kubectl_ok(&["scale", "deployment", "web", "--replicas=60"]);
    let spread = wait_for("60 pods running", Duration::from_secs(60), || {
        let per_node = running_per_node(&cluster);
        (total(&per_node) == 60).then_some(per_node)
    });
    assert!(
        spread.len() >= 10,
        "the scheduler spreads pods over the fleet: {spread:?}"
    );

    // Fleet a stops heartbeating: its node goes Unknown, is tainted unreachable, and its pods
    // are evicted after their 5 s toleration and replaced on the b nodes.
    cluster.kill_hollow("a-");
    let after = wait_for(
        "a-00000's pods to be replaced",
        Duration::from_secs(90),
        || {
            let per_node = running_per_node(&cluster);
            (total(&per_node) == 60 && !per_node.contains_key("a-00000")).then_some(per_node)
        },
    );
    assert!(after.keys().all(|n| n.starts_with("b-")), "{after:?}");
    let taints = cluster
        .kubectl(&[
            "get",
            "node",
            "a-00000",
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ])
        .stdout;
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "taints of the silent node: {taints}"
    );
}

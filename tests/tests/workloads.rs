//! DaemonSets and StatefulSets end to end with the real kubectl and a real agent: a DaemonSet
//! becomes 1/1 ready, `rollout status`, `set image`, `rollout history` and `rollout undo` work
//! through ControllerRevisions; a StatefulSet of two creates db-0 then db-1 (after db-0 is
//! ready), each pod's hostname is its name, and scaling down removes db-1. On a hollow fleet a
//! DaemonSet puts one pod on every node but a tainted one, bound where its affinity pins it.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const DAEMONSET: &str = r#"{
  "apiVersion": "apps/v1",
  "kind": "DaemonSet",
  "metadata": {"name": "agent"},
  "spec": {
    "selector": {"matchLabels": {"app": "agent"}},
    "template": {
      "metadata": {"labels": {"app": "agent"}},
      "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]
      }
    }
  }
}"#;

const STATEFULSET: &str = r#"{
  "apiVersion": "apps/v1",
  "kind": "StatefulSet",
  "metadata": {"name": "db"},
  "spec": {
    "replicas": 2,
    "serviceName": "db",
    "selector": {"matchLabels": {"app": "db"}},
    "template": {
      "metadata": {"labels": {"app": "db"}},
      "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]
      }
    }
  }
}"#;

/// Images of the live pods labelled `selector`.
fn images(cluster: &Cluster, selector: &str) -> Vec<String> {
    let out = cluster
        .kubectl(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .stdout;
    out.lines()
        .filter(|l| l.split_whitespace().count() == 1)
        .map(|l| l.trim().to_string())
        .collect()
}

fn field(cluster: &Cluster, object: &str, path: &str) -> String {
    cluster.kubectl_ok(&["get", object, "-o", &format!("jsonpath={path}")])
}

#[test]
fn daemonset_and_statefulset() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::start("workloads");
    cluster.wait_ready();
    let dir = cluster.dir.path();
    std::fs::write(dir.join("ds.json"), DAEMONSET).expect("writing manifest");
    std::fs::write(dir.join("sts.json"), STATEFULSET).expect("writing manifest");
    let ds_file = dir.join("ds.json");
    let sts_file = dir.join("sts.json");

    // DaemonSet: one pod on the one node, DESIRED CURRENT READY 1 1 1.
    cluster.kubectl_ok(&["apply", "-f", ds_file.to_str().unwrap()]);
    let status = cluster.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let get = cluster.kubectl_ok(&["get", "ds", "agent"]);
    let row = get
        .lines()
        .find(|l| l.starts_with("agent "))
        .unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols.get(1..6),
        Some(&["1", "1", "1", "1", "1"][..]),
        "{get}"
    );
    let node = field(&cluster, "pods", "{.items[0].spec.nodeName}");
    assert!(!node.is_empty(), "the scheduler bound the daemon pod");

    // A new image rolls through a second revision; undo goes back to the first.
    cluster.kubectl_ok(&["set", "image", "ds/agent", "c=busybox:1.35"]);
    cluster.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    wait_for("the new image", Duration::from_secs(30), || {
        (images(&cluster, "app=agent") == ["busybox:1.35"]).then_some(())
    });
    let history = cluster.kubectl_ok(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let listed = cluster.kubectl_ok(&["get", "controllerrevisions", "-l", "app=agent"]);
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.contains(" daemonset.apps/agent "))
            .count(),
        2,
        "{listed}"
    );
    cluster.kubectl_ok(&["rollout", "undo", "ds/agent"]);
    cluster.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    wait_for("the old image again", Duration::from_secs(30), || {
        (images(&cluster, "app=agent") == ["busybox"]).then_some(())
    });
    let history = cluster.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.lines().any(|l| l.starts_with('3')),
        "undo makes the old revision the newest: {history}"
    );

    // StatefulSet: db-0, then db-1 once db-0 is ready.
    cluster.kubectl_ok(&["apply", "-f", sts_file.to_str().unwrap()]);
    let status = cluster.kubectl_ok(&["rollout", "status", "sts/db", "--timeout=60s"]);
    assert!(status.contains("complete"), "{status}");
    let get = cluster.kubectl_ok(&["get", "sts", "db"]);
    assert!(
        get.lines()
            .any(|l| l.starts_with("db ") && l.contains(" 2/2 ")),
        "{get}"
    );
    let ready_at = field(
        &cluster,
        "pod/db-0",
        "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
    );
    let db1_created = field(&cluster, "pod/db-1", "{.metadata.creationTimestamp}");
    assert!(
        !ready_at.is_empty() && db1_created >= ready_at,
        "db-1 ({db1_created}) was created before db-0 was ready ({ready_at})"
    );
    let creates: Vec<String> = cluster
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=db",
            "--sort-by=.metadata.name",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ])
        .lines()
        .filter(|l| l.starts_with("create Pod"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        creates,
        [
            "create Pod db-0 in StatefulSet db successful",
            "create Pod db-1 in StatefulSet db successful"
        ]
    );
    for pod in ["db-0", "db-1"] {
        let hostname = cluster.kubectl_ok(&["exec", pod, "--", "hostname"]);
        assert_eq!(hostname.trim(), pod);
    }

    // Scaling down removes the highest ordinal.
    cluster.kubectl_ok(&["scale", "sts/db", "--replicas=1"]);
    wait_for("db-1 to go", Duration::from_secs(30), || {
        let out = cluster
            .kubectl(&["get", "pods", "-l", "app=db", "-o", "name"])
            .stdout;
        (out.trim() == "pod/db-0").then_some(())
    });
    cluster.kubectl_ok(&["rollout", "status", "sts/db", "--timeout=30s"]);
}

/// `node pod` for every running pod of the DaemonSet, from the real scheduler's binds.
fn daemon_pods_by_node(cluster: &Cluster) -> Vec<(String, String)> {
    let out = cluster
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}{\"\\n\"}{end}",
        ])
        .stdout;
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let (a, b) = l.trim().split_once(' ')?;
            Some((a.to_string(), b.to_string()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn daemonset_covers_a_hollow_fleet() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let mut cluster = Cluster::control_plane_only("ds-hollow");
    cluster.start_hollow("h-", 20, 10);
    wait_for("20 Ready nodes", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "nodes", "--no-headers"]).stdout;
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 20).then_some(())
    });
    // One node is reserved: the DaemonSet does not tolerate its taint.
    cluster.kubectl_ok(&["taint", "node", "h-00007", "dedicated=db:NoSchedule"]);
    let manifest = cluster.dir.path().join("ds.json");
    std::fs::write(&manifest, DAEMONSET).expect("writing manifest");
    cluster.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let status = cluster.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let placed = wait_for("19 running daemon pods", Duration::from_secs(30), || {
        let v = daemon_pods_by_node(&cluster);
        (v.len() == 19).then_some(v)
    });
    for (bound, pinned) in &placed {
        assert_eq!(bound, pinned, "bound where the affinity pins it");
    }
    let nodes: Vec<&str> = placed.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!nodes.contains(&"h-00007"), "{nodes:?}");
    let mut unique = nodes.clone();
    unique.dedup();
    assert_eq!(unique.len(), 19, "one pod per node: {nodes:?}");
    let get = cluster.kubectl_ok(&["get", "ds", "agent", "--no-headers"]);
    let cols: Vec<&str> = get.split_whitespace().collect();
    assert_eq!(
        cols.get(1..6),
        Some(&["19", "19", "19", "19", "19"][..]),
        "{get}"
    );
    // Deleting the DaemonSet collects its pods and its revision history.
    cluster.kubectl_ok(&["delete", "ds", "agent"]);
    wait_for(
        "the daemon pods and revisions to go",
        Duration::from_secs(60),
        || {
            let left = daemon_pods_by_node(&cluster).len();
            let revisions = cluster
                .kubectl(&["get", "controllerrevisions", "-o", "name"])
                .stdout;
            (left == 0 && revisions.trim().is_empty()).then_some(())
        },
    );
}

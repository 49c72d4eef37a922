//! Probes end to end with the real kubectl: an exec readiness probe holds READY at 0/1 until
//! the container creates its file, an httpGet readiness probe (named port, pod IP over the
//! bridge) and a passing tcpSocket liveness probe make a pod ready without restarts, and a
//! failing liveness probe restarts its container with the kubelet's events.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: becomes-ready
spec:
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "sleep 6; touch /tmp/ready; sleep 3600"]
    readinessProbe:
      exec:
        command: ["test", "-f", "/tmp/ready"]
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet:
        path: /index.html
        port: http
      periodSeconds: 1
    livenessProbe:
      tcpSocket:
        port: 8080
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: unhealthy
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    livenessProbe:
      exec:
        command: ["test", "-f", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 2
"#;

/// The READY and STATUS columns of `kubectl get pod <name>`.
fn ready_and_status(cluster: &Cluster, name: &str) -> (String, String) {
    let out = cluster
        .kubectl(&["get", "pod", name, "--no-headers"])
        .stdout;
    let cols: Vec<&str> = out.split_whitespace().collect();
    (
        cols.get(1).unwrap_or(&"").to_string(),
        cols.get(2).unwrap_or(&"").to_string(),
    )
}

fn field(cluster: &Cluster, name: &str, path: &str) -> String {
    cluster
        .kubectl(&["get", "pod", name, "-o", &format!("jsonpath={path}")])
        .stdout
}

#[test]
fn probes_drive_readiness_and_restarts() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("probes");
    cluster.create_yaml("pods.yaml", PODS);

    // Exec readiness: running but not ready until the file exists.
    wait_for(
        "becomes-ready to run unready",
        Duration::from_secs(60),
        || {
            (ready_and_status(&cluster, "becomes-ready") == ("0/1".into(), "Running".into()))
                .then_some(())
        },
    );
    assert_eq!(
        field(
            &cluster,
            "becomes-ready",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    wait_for("becomes-ready to be ready", Duration::from_secs(30), || {
        (ready_and_status(&cluster, "becomes-ready") == ("1/1".into(), "Running".into()))
            .then_some(())
    });
    for cond in ["Ready", "ContainersReady"] {
        assert_eq!(
            field(
                &cluster,
                "becomes-ready",
                &format!("{{.status.conditions[?(@.type==\"{cond}\")].status}}")
            ),
            "True"
        );
    }

    // httpGet readiness to the pod IP on a named port, tcpSocket liveness passing.
    wait_for("web to be ready", Duration::from_secs(60), || {
        (ready_and_status(&cluster, "web") == ("1/1".into(), "Running".into())).then_some(())
    });

    // A failing liveness probe: killed, restarted, lastState terminated, events recorded.
    wait_for("unhealthy to be restarted", Duration::from_secs(60), || {
        let restarts: u32 = field(
            &cluster,
            "unhealthy",
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse()
        .unwrap_or(0);
        (restarts >= 1).then_some(())
    });
    let last = field(
        &cluster,
        "unhealthy",
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(
        last, "137",
        "sleep ignores SIGTERM: killed after the 1 s grace"
    );
    let events: String = cluster
        .kubectl_ok(&[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name} {.reason}: {.message}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|l| l.strip_prefix("unhealthy "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        events.contains("Unhealthy: Liveness probe failed: "),
        "{events}"
    );
    assert!(
        events.contains("Killing: Container app failed liveness probe, will be restarted"),
        "{events}"
    );
    assert_eq!(
        field(
            &cluster,
            "web",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0",
        "a passing liveness probe never restarts"
    );

    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "becomes-ready",
        "web",
        "unhealthy",
        "--grace-period=1",
    ]);
}

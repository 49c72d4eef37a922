//! End-to-end: the real `/usr/bin/kubectl` (1.27, 1.30, 1.33 via the server's reported minor)
//! against the router served over TLS on 127.0.0.1, with a generated kubeconfig.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::json;

use super::registry::{WriteParams, resource};
use super::{ApiError, LogRequest, NodeStreams};
use crate::apiserver::test_server::TestServer;

/// Serves fixed log lines and remembers nothing; enough to see kubectl's request arrive.
struct FakeLogs;

#[async_trait::async_trait]
impl NodeStreams for FakeLogs {
    async fn logs(
        &self,
        node: &str,
        req: LogRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        let text = format!(
            "log of {}/{} container {} on {node} tail={:?}\n",
            req.namespace, req.pod, req.container, req.tail_lines
        );
        Ok(Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from(text)),
            Ok(Bytes::from_static(b"second line\n")),
        ])))
    }
}

/// Splits a table into rows of whitespace-separated cells.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

async fn scenario(minor: u32) {
    let s = TestServer::start_with(minor, Arc::new(FakeLogs)).await;

    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["version", "-o", "json"]).await).unwrap();
    assert_eq!(v["serverVersion"]["minor"], minor.to_string());
    assert_eq!(
        v["serverVersion"]["gitVersion"],
        format!("v1.{minor}.0-skiff")
    );
    assert_eq!(
        v["clientVersion"]["minor"],
        minor.to_string(),
        "the dispatcher ran kubectl 1.{minor}"
    );

    let ns = rows(&s.ok(&["get", "ns"]).await);
    assert_eq!(ns[0], ["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = ns[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(ns[1..].iter().all(|r| r[1] == "Active"));

    let (ok, out, err) = s.kubectl(&["get", "nodes"]).await;
    assert!(ok && out.is_empty(), "{out} {err}");
    assert!(err.contains("No resources found"), "{err}");

    let out = s
        .ok(&["run", "x", "--image=busybox", "--restart=Never"])
        .await;
    assert_eq!(out.trim(), "pod/x created");
    let pods = rows(&s.ok(&["get", "pods"]).await);
    assert_eq!(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(pods[1][..4], ["x", "0/1", "Pending", "0"]);
    let wide = s.ok(&["get", "pods", "-o", "wide"]).await;
    let header = wide.lines().next().unwrap();
    assert!(
        header.contains("IP")
            && header.contains("NODE")
            && header.contains("NOMINATED NODE")
            && header.contains("READINESS GATES"),
        "{wide}"
    );
    assert!(wide.lines().nth(1).unwrap().contains("<none>"));

    let yaml = s.ok(&["get", "pod", "x", "-o", "yaml"]).await;
    for want in [
        "restartPolicy: Never",
        "dnsPolicy: ClusterFirst",
        "terminationGracePeriodSeconds: 30",
        "imagePullPolicy: Always",
        "schedulerName: default-scheduler",
        "phase: Pending",
        "qosClass: BestEffort",
        "serviceAccountName: default",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in\n{yaml}");
    }
    assert_eq!(s.ok(&["get", "po", "-o", "name"]).await.trim(), "pod/x");
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "x",
            "-o",
            "jsonpath={.spec.containers[0].image}"
        ])
        .await,
        "busybox"
    );

    let manifest = s.file("y.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: two\n  labels:\n    app: demo\nspec:\n  containers:\n  - name: a\n    image: busybox:1.36\n  - name: b\n    image: busybox:1.36\n");
    // `create -f` validates against the served OpenAPI documents.
    assert_eq!(
        s.ok(&["create", "-f", &manifest]).await.trim(),
        "pod/two created"
    );
    let err = s.fails(&["create", "-f", &manifest]).await;
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("pods \"two\" already exists"),
        "{err}"
    );

    let err = s.fails(&["get", "pod", "nope"]).await;
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );

    let broken = s.file(
        "broken.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", ",
    );
    let err = s
        .fails(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "-f",
            &broken,
        ])
        .await;
    assert!(err.contains("Error from server (BadRequest)"), "{err}");

    let invalid = s.file(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: a\n",
    );
    let err = s
        .fails(&["create", "-f", &invalid, "--validate=false"])
        .await;
    assert!(
        err.contains("Pod \"bad\" is invalid: spec.containers[0].image: Required value"),
        "{err}"
    );

    let err = s
        .fails(&["run", "z", "--image=busybox", "-n", "missing"])
        .await;
    assert!(
        err.contains("Error from server (NotFound): namespaces \"missing\" not found"),
        "{err}"
    );

    assert!(
        s.ok(&["get", "pods", "-l", "app=demo"])
            .await
            .contains("two ")
    );
    assert!(
        !s.ok(&["get", "pods", "-l", "app notin (demo)"])
            .await
            .contains("two ")
    );
    let table = s
        .ok(&["get", "pods", "-A", "--field-selector", "metadata.name=two"])
        .await;
    assert!(table.starts_with("NAMESPACE"), "{table}");

    assert!(
        s.ok(&["label", "pod", "two", "tier=web"])
            .await
            .contains("pod/two labeled")
    );
    assert!(
        s.ok(&["get", "pod", "two", "--show-labels"])
            .await
            .contains("tier=web")
    );

    let res = s.ok(&["api-resources"]).await;
    assert!(
        res.lines().any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c == ["pods", "po", "v1", "true", "Pod"]
        }),
        "{res}"
    );
    assert!(
        res.lines()
            .any(|l| l.starts_with("leases") && l.contains("coordination.k8s.io/v1")),
        "{res}"
    );

    // Watch: kubectl prints the current pods, then a pod created while it watches.
    let mut watcher = s
        .command(&["get", "pods", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pods_def = resource("", "pods").unwrap();
    let w = json!({"metadata": {"name": "w"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    s.registry
        .create_json(pods_def, Some("default"), w, WriteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watcher.start_kill().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), watcher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let watched = rows(&text);
    assert_eq!(watched[0][..3], ["NAME", "READY", "STATUS"], "{text}");
    assert!(watched.iter().any(|r| r[0] == "x"), "{text}");
    assert!(
        watched.iter().any(|r| r[0] == "w" && r[2] == "Pending"),
        "{text}"
    );
    assert_eq!(
        watched.iter().filter(|r| r[0] == "NAME").count(),
        1,
        "one header: {text}"
    );

    // Logs go through NodeStreams once the pod is bound.
    let err = s.fails(&["logs", "x"]).await;
    assert!(err.contains("does not have a host assigned"), "{err}");
    s.registry.bind_pod("default", "x", "n1").await.unwrap();
    let logs = s.ok(&["logs", "x", "--tail=5"]).await;
    assert_eq!(
        logs,
        "log of default/x container x on n1 tail=Some(5)\nsecond line\n"
    );
    // kubectl picks a default container itself; the server's rule shows on the raw request.
    let err = s
        .fails(&["get", "--raw", "/api/v1/namespaces/default/pods/two/log"])
        .await;
    assert!(
        err.contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{err}"
    );

    // Deletion: unbound goes at once; bound is Terminating until forced.
    assert_eq!(
        s.ok(&["delete", "pod", "two"]).await.trim(),
        "pod \"two\" deleted"
    );
    assert_eq!(
        s.ok(&["delete", "pod", "x", "--wait=false"]).await.trim(),
        "pod \"x\" deleted"
    );
    let pods = rows(&s.ok(&["get", "pods"]).await);
    assert!(
        pods.iter().any(|r| r[0] == "x" && r[2] == "Terminating"),
        "{pods:?}"
    );
    let (ok, _, err) = s
        .kubectl(&["delete", "pod", "x", "--force", "--grace-period=0"])
        .await;
    assert!(ok, "{err}");
    assert!(s.fails(&["get", "pod", "x"]).await.contains("NotFound"));

    let err = s.fails(&["delete", "ns", "default"]).await;
    assert!(err.contains("Error from server (Forbidden)"), "{err}");

    // A wrong token is refused.
    let bad = s.file(
        "bad-kubeconfig",
        &std::fs::read_to_string(&s.kubeconfig)
            .unwrap()
            .replace("token: ", "token: wrong"),
    );
    let (ok, _, err) = s.kubectl(&["--kubeconfig", &bad, "get", "pods"]).await;
    assert!(!ok && err.contains("Unauthorized"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27() {
    scenario(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_30() {
    scenario(30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33() {
    scenario(33).await;
}

//! The real kubectl (1.27, 1.30, 1.33) doing server-side apply against the test server: create,
//! no-op re-apply, changes, a conflict with `kubectl scale` and `--force-conflicts`, a dropped
//! container, `--show-managed-fields`, and client-side apply next to it.

use crate::apiserver::test_server::TestServer;

fn manifest(replicas: u32, image: &str, second: bool) -> String {
    let mut m = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: {image}
        ports:
        - containerPort: 80
"
    );
    if second {
        m.push_str("      - name: sidecar\n        image: busybox:1\n");
    }
    m
}

async fn rv(s: &TestServer) -> String {
    s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
    .await
}

async fn scenario(minor: u32) {
    let s = TestServer::start(minor).await;
    let f = s.file("web.yaml", &manifest(3, "busybox:1", true));
    let out = s.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let first = rv(&s).await;
    s.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(
        rv(&s).await,
        first,
        "re-applying the same manifest is a no-op"
    );

    let yaml = s
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(yaml.contains("manager: kubectl\n"), "{yaml}");
    assert!(yaml.contains("operation: Apply"), "{yaml}");
    assert!(yaml.contains("fieldsType: FieldsV1"), "{yaml}");
    assert!(yaml.contains("k:{\"name\":\"sidecar\"}:"), "{yaml}");
    assert!(
        yaml.contains("k:{\"containerPort\":80,\"protocol\":\"TCP\"}:"),
        "{yaml}"
    );
    let plain = s.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(!plain.contains("managedFields"), "{plain}");

    let f = s.file("web.yaml", &manifest(3, "busybox:2", true));
    s.ok(&["apply", "--server-side", "-f", &f]).await;
    let image = s
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "busybox:2");

    let out = s.ok(&["scale", "deploy", "web", "--replicas=5"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let err = s.fails(&["apply", "--server-side", "-f", &f]).await;
    assert!(
        err.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    s.ok(&["apply", "--server-side", "--force-conflicts", "-f", &f])
        .await;
    let replicas = s
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(replicas, "3");

    // Dropping a container from the manifest removes it.
    let f = s.file("web.yaml", &manifest(3, "busybox:2", false));
    s.ok(&["apply", "--server-side", "-f", &f]).await;
    let names = s
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ])
        .await;
    assert_eq!(names, "main");

    // Client-side apply keeps working, recorded under its own manager.
    let cm = s.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  a: \"1\"\n",
    );
    assert_eq!(
        s.ok(&["apply", "-f", &cm]).await.trim(),
        "configmap/conf created"
    );
    let cm2 = s.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  a: \"2\"\n",
    );
    assert_eq!(
        s.ok(&["apply", "-f", &cm2]).await.trim(),
        "configmap/conf configured"
    );
    let yaml = s
        .ok(&["get", "cm", "conf", "-o", "yaml", "--show-managed-fields"])
        .await;
    assert!(
        yaml.contains("manager: kubectl-client-side-apply"),
        "{yaml}"
    );
    assert!(yaml.contains("a: \"2\""), "{yaml}");
}

#[tokio::test]
async fn server_side_apply_kubectl_1_27() {
    scenario(27).await;
}

#[tokio::test]
async fn server_side_apply_kubectl_1_30() {
    scenario(30).await;
}

#[tokio::test]
async fn server_side_apply_kubectl_1_33() {
    scenario(33).await;
}

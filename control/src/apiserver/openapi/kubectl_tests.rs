//! kubectl against the served documents: `create -f` / `apply -f` validate without
//! `--validate=false`, unknown fields fail with kubectl's message (or warn), and `kubectl explain`
//! prints the upstream field docs — for kubectl 1.27, 1.28 (OpenAPI v2 protobuf), 1.30 and 1.33.

use crate::apiserver::test_server::TestServer;

/// A pod manifest with `extra` lines added to its container.
fn pod(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: a\n    image: busybox:1.36\n{extra}"
    )
}

async fn scenario(minor: u32) {
    let s = TestServer::start(minor).await;
    let (v, _) = s.ok_both(&["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["clientVersion"]["minor"], minor.to_string());

    // Valid manifests pass client-side validation.
    let good = s.file("good.yaml", &pod("good", ""));
    let (out, err) = s.ok_both(&["create", "-f", &good]).await;
    assert_eq!(out.trim(), "pod/good created", "{err}");
    assert!(!err.contains("Warning"), "{err}");
    let applied = s.file("applied.yaml", &pod("applied", ""));
    assert_eq!(
        s.ok_both(&["apply", "-f", &applied]).await.0.trim(),
        "pod/applied created"
    );
    let changed = s.file(
        "applied2.yaml",
        &pod("applied", "").replace(
            "name: applied\n",
            "name: applied\n  labels:\n    tier: web\n",
        ),
    );
    assert_eq!(
        s.ok_both(&["apply", "-f", &changed]).await.0.trim(),
        "pod/applied configured"
    );

    // An unknown field fails with the field's path, by default and with --validate=strict.
    let typo = s.file("typo.yaml", &pod("typo", "    imagee: typo\n"));
    for extra in [None, Some("--validate=strict"), Some("--validate=true")] {
        let mut args = vec!["create", "-f", typo.as_str()];
        args.extend(extra);
        let err = s.fails(&args).await;
        assert!(
            err.contains("unknown field \"spec.containers[0].imagee\""),
            "{args:?}: {err}"
        );
    }
    let err = s.fails(&["apply", "-f", &typo]).await;
    assert!(
        err.contains("unknown field \"spec.containers[0].imagee\""),
        "apply: {err}"
    );
    // Warn: the pod is created without the field, and kubectl prints the server's warning.
    let (out, err) = s.ok_both(&["create", "-f", &typo, "--validate=warn"]).await;
    assert_eq!(out.trim(), "pod/typo created");
    assert!(
        err.contains("Warning: unknown field \"spec.containers[0].imagee\""),
        "{err}"
    );

    // explain reads the same documents.
    let (out, _) = s.ok_both(&["explain", "pods.spec.containers"]).await;
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(
        out.contains("FIELD:") && out.contains("containers"),
        "{out}"
    );
    assert!(
        out.contains("A single application container that you want to run within a pod."),
        "{out}"
    );
    assert!(out.contains("imagePullPolicy"), "{out}");
    let (out, _) = s.ok_both(&["explain", "leases.spec"]).await;
    assert!(out.contains("holderIdentity"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_kubectl_1_27() {
    scenario(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_kubectl_1_28() {
    scenario(28).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_kubectl_1_30() {
    scenario(30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_kubectl_1_33() {
    scenario(33).await;
}

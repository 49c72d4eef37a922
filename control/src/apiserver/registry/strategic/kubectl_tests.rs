//! The real `/usr/bin/kubectl` (1.27, 1.30, 1.33 via the reported minor) sending strategic merge
//! patches: `label`, `annotate`, `patch --type=strategic`, `set image` and client-side `apply`
//! (a three-way patch computed from the last-applied annotation and the served OpenAPI).

use serde_json::Value;

use crate::apiserver::test_server::TestServer;

fn images(pod: &Value) -> Vec<(String, String)> {
    pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn scenario(minor: u32) {
    let s = TestServer::start(minor).await;

    // The served OpenAPI carries the patch metadata kubectl's apply reads.
    let doc: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/openapi/v3/api/v1"]).await).unwrap();
    let containers =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(
        containers["x-kubernetes-patch-merge-key"], "name",
        "{containers}"
    );
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");

    let first = manifest(&s, "p1.yaml", "    app: web\n    tier: x\n", "busybox:1");
    s.ok(&["apply", "-f", &first]).await;
    s.ok(&["label", "pod", "p", "extra=1"]).await;
    s.ok(&["annotate", "pod", "p", "note=hi"]).await;
    let pod = get_pod(&s).await;
    assert_eq!(pod["metadata"]["labels"]["extra"], "1");
    assert_eq!(pod["metadata"]["annotations"]["note"], "hi");

    s.ok(&[
        "patch",
        "pod",
        "p",
        "--type=strategic",
        "-p",
        r#"{"spec":{"containers":[{"name":"b","image":"busybox:2"}]}}"#,
    ])
    .await;
    assert_eq!(
        images(&get_pod(&s).await),
        pairs(&[("a", "busybox:1"), ("b", "busybox:2")]),
        "only container b changed"
    );

    // Client-side apply: the label dropped from the manifest goes, the one set by `kubectl
    // label` stays; container a's image changes, and b's image, changed live by `kubectl
    // patch`, is set back to what the manifest says (apply overwrites by default).
    let second = manifest(&s, "p2.yaml", "    app: web\n", "busybox:3");
    s.ok(&["apply", "-f", &second]).await;
    let pod = get_pod(&s).await;
    assert_eq!(
        pod["metadata"]["labels"],
        serde_json::json!({"app": "web", "extra": "1"})
    );
    assert_eq!(pod["metadata"]["annotations"]["note"], "hi");
    assert_eq!(
        images(&pod),
        pairs(&[("a", "busybox:3"), ("b", "busybox:1")])
    );

    s.ok(&["set", "image", "pod/p", "b=busybox:4"]).await;
    assert_eq!(
        images(&get_pod(&s).await),
        pairs(&[("a", "busybox:3"), ("b", "busybox:4")])
    );
}

#[tokio::test]
async fn kubectl_1_27_strategic_merge() {
    scenario(27).await;
}

#[tokio::test]
async fn kubectl_1_30_strategic_merge() {
    scenario(30).await;
}

#[tokio::test]
async fn kubectl_1_33_strategic_merge() {
    scenario(33).await;
}

async fn get_pod(s: &TestServer) -> Value {
    serde_json::from_str(&s.ok(&["get", "pod", "p", "-o", "json"]).await).unwrap()
}

fn manifest(s: &TestServer, name: &str, labels: &str, image_a: &str) -> String {
    s.file(
        name,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n{labels}spec:\n  containers:\n  - name: a\n    image: {image_a}\n  - name: b\n    image: busybox:1\n"
        ),
    )
}

//! End-to-end: the real `/usr/bin/kubectl` 1.32 and 1.33 (picked by the reported minor) sends
//! protobuf bodies for its generator commands; the server must take them. The router is
//! wrapped to record each request's Content-Type, so the test proves the body was protobuf.

use crate::apiserver::test_server::TestServer;

async fn create_namespace(minor: u32) {
    let s = TestServer::start(minor).await;
    let (ok, out, err) = s.kubectl(&["create", "namespace", "team-a"]).await;
    assert!(ok, "kubectl 1.{minor} create namespace: {out} {err}");
    assert_eq!(out.trim(), "namespace/team-a created");
    assert_eq!(
        s.posts_to("/api/v1/namespaces"),
        [super::MEDIA_TYPE],
        "kubectl 1.{minor} sent the namespace as protobuf"
    );

    let (ok, out, err) = s
        .kubectl(&[
            "get",
            "ns",
            "team-a",
            "-o",
            "jsonpath={.metadata.name} {.status.phase}",
        ])
        .await;
    assert!(ok, "{out} {err}");
    assert_eq!(out, "team-a Active");

    let (ok, out, err) = s.kubectl(&["create", "namespace", "team-a"]).await;
    assert!(!ok, "a second create should fail: {out}");
    assert_eq!(
        err.trim(),
        r#"Error from server (AlreadyExists): namespaces "team-a" already exists"#
    );
    assert_eq!(s.posts_to("/api/v1/namespaces").len(), 2);
    // (`kubectl run` sends its Pod as JSON; of the kinds served so far only namespaces have a
    // `kubectl create` generator.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_creates_with_protobuf() {
    create_namespace(32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_creates_with_protobuf() {
    create_namespace(33).await;
}

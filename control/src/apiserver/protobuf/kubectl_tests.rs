//! End-to-end: the real `/usr/bin/kubectl` 1.32 and 1.33 (picked by the reported minor) sends
//! protobuf bodies for its generator commands; the server must take them. The router is
//! wrapped to record each request's Content-Type, so the test proves the body was protobuf.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;

use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::{Auth, NoNodeStreams, Pki, Registry, router, serve};

/// (method, path, content type) of every request the server saw.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

struct Server {
    kubeconfig: std::path::PathBuf,
    home: tempfile::TempDir,
    seen: Seen,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(minor: u32) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let home = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(home.path(), &[]).unwrap();
    let registry = Registry::new(Arc::new(MemStore::new())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &format!("https://{addr}"))
        .unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = router(
        registry,
        Arc::new(NoNodeStreams),
        Auth::bearer_tokens(vec![pki.admin_token().into()]),
        minor,
    )
    .layer(tower::util::MapRequestLayer::new(
        move |req: http::Request<axum::body::Body>| {
            let ct = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            record.lock().unwrap().push((
                req.method().to_string(),
                req.uri().path().to_string(),
                ct,
            ));
            req
        },
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tls = pki.server_tls_config().unwrap();
    tokio::spawn(serve(listener, tls, app, async {
        let _ = rx.await;
    }));
    Server {
        kubeconfig,
        home,
        seen,
        _shutdown: tx,
    }
}

impl Server {
    /// (success, stdout, stderr) of one kubectl run.
    async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            Command::new("/usr/bin/kubectl")
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig)
                .env("HOME", self.home.path())
                .env_remove("KUBERNETES_SERVICE_HOST")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn posts_to(&self, path: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p, _)| m == "POST" && p == path)
            .map(|(_, _, ct)| ct.clone())
            .collect()
    }
}

async fn create_namespace(minor: u32) {
    let s = start(minor).await;
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

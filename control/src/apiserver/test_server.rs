//! Test support: the router served over real TLS on 127.0.0.1 (in-memory store), a generated
//! kubeconfig, and the real `/usr/bin/kubectl` run against it with a chosen reported minor
//! (which picks the kubectl client version). Every request's method, path and Content-Type is
//! recorded, so tests can prove what kubectl sent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;

use super::registry::Registry;
use super::registry::memstore::MemStore;
use super::{Auth, NoNodeStreams, NodeStreams, Pki, router, serve};

/// (method, path, content type) of every request the server saw.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A running API server and a kubectl home to drive it.
pub struct TestServer {
    pub registry: Registry,
    pub kubeconfig: PathBuf,
    pub home: tempfile::TempDir,
    seen: Seen,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    /// Serves a fresh registry, reporting Kubernetes minor version `minor`.
    pub async fn start(minor: u32) -> TestServer {
        TestServer::start_with(minor, Arc::new(NoNodeStreams)).await
    }

    /// Like [`TestServer::start`], with `streams` answering log requests.
    pub async fn start_with(minor: u32, streams: Arc<dyn NodeStreams>) -> TestServer {
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
            registry.clone(),
            streams,
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
                let entry = (req.method().to_string(), req.uri().path().to_string(), ct);
                record.lock().unwrap().push(entry);
                req
            },
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tls = pki.server_tls_config().unwrap();
        tokio::spawn(serve(listener, tls, app, async {
            let _ = rx.await;
        }));
        TestServer {
            registry,
            kubeconfig,
            home,
            seen,
            _shutdown: tx,
        }
    }

    /// A kubectl command against this server (for streaming uses such as `get -w`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECTL_EXPLAIN_OPENAPIV3")
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl (60 s limit): (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = self.command(args);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed: (stdout, stderr).
    pub async fn ok_both(&self, args: &[&str]) -> (String, String) {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        (out, err)
    }

    /// kubectl that must succeed: stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_both(args).await.0
    }

    /// kubectl that must fail: stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(
            !ok,
            "kubectl {args:?} should fail:\nstdout: {out}\nstderr: {err}"
        );
        err
    }

    /// Writes `text` to `name` in the kubectl home; returns the path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// The content types of the POSTs to `path`.
    pub fn posts_to(&self, path: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p, _)| m == "POST" && p == path)
            .map(|(_, _, ct)| ct.clone())
            .collect()
    }
}

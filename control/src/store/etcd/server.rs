//! Test harness: a real Debian `etcd` on 127.0.0.1 with free ports and a temporary data
//! directory, killed and removed on drop (also when the test panics). A missing `etcd` binary
//! fails the test with a message saying how to install it; it never skips.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{EtcdOptions, EtcdStore};

/// A running single-member etcd.
pub(crate) struct EtcdServer {
    child: Child,
    dir: TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("SKIFF_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    assert!(
        path.exists(),
        "{} not found: these tests need a real etcd; install Debian's etcd-server \
         (`cargo xtask setup` does) or point SKIFF_ETCD at one",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl EtcdServer {
    /// Starts etcd and waits until it serves; panics with etcd's log if it does not.
    pub(crate) async fn start() -> EtcdServer {
        let binary = etcd_binary();
        let mut last_log = String::new();
        // A port picked free can be taken before etcd binds it: retry with new ones.
        for _ in 0..3 {
            let dir = TempDir::new().expect("temp dir");
            let (client, peer) = (free_port(), free_port());
            let endpoint = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
            let child = Command::new(&binary)
                .arg("--name=test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={endpoint}"))
                .arg(format!("--advertise-client-urls={endpoint}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=test={peer_url}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut server = EtcdServer {
                child,
                dir,
                endpoint,
            };
            if server.wait_ready().await {
                return server;
            }
            last_log =
                std::fs::read_to_string(server.dir.path().join("etcd.log")).unwrap_or_default();
        }
        let tail: String = last_log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n");
        panic!("etcd did not start; last lines of its log (newest first):\n{tail}");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if let Ok(mut c) = etcd_client::Client::connect([self.endpoint.as_str()], None).await
                && c.status().await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Store options for this server (fast compaction off: tests compact by hand).
    pub(crate) fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint.clone()],
            compact_interval: Duration::from_secs(3600),
            ..EtcdOptions::default()
        }
    }

    /// A store on this server.
    pub(crate) async fn store(&self) -> EtcdStore {
        EtcdStore::connect(self.options())
            .await
            .expect("connect to etcd")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

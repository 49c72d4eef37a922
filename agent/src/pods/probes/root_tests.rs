//! Probes against a real container (root only): exec probes through the runtime, tcpSocket and
//! httpGet against busybox `nc`/`httpd` inside a throwaway network namespace (loopback only).

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::ExecAction;

use super::handlers::{Target, check_for, http_get, tcp_check};
use super::*;
use crate::runtime::tests::TestContainers;
use crate::runtime::tests::is_root;

/// A netns with only loopback (up), deleted on drop.
struct TestNetns(String);

impl TestNetns {
    fn new(name: &str) -> TestNetns {
        let name = format!("skiff-probe-{name}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ns = TestNetns(name);
        for args in [
            vec!["netns", "add", &ns.0],
            vec!["-n", &ns.0, "link", "set", "lo", "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().unwrap().success());
        }
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }

    /// Runs `f` on a current-thread runtime on a thread inside the namespace.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> BoxFuture<'static, T> + Send + 'static,
    ) -> T {
        let ns = std::fs::File::open(self.path()).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .join()
        .unwrap()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn exec_probe(cmd: &[&str], period: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_drive_readiness_of_a_real_container() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("probe-exec");
    fx.start(&fx.spec("app", &["sleep", "60"])).await;
    let target = Target {
        runtime: fx.runtime.clone(),
        container_id: "app".into(),
        host: "127.0.0.1".into(),
        ports: Vec::new(),
    };
    let c = Container {
        readiness_probe: Some(exec_probe(&["test", "-f", "/tmp/ready"], 1)),
        ..Default::default()
    };
    let (events, sink) = {
        let events: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let sink = events.clone();
        let f: EventFn = Arc::new(move |kind, m| {
            sink.lock()
                .unwrap()
                .push(format!("{} probe failed: {m}", kind.title()))
        });
        (events, f)
    };
    let probes = ContainerProbes::start(
        &c,
        "app".into(),
        Instant::now(),
        |p| check_for(p, &target),
        sink,
    );
    let mut rx = probes.subscribe();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!probes.status().ready);
    assert!(!events.lock().unwrap().is_empty());

    let touched = fx
        .runtime
        .exec(
            "app",
            &["touch".into(), "/tmp/ready".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(touched.exit_code, 0);
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.ready))
        .await
        .expect("ready within a few periods")
        .unwrap();

    // A timed-out exec probe fails with the kubelet's message.
    let slow = check_for(&exec_probe(&["sleep", "5"], 1), &target);
    assert_eq!(
        slow(Duration::from_millis(300)).await,
        Err("command \"sleep 5\" timed out".to_string())
    );
    let failing = check_for(
        &exec_probe(&["sh", "-c", "echo not yet; exit 1"], 1),
        &target,
    );
    assert_eq!(
        failing(Duration::from_secs(5)).await,
        Err("not yet\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_http_probes_reach_servers_in_the_pod_netns() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let netns = TestNetns::new("net");
    let fx = TestContainers::new("probe-net");
    let mut spec = fx.spec(
        "srv",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo ok > /www/index.html && \
             httpd -f -p 127.0.0.1:8080 -h /www & nc -ll -p 9090 -e true & wait",
        ],
    );
    spec.netns_path = Some(netns.path());
    fx.start(&spec).await;

    let results = netns.run(|| {
        async {
            let second = Duration::from_secs(1);
            // Wait for both servers to listen.
            for _ in 0..50 {
                if tcp_check("127.0.0.1", 9090, second).await.is_ok()
                    && tcp_check("127.0.0.1", 8080, second).await.is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let headers = vec![("X-Probe".to_string(), "yes".to_string())];
            vec![
                tcp_check("127.0.0.1", 9090, second).await,
                tcp_check("127.0.0.1", 9191, second).await,
                http_get("127.0.0.1", 8080, "/index.html", &headers, second).await,
                http_get("127.0.0.1", 8080, "/missing", &[], second).await,
                http_get("127.0.0.1", 9191, "/", &[], second).await,
            ]
        }
        .boxed()
    });
    assert_eq!(results[0], Ok(()));
    assert_eq!(
        results[1],
        Err("dial tcp 127.0.0.1:9191: connect: connection refused".into())
    );
    assert_eq!(results[2], Ok(()));
    assert_eq!(
        results[3],
        Err("HTTP probe failed with statuscode: 404".into())
    );
    let refused = results[4].clone().unwrap_err();
    assert!(
        refused.starts_with("Get \"http://127.0.0.1:9191/\": dial tcp")
            && refused.contains("refused"),
        "{refused}"
    );
}

use futures::FutureExt;

//! End to end on the store: skiff-control with `--store etcd://…` keeps objects across `kill -9`
//! and across a fresh data dir, and two replicas on one etcd share it with one leader that
//! schedules, and the other takes over when the leader is killed. Also the sled store's
//! `snapshot save` / `snapshot restore` commands.
//!
//! A real Debian etcd runs on 127.0.0.1 with free ports; the control planes listen on
//! 127.0.0.1 too. No agent runs, so no pod traffic exists: the scheduler binds pods to a Node
//! object created by kubectl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_tests::{Output, binary, run_with_timeout, wait_for};
use tempfile::TempDir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// A single-member etcd in a temp dir, killed on drop.
struct Etcd {
    child: Child,
    url: String,
    _dir: TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let etcd = Path::new("/usr/bin/etcd");
        assert!(
            etcd.exists(),
            "/usr/bin/etcd is missing: install Debian's etcd-server (cargo xtask setup does)"
        );
        let dir = TempDir::new().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = spawn_logged(
            Command::new(etcd)
                .arg("--name=e2e")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=e2e={peer_url}")),
            &dir.path().join("etcd.log"),
        );
        let mut etcd = Etcd {
            child,
            url: format!("etcd://127.0.0.1:{client}"),
            _dir: dir,
        };
        wait_for("etcd to listen", Duration::from_secs(20), || {
            assert!(
                etcd.child.try_wait().ok().flatten().is_none(),
                "etcd exited at start"
            );
            std::net::TcpStream::connect(("127.0.0.1", client))
                .ok()
                .map(|_| ())
        });
        etcd
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One skiff-control replica: its own data dir (certificates, kubeconfig) and port.
struct Control {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    store: String,
}

impl Control {
    fn start(root: &Path, name: &str, store: &str) -> Control {
        let mut c = Control {
            child: None,
            dir: root.join(name),
            port: free_port(),
            store: store.to_string(),
        };
        c.restart();
        c
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process (again) and waits until the API answers.
    fn restart(&mut self) {
        let mut cmd = Command::new(binary("skiff-control"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--store", &self.store])
            .args(["--node-monitor-grace-period", "600s"])
            .env("NO_COLOR", "1");
        self.child = Some(spawn_logged(&mut cmd, &self.log_path()));
        wait_for(
            "the control plane to answer",
            Duration::from_secs(30),
            || {
                self.kubeconfig().exists().then_some(())?;
                self.kubectl(&["get", "--raw", "/readyz"]).ok.then_some(())
            },
        );
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}\n--- log ---\n{}",
            out.stdout,
            out.stderr,
            tail(&self.log())
        );
        out.stdout
    }

    /// Whether the process is still running (a replica that lost its lease exits).
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

const NODE: &str = r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
  "status": {"conditions": [{"type": "Ready", "status": "True"}],
             "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
             "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}"#;

fn create_from(c: &Control, root: &Path, name: &str, json: &str) {
    let file = root.join(format!("{name}.json"));
    std::fs::write(&file, json).expect("manifest");
    c.kubectl_ok(&["create", "-f", file.to_str().expect("utf-8 path")]);
}

fn node_of(c: &Control, pod: &str) -> String {
    c.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

fn lease(c: &Control, field: &str) -> String {
    c.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "skiff-controller-manager",
        "-o",
        &format!("jsonpath={{.spec.{field}}}"),
    ])
}

#[test]
fn objects_survive_kill_9_and_a_fresh_data_dir() {
    let etcd = Etcd::start();
    let root = TempDir::new().expect("temp dir");
    let mut a = Control::start(root.path(), "a", &etcd.url);
    a.kubectl_ok(&["create", "namespace", "shop"]);
    a.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=color=blue",
    ]);
    let rv = a.kubectl_ok(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    a.kill_9();
    a.restart();
    let get = |c: &Control, path: &str| {
        c.kubectl_ok(&["get", "configmap", "settings", "-n", "shop", "-o", path])
    };
    assert_eq!(get(&a, "jsonpath={.data.color}"), "blue");
    assert_eq!(get(&a, "jsonpath={.metadata.resourceVersion}"), rv);
    // A replica with an empty data dir (new certificates, nothing on local disk) sees the same
    // objects: they live in etcd.
    a.kill_9();
    let b = Control::start(root.path(), "b", &etcd.url);
    assert_eq!(get(&b, "jsonpath={.data.color}"), "blue");
    b.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    let new_rv: u64 = get(&b, "jsonpath={.metadata.resourceVersion}")
        .parse()
        .expect("numeric resourceVersion");
    assert!(
        new_rv > rv.parse::<u64>().expect("numeric"),
        "revisions grow"
    );
}

#[test]
fn two_replicas_one_leader_schedules_and_the_other_takes_over() {
    let etcd = Etcd::start();
    let root = TempDir::new().expect("temp dir");
    let mut a = Control::start(root.path(), "a", &etcd.url);
    wait_for("replica a to lead", Duration::from_secs(30), || {
        a.log().contains("became leader").then_some(())
    });
    let b = Control::start(root.path(), "b", &etcd.url);
    let holder_a = lease(&a, "holderIdentity");
    assert!(
        a.log().contains(&holder_a),
        "a holds the lease ({holder_a})"
    );

    // The API works on both; the leader schedules a pod created through the follower.
    create_from(&a, root.path(), "node", NODE);
    b.kubectl_ok(&["run", "p1", "--image=busybox", "--restart=Never"]);
    wait_for("p1 to be scheduled", Duration::from_secs(30), || {
        (node_of(&a, "p1") == "n1").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !b.log().contains("became leader"),
        "only one replica leads:\n{}",
        tail(&b.log())
    );
    assert!(
        !b.log().contains("skiff_control::scheduler"),
        "the follower never schedules"
    );
    assert_eq!(lease(&b, "holderIdentity"), holder_a);

    // The leader dies: the follower takes over after the lease expires (15 s) and schedules.
    a.kill_9();
    wait_for("replica b to take over", Duration::from_secs(40), || {
        b.log().contains("became leader").then_some(())
    });
    let holder_b = lease(&b, "holderIdentity");
    assert_ne!(holder_b, holder_a);
    assert_eq!(lease(&b, "leaseTransitions"), "1");
    b.kubectl_ok(&["run", "p2", "--image=busybox", "--restart=Never"]);
    wait_for("p2 to be scheduled", Duration::from_secs(30), || {
        (node_of(&b, "p2") == "n1").then_some(())
    });

    // The old leader comes back as a follower.
    let before = a.log().matches("became leader").count();
    a.restart();
    std::thread::sleep(Duration::from_secs(5));
    assert!(a.running());
    assert_eq!(
        a.log().matches("became leader").count(),
        before,
        "a restarted replica waits while b leads"
    );
    assert_eq!(lease(&a, "holderIdentity"), holder_b);
}

/// The sled store's backup: `snapshot save` after a `kill -9`, `snapshot restore` into a new
/// data dir, and a server on it serves the same objects at the same resourceVersions.
#[test]
fn sled_snapshot_save_and_restore_through_the_cli() {
    let root = TempDir::new().expect("temp dir");
    let mut a = Control::start(root.path(), "a", "sled");
    a.kubectl_ok(&["create", "configmap", "kept", "--from-literal=k=v"]);
    let rv_of = |c: &Control| {
        c.kubectl_ok(&[
            "get",
            "configmap",
            "kept",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    };
    let rv = rv_of(&a);
    a.kill_9();
    let file = root.path().join("backup.snap");
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(binary("skiff-control"));
        cmd.arg("snapshot").args(args);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert!(out.ok, "snapshot {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    };
    let file_arg = file.to_str().expect("utf-8 path");
    let saved = cli(&[
        "save",
        file_arg,
        "--data-dir",
        a.dir.to_str().expect("utf-8"),
    ]);
    assert!(saved.contains(&format!("revision {rv}")), "{saved}");
    let restored_dir = root.path().join("c");
    cli(&[
        "restore",
        file_arg,
        "--data-dir",
        restored_dir.to_str().expect("utf-8"),
    ]);
    let c = Control::start(root.path(), "c", "sled");
    let data = c.kubectl_ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.k}"]);
    assert_eq!(data, "v");
    assert_eq!(rv_of(&c), rv);
    c.kubectl_ok(&["create", "configmap", "after", "--from-literal=k=w"]);
}

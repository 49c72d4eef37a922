//! Privileged tests of exec into real containers (root only), and [`TestContainers`], a
//! self-cleaning fixture other modules' tests (probes) start real containers with.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tests::{busybox_rootfs, is_root};
use super::*;

/// Busybox applets the exec and probe tests use beyond [`busybox_rootfs`]'s.
const MORE_APPLETS: [&str; 10] = [
    "test", "touch", "nc", "httpd", "false", "pwd", "env", "mkdir", "ps", "wget",
];

/// Real containers in a busybox rootfs; removes them and their cgroups on drop.
pub(crate) struct TestContainers {
    pub runtime: Runtime,
    layer: PathBuf,
    cgroup_root: String,
    tmp: tempfile::TempDir,
}

impl TestContainers {
    pub fn new(name: &str) -> TestContainers {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        busybox_rootfs(&layer);
        for applet in MORE_APPLETS {
            std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("logs")).unwrap();
        let prefix = [
            "runtime::tests::shim_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ];
        let runtime = Runtime::new(
            tmp.path().join("containers"),
            std::env::current_exe().unwrap(),
        )
        .unwrap()
        .with_shim_prefix(prefix.iter().map(|s| s.to_string()).collect());
        TestContainers {
            runtime,
            layer,
            cgroup_root: format!("/skiff-test-{}-{name}", std::process::id()),
            tmp,
        }
    }

    pub fn spec(&self, id: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            id: id.into(),
            rootfs_layers: vec![self.layer.clone()],
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hi".into())],
            working_dir: "/".into(),
            hostname: "test-pod".into(),
            netns_path: None,
            cgroup_path: format!("{}/{id}", self.cgroup_root),
            log_path: self.tmp.path().join("logs").join(format!("{id}.log")),
            resources: ContainerResources {
                pids_limit: Some(64),
                ..Default::default()
            },
            uid: 0,
            gid: 0,
            extra_mounts: Vec::new(),
        }
    }

    /// Starts the container; on failure panics with the shim's log.
    pub async fn start(&self, spec: &ContainerSpec) {
        if let Err(e) = self.runtime.start(spec).await {
            let log = std::fs::read_to_string(self.runtime.dir(&spec.id).join("shim.log"));
            panic!("start {} failed: {e}\n{}", spec.id, log.unwrap_or_default());
        }
    }

    /// The pids in the container's cgroup (v1 pids controller).
    fn cgroup_procs(&self, id: &str) -> usize {
        let path = format!("/sys/fs/cgroup/pids{}/{id}/cgroup.procs", self.cgroup_root);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .lines()
            .count()
    }
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        let runtime = self.runtime.clone();
        let cgroup_root = self.cgroup_root.clone();
        // Drop may run inside the test's tokio runtime: clean up from a separate thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for id in runtime.list() {
                if let Err(e) = rt.block_on(runtime.remove(&id)) {
                    eprintln!("cleanup of {id} failed: {e}");
                }
            }
            let _ = cleanup::remove_cgroup(&cgroup_root);
        })
        .join();
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_container_and_collects_output() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("exec");
    let mut spec = fx.spec("box", &["sleep", "60"]);
    spec.working_dir = "/tmp".into();
    spec.uid = 1000;
    spec.gid = 1000;
    spec.hostname = "exec-pod".into();
    fx.start(&spec).await;
    let second = Duration::from_secs(5);

    let out = fx
        .runtime
        .exec("box", &argv(&["echo", "hi"]), second)
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
        (0, &b"hi\n"[..], &b""[..])
    );

    // The container's user, working dir, environment and namespaces (uts: its hostname).
    let out = fx
        .runtime
        .exec(
            "box",
            &argv(&["sh", "-c", "id -u; pwd; echo $GREETING; hostname"]),
            second,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n/tmp\nhi\nexec-pod\n"
    );

    let out = fx
        .runtime
        .exec(
            "box",
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 7"]),
            second,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    let err = fx
        .runtime
        .exec("box", &argv(&["nosuch"]), second)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );

    // The tenant builder's notify sockets are gone.
    let lc = fx
        .runtime
        .dir("box")
        .join(shim::LIBCONTAINER_DIR)
        .join("box");
    let leftovers: Vec<String> = std::fs::read_dir(&lc)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tenant-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        fx.cgroup_procs("box"),
        1,
        "only the container's init is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_times_out_and_kills_the_command() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("exectimeout");
    fx.start(&fx.spec("box", &["sleep", "60"])).await;
    let t = Instant::now();
    let err = fx
        .runtime
        .exec("box", &argv(&["sleep", "30"]), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ExecTimeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        fx.cgroup_procs("box"),
        1,
        "the timed-out command was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_stdin_and_refuses_stopped_containers() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("execstream");
    fx.start(&fx.spec("box", &["sleep", "60"])).await;
    let mut session = fx
        .runtime
        .spawn_exec("box", &argv(&["cat"]), None, true)
        .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"through the pipe").await.unwrap();
    drop(stdin);
    let mut echoed = Vec::new();
    session
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut echoed)
        .await
        .unwrap();
    assert_eq!(echoed, b"through the pipe");
    assert_eq!(session.wait().await.unwrap(), 0);

    fx.runtime
        .stop("box", Duration::from_millis(100))
        .await
        .unwrap();
    let err = fx
        .runtime
        .exec("box", &argv(&["true"]), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::NotRunning(_)), "{err}");
    let err = fx
        .runtime
        .exec("nosuch", &argv(&["true"]), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::NotRunning(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_tty_runs_on_a_terminal_of_the_size_asked() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("exectty");
    fx.start(&fx.spec("box", &["sleep", "60"])).await;
    let script = "read go; tty; stty size; echo err >&2";
    let mut session = fx
        .runtime
        .spawn_exec_with("box", &argv(&["sh", "-c", script]), None, true, true)
        .unwrap();
    session.resize(100, 30).await;
    // Let the size land before the command reads its go line.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut stdin = session.stdin.take().unwrap();
    if let Err(e) = stdin.write_all(b"go\n").await {
        panic!(
            "writing stdin: {e}; the exec ended: {:?}",
            session.wait().await
        );
    }
    let mut out = Vec::new();
    let mut stdout = session.stdout.take().unwrap();
    let mut stderr = session.stderr.take().unwrap();
    let reading = async {
        stdout.read_to_end(&mut out).await.unwrap();
        let mut err = Vec::new();
        stderr.read_to_end(&mut err).await.unwrap();
        err
    };
    let err = tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("the terminal closes when the command ends");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("30 100"), "stty size: {text:?}");
    // A terminal shows stderr with stdout; the stderr pipe stays empty.
    assert!(text.contains("err"), "{text:?}");
    assert!(err.is_empty());
    drop(stdin);
    assert_eq!(session.wait().await.unwrap(), 0);
}

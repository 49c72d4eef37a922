//! Privileged tests of the runtime: real containers in a busybox rootfs (root only). The test
//! binary doubles as the shim (see [`shim_entry`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// Not a test: the entry point when the runtime under test starts this binary as its shim
/// (`<test-exe> runtime::tests::shim_entry --exact … shim <dir>`).
#[test]
fn shim_entry() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "shim") {
        std::process::exit(shim::main(args));
    }
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A busybox root filesystem: `/bin/busybox` (static) and applet symlinks.
pub(crate) fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "sleep", "true", "cat", "ls", "head", "tr", "hostname", "id", "test",
        "touch", "nc", "httpd", "false", "pwd", "env", "mkdir", "ps", "wget",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
}

/// Removes every container, the test cgroups and the temp dirs, also when a test fails.
/// Real containers in a busybox rootfs, for this module's tests and other modules' (exec,
/// probes, volumes); removes the containers and their cgroups on drop.
pub(crate) struct TestContainers {
    pub runtime: Runtime,
    layer: PathBuf,
    cgroup_root: String,
    logs: PathBuf,
    tmp: tempfile::TempDir,
}

impl TestContainers {
    pub fn new(name: &str) -> TestContainers {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        busybox_rootfs(&layer);
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let exe = std::env::current_exe().unwrap();
        let prefix = [
            "runtime::tests::shim_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ];
        let runtime = Runtime::new(tmp.path().join("containers"), exe)
            .unwrap()
            .with_shim_prefix(prefix.iter().map(|s| s.to_string()).collect());
        let cgroup_root = format!("/skiff-test-{}-{name}", std::process::id());
        TestContainers {
            runtime,
            layer,
            cgroup_root,
            logs,
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
            log_path: self.logs.join(format!("{id}.log")),
            resources: ContainerResources {
                pids_limit: Some(64),
                ..Default::default()
            },
            uid: 0,
            gid: 0,
            extra_mounts: Vec::new(),
            security: Default::default(),
        }
    }

    /// Starts the container; on failure panics with the shim's log.
    pub async fn start(&self, spec: &ContainerSpec) {
        if let Err(e) = self.runtime.start(spec).await {
            let log =
                std::fs::read_to_string(self.runtime.state_root.join(&spec.id).join("shim.log"));
            panic!(
                "start {} failed: {e}\nshim log:\n{}",
                spec.id,
                log.unwrap_or_default()
            );
        }
    }

    pub(crate) async fn wait_exited(&self, id: &str) -> ContainerState {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.runtime.state(id);
            if matches!(state, ContainerState::Exited { .. }) || Instant::now() > deadline {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The pids in the container's cgroup (v1 pids controller).
    pub fn cgroup_procs(&self, id: &str) -> usize {
        let path = format!("/sys/fs/cgroup/pids{}/{id}/cgroup.procs", self.cgroup_root);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .lines()
            .count()
    }

    /// Asserts that nothing of the container is left: dir, mount, cgroup.
    fn assert_gone(&self, id: &str) {
        let dir = self.runtime.state_root.join(id);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(!rootfs::is_mount_point(&rootfs::rootfs_dir(&dir)));
        for mount in cleanup::cgroup_mounts() {
            let leaf = mount
                .join(self.cgroup_root.trim_start_matches('/'))
                .join(id);
            assert!(!leaf.exists(), "cgroup {} left behind", leaf.display());
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_runs_logs_and_exits() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("run");
    let etc = fx.tmp.path().join("hostname");
    std::fs::write(&etc, "from-the-pod\n").unwrap();
    let mut spec = fx.spec(
        "hello",
        &[
            "sh",
            "-c",
            "echo hello; echo \"$GREETING\" >&2; cat /etc/hostname; printf tail",
        ],
    );
    spec.extra_mounts.push((etc, "/etc/hostname".into(), true));
    fx.start(&spec).await;
    let state = fx.wait_exited("hello").await;
    let ContainerState::Exited {
        exit_code,
        reason,
        started_at,
        ..
    } = state
    else {
        panic!("container did not exit: {state:?}");
    };
    assert_eq!((exit_code, reason), (0, ExitReason::Completed));
    assert!(started_at.is_some());
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    for want in [
        " stdout F hello",
        " stderr F hi",
        " stdout F from-the-pod",
        " stdout F tail",
    ] {
        assert!(
            log.lines().any(|l| l.ends_with(want)),
            "{want:?} missing from log:\n{log}"
        );
    }
    assert_eq!(fx.runtime.list(), vec!["hello".to_string()]);
    // The shim deleted the libcontainer container (and its cgroup) on exit.
    assert!(
        !fx.runtime
            .state_root
            .join("hello")
            .join(shim::LIBCONTAINER_DIR)
            .join("hello")
            .exists()
    );

    fx.runtime.remove("hello").await.unwrap();
    fx.runtime.remove("hello").await.unwrap();
    fx.assert_gone("hello");
    assert!(fx.runtime.list().is_empty());
    assert!(matches!(fx.runtime.state("hello"), ContainerState::Unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_term_then_kill() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("stop");
    // A process that exits on SIGTERM.
    let polite = fx.spec(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; while true; do sleep 0.1; done",
        ],
    );
    // `sleep` as pid 1 of its namespace ignores SIGTERM: only SIGKILL ends it.
    let stubborn = fx.spec("stubborn", &["sleep", "30"]);
    fx.start(&polite).await;
    fx.start(&stubborn).await;
    assert!(matches!(fx.runtime.state("stubborn"), ContainerState::Running { pid, .. } if pid > 0));
    assert!(
        fx.runtime.start(&stubborn).await.is_err(),
        "a second start of the same id must fail"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t = Instant::now();
    fx.runtime
        .stop("polite", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM should have ended it"
    );
    let state = fx.runtime.state("polite");
    assert!(
        matches!(
            state,
            ContainerState::Exited {
                exit_code: 3,
                reason: ExitReason::Error,
                ..
            }
        ),
        "{state:?}"
    );

    let t = Instant::now();
    fx.runtime
        .stop("stubborn", Duration::from_millis(500))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(500));
    let state = fx.runtime.state("stubborn");
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 137, .. }),
        "{state:?}"
    );

    for id in ["polite", "stubborn"] {
        fx.runtime.remove(id).await.unwrap();
        fx.assert_gone(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_executable_is_a_clear_error() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("missing");
    let err = fx
        .runtime
        .start(&fx.spec("nosuch", &["nosuch"]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exec: \"nosuch\": executable file not found in $PATH"
    );
    let state = fx.runtime.state("nosuch");
    let ContainerState::Exited {
        exit_code,
        reason,
        message,
        ..
    } = state
    else {
        panic!("{state:?}")
    };
    assert_eq!((exit_code, reason), (128, ExitReason::ContainerCannotRun));
    assert_eq!(
        message.as_deref(),
        Some("exec: \"nosuch\": executable file not found in $PATH")
    );
    fx.runtime.remove("nosuch").await.unwrap();
    fx.assert_gone("nosuch");

    let bad = fx.spec("../escape", &["true"]);
    assert!(matches!(
        fx.runtime.start(&bad).await,
        Err(RuntimeError::InvalidSpec(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_oom_is_reported() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("oom");
    let mut spec = fx.spec(
        "hog",
        &[
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    spec.resources.memory_limit = Some(16 << 20);
    fx.start(&spec).await;
    let state = fx.wait_exited("hog").await;
    assert!(
        matches!(
            state,
            ContainerState::Exited {
                reason: ExitReason::OomKilled,
                ..
            }
        ),
        "{state:?}"
    );
    fx.runtime.remove("hog").await.unwrap();
    fx.assert_gone("hog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_the_given_network_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("netns");
    let name = format!("skiff-rt-test-{}", std::process::id());
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(ok.success());
    let _netns = Netns(name.clone());
    let mut spec = fx.spec("net", &["cat", "/proc/net/dev"]);
    spec.netns_path = Some(PathBuf::from("/run/netns").join(&name));
    fx.start(&spec).await;
    let state = fx.wait_exited("net").await;
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}"
    );
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    // A fresh namespace has only loopback.
    assert!(log.contains(" lo:"), "{log}");
    assert!(!log.contains("eth0"), "{log}");
    fx.runtime.remove("net").await.unwrap();
    fx.assert_gone("net");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_running_containers() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("adopt");
    fx.start(&fx.spec("long", &["sleep", "30"])).await;
    let dir = fx.runtime.state_root.join("long");
    let shim_pid = status::Status::load(&dir).unwrap().shim_pid;
    // The shim daemonized: it is not the agent's child.
    let stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).unwrap();
    let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id());

    // A new Runtime over the same state root, as after an agent restart.
    let again = Runtime::new(fx.runtime.state_root.clone(), fx.runtime.agent_exe.clone()).unwrap();
    assert_eq!(again.list(), vec!["long".to_string()]);
    assert!(matches!(
        again.state("long"),
        ContainerState::Running { .. }
    ));
    again
        .stop("long", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(matches!(
        again.state("long"),
        ContainerState::Exited { exit_code: 137, .. }
    ));
    again.remove("long").await.unwrap();
    fx.assert_gone("long");
    assert!(
        status::process_start(shim_pid).is_none(),
        "the shim exits with its container"
    );
}

//! Privileged tests of exec into real containers (root only).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tests::{TestContainers, is_root};
use super::*;

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

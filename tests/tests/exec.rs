//! `kubectl exec` end to end against a real cluster in a throwaway network namespace: output,
//! exit codes and stdin travel kubectl → API server (WebSocket v5.channel.k8s.io) → node
//! protocol `Session` → agent → exec child in the container, and back.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

/// What a kubectl run left: its exit code (None if killed at the time limit) and output.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The kubectl of one minor release (`/usr/bin/kubectl` picks one by the server's version;
/// these are the binaries it picks from).
fn kubectl_minor(minor: u32) -> String {
    let path = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the SPDY tests need kubectl 1.{minor}"
    );
    path
}

/// Runs kubectl in the cluster's namespace with `input` on its stdin, for at most 60 s.
fn kubectl_with_input(cluster: &Cluster, args: &[&str], input: &[u8]) -> Ran {
    run_kubectl(cluster, "/usr/bin/kubectl", args, input)
}

/// Runs the kubectl at `program`, like [`kubectl_with_input`].
fn run_kubectl(cluster: &Cluster, program: &str, args: &[&str], input: &[u8]) -> Ran {
    let mut cmd: Command = cluster.ns.command(program);
    cmd.arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning kubectl");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        // Dropping stdin closes it: kubectl then closes the stream's stdin.
    });
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().expect("waiting for kubectl") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Ran {
        code,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

#[test]
fn exec_round_trips_with_kubectl() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::start("exec");
    cluster.kubectl_ok(&["run", "sleeper", "--image=busybox", "--", "sleep", "3600"]);
    wait_for("sleeper to run", Duration::from_secs(90), || {
        let phase = cluster
            .kubectl(&["get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"])
            .stdout;
        (phase == "Running").then_some(())
    });
    let show = |what: &str, r: &Ran| {
        format!(
            "{what}: code {:?}\nstdout: {}\nstderr: {}\n{}",
            r.code,
            r.stdout,
            r.stderr,
            cluster.logs()
        )
    };

    // Output comes back, and a clean exit is exit code 0.
    let r = kubectl_with_input(&cluster, &["exec", "sleeper", "--", "echo", "hi"], b"");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "hi\n"),
        "{}",
        show("echo", &r)
    );

    // Stdout and stderr stay apart.
    let r = kubectl_with_input(
        &cluster,
        &[
            "exec",
            "sleeper",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
        b"",
    );
    assert_eq!(r.stdout, "out\n", "{}", show("stderr", &r));
    assert!(r.stderr.contains("err"), "{}", show("stderr", &r));

    // kubectl exits with the command's code.
    let r = kubectl_with_input(
        &cluster,
        &["exec", "sleeper", "--", "sh", "-c", "exit 3"],
        b"",
    );
    assert_eq!(r.code, Some(3), "{}", show("exit 3", &r));

    // Stdin reaches the command, and closing it ends `cat`.
    let data = b"data line one\nline two\n";
    let r = kubectl_with_input(&cluster, &["exec", "-i", "sleeper", "--", "cat"], data);
    assert_eq!(r.code, Some(0), "{}", show("cat", &r));
    assert_eq!(r.stdout.as_bytes(), data, "{}", show("cat", &r));

    // A command that does not exist fails with a message, not a hang.
    let r = kubectl_with_input(&cluster, &["exec", "sleeper", "--", "/no/such/cmd"], b"");
    assert!(
        r.code.is_some_and(|c| c != 0),
        "{}",
        show("missing command", &r)
    );

    // With -it on a real terminal (script gives kubectl one), the command runs on a pty.
    let line = format!(
        "/usr/bin/kubectl --kubeconfig {} exec -it sleeper -- sh -c 'tty; test -t 1 && echo on-a-terminal'",
        cluster.kubeconfig.display()
    );
    let mut script = cluster.ns.command("script");
    script.args(["-qec", &line, "/dev/null"]);
    let out = skiff_tests::run_with_timeout(script, Duration::from_secs(60));
    assert!(
        out.ok && out.stdout.contains("/dev/pts/") && out.stdout.contains("on-a-terminal"),
        "exec -it: {}\n{}\n{}",
        out.stdout,
        out.stderr,
        cluster.logs()
    );

    // kubectl before 1.30 speaks SPDY/3.1 instead of WebSocket.
    for minor in [27, 29] {
        let old = kubectl_minor(minor);
        let what = format!("kubectl 1.{minor}");
        let r = run_kubectl(
            &cluster,
            &old,
            &["exec", "sleeper", "--", "echo", "hi"],
            b"",
        );
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (Some(0), "hi\n"),
            "{}",
            show(&what, &r)
        );
        let r = run_kubectl(
            &cluster,
            &old,
            &["exec", "sleeper", "--", "sh", "-c", "echo err >&2; exit 3"],
            b"",
        );
        assert_eq!(r.code, Some(3), "{}", show(&what, &r));
        assert!(r.stderr.contains("err"), "{}", show(&what, &r));
        let r = run_kubectl(
            &cluster,
            &old,
            &["exec", "-i", "sleeper", "--", "cat"],
            data,
        );
        assert_eq!(r.stdout.as_bytes(), data, "{}", show(&what, &r));
        assert_eq!(r.code, Some(0), "{}", show(&what, &r));
    }

    // Attach is refused with a readable error for now.
    let r = kubectl_with_input(&cluster, &["attach", "sleeper"], b"");
    assert_ne!(r.code, Some(0), "{}", show("attach", &r));
}

/// Starts `cmd` with stdout and stderr going to `log`.
fn spawn_logged(cmd: &mut Command, log: &std::path::Path) -> std::process::Child {
    let file = std::fs::File::create(log).expect("creating log");
    let err = file.try_clone().expect("cloning log");
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// Kills the port-forward process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn port_forward_reaches_a_pod_port() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::start("pfwd");
    cluster.kubectl_ok(&[
        "run",
        "web",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "mkdir -p /www && echo hi from web > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    wait_for("web to run", Duration::from_secs(90), || {
        let phase = cluster
            .kubectl(&["get", "pod", "web", "-o", "jsonpath={.status.phase}"])
            .stdout;
        (phase == "Running").then_some(())
    });
    // kubectl listens on the namespace's loopback; everything stays inside the namespace.
    let log = cluster.dir.path().join("logs/port-forward.log");
    let mut cmd = cluster.ns.command("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(&cluster.kubeconfig).args([
        "port-forward",
        "pod/web",
        "18080:8080",
        "-v=4",
    ]);
    let _pf = KillOnDrop(spawn_logged(&mut cmd, &log));
    wait_for("port-forward to listen", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Forwarding from 127.0.0.1:18080")
            .then_some(())
    });
    // Two connections in a row: each is its own pair of streams.
    for round in 0..2 {
        let mut curl = cluster.ns.command("curl");
        curl.args(["-sS", "--max-time", "20", "http://127.0.0.1:18080/"]);
        let out = skiff_tests::run_with_timeout(curl, Duration::from_secs(30));
        assert!(
            out.ok && out.stdout == "hi from web\n",
            "round {round}: curl through port-forward: {}\n{}\nport-forward log:\n{}\n{}",
            out.stdout,
            out.stderr,
            std::fs::read_to_string(&log).unwrap_or_default(),
            cluster.logs()
        );
    }
    // kubectl 1.27 goes straight to SPDY (1.31+ tries a WebSocket tunnel first, then falls back).
    let log_old = cluster.dir.path().join("logs/port-forward-127.log");
    let mut cmd = cluster.ns.command(kubectl_minor(27));
    cmd.arg("--kubeconfig").arg(&cluster.kubeconfig).args([
        "port-forward",
        "pod/web",
        "18082:8080",
    ]);
    let _pf_old = KillOnDrop(spawn_logged(&mut cmd, &log_old));
    wait_for(
        "kubectl 1.27 port-forward to listen",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log_old)
                .unwrap_or_default()
                .contains("Forwarding from 127.0.0.1:18082")
                .then_some(())
        },
    );
    let mut curl = cluster.ns.command("curl");
    curl.args(["-sS", "--max-time", "20", "http://127.0.0.1:18082/"]);
    let out = skiff_tests::run_with_timeout(curl, Duration::from_secs(30));
    assert!(
        out.ok && out.stdout == "hi from web\n",
        "kubectl 1.27 port-forward: {}\n{}\n{}",
        out.stdout,
        out.stderr,
        std::fs::read_to_string(&log_old).unwrap_or_default()
    );

    // A port nothing listens on: the connection fails and kubectl reports it.
    let log2 = cluster.dir.path().join("logs/port-forward-closed.log");
    let mut cmd = cluster.ns.command("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(&cluster.kubeconfig).args([
        "port-forward",
        "pod/web",
        "18081:9999",
    ]);
    let _pf2 = KillOnDrop(spawn_logged(&mut cmd, &log2));
    wait_for("port-forward to listen", Duration::from_secs(30), || {
        std::fs::read_to_string(&log2)
            .unwrap_or_default()
            .contains("Forwarding from 127.0.0.1:18081")
            .then_some(())
    });
    let mut curl = cluster.ns.command("curl");
    curl.args(["-sS", "--max-time", "20", "http://127.0.0.1:18081/"]);
    let out = skiff_tests::run_with_timeout(curl, Duration::from_secs(30));
    assert!(!out.ok, "nothing listens on 9999: {}", out.stdout);
    wait_for(
        "kubectl to report the error",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log2).unwrap_or_default();
            text.contains("connection refused").then_some(())
        },
    );
}

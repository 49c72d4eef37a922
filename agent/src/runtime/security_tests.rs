//! Privileged tests of security settings on real containers: dropped capabilities, a read-only
//! root, a non-root user with extra groups, seccomp with no_new_privs, and privileged mode.

use super::tests::{TestContainers, is_root};
use super::*;

/// Runs `script` in a container with `security` as `uid`, returns its log lines' text.
async fn run(
    fx: &TestContainers,
    id: &str,
    uid: u32,
    security: SecuritySpec,
    script: &str,
) -> String {
    let mut spec = fx.spec(id, &["sh", "-c", script]);
    spec.uid = uid;
    spec.gid = uid;
    spec.security = security;
    fx.start(&spec).await;
    let state = fx.wait_exited(id).await;
    assert!(matches!(state, ContainerState::Exited { .. }), "{state:?}");
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    fx.runtime.remove(id).await.unwrap();
    log.lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_settings_apply_to_the_process() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("sec");
    let chown = "echo x > /f && chown 1:1 /f && echo CHOWN-OK || echo CHOWN-DENIED";
    let out = run(&fx, "plain", 0, SecuritySpec::default(), chown).await;
    assert_eq!(out, "CHOWN-OK");
    let drop_all = SecuritySpec {
        cap_drop: vec!["ALL".into()],
        ..Default::default()
    };
    let out = run(&fx, "dropall", 0, drop_all, chown).await;
    assert!(out.contains("CHOWN-DENIED"), "{out}");

    let ro = SecuritySpec {
        read_only_root: true,
        ..Default::default()
    };
    let out = run(
        &fx,
        "ro",
        0,
        ro,
        "touch /x 2>/dev/null && echo RW || echo RO",
    )
    .await;
    assert_eq!(out, "RO");

    let user = SecuritySpec {
        additional_gids: vec![2000, 3000],
        ..Default::default()
    };
    let out = run(&fx, "user", 1000, user, "echo $(id -u) $(id -G)").await;
    assert_eq!(out, "1000 1000 2000 3000");

    let confined = SecuritySpec {
        seccomp: SeccompMode::RuntimeDefault,
        no_new_privs: true,
        ..Default::default()
    };
    let script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr '\\t' ' '";
    let out = run(&fx, "seccomp", 0, confined, script).await;
    assert_eq!(out, "NoNewPrivs: 1\nSeccomp: 2");

    let privileged = SecuritySpec {
        privileged: true,
        ..Default::default()
    };
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr '\\t' ' '; test -c /dev/kmsg && echo HOST-DEVICES";
    let out = run(&fx, "priv", 0, privileged, script).await;
    // Every capability the agent itself may hand out.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert_eq!(out, format!("CapEff: {bounding}\nSeccomp: 0\nHOST-DEVICES"));
}

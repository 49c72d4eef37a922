//! securityContext end to end: each container of one pod reports what its process may do
//! (capabilities dropped, read-only root, runAsUser with fsGroup on an emptyDir, seccomp
//! RuntimeDefault with no_new_privs, privileged), and runAsNonRoot refuses a root image with
//! the kubelet's CreateContainerConfigError.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: secure
spec:
  securityContext:
    fsGroup: 2000
    supplementalGroups: [3000]
  containers:
  - name: plain
    image: busybox
    command: ["sh", "-c", "echo x > /f && chown 1:1 /f && echo CHOWN-OK || echo CHOWN-DENIED; echo done; sleep 3600"]
  - name: dropall
    image: busybox
    securityContext:
      capabilities:
        drop: ["ALL"]
    command: ["sh", "-c", "echo x > /f && chown 1:1 /f && echo CHOWN-OK || echo CHOWN-DENIED; echo done; sleep 3600"]
  - name: readonly
    image: busybox
    securityContext:
      readOnlyRootFilesystem: true
    command: ["sh", "-c", "touch /x && echo ROOT-WRITABLE || echo ROOT-READONLY; touch /data/ok && echo VOLUME-WRITABLE; echo done; sleep 3600"]
    volumeMounts:
    - name: data
      mountPath: /data
  - name: user
    image: busybox
    securityContext:
      runAsUser: 1000
      runAsGroup: 1500
    command: ["sh", "-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) datagroup=$(stat -c %g /data); touch /data/by-user && echo USER-WRITES-VOLUME; echo done; sleep 3600"]
    volumeMounts:
    - name: data
      mountPath: /data
  - name: seccomp
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      seccompProfile:
        type: RuntimeDefault
    command: ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; echo done; sleep 3600"]
  - name: privileged
    image: busybox
    securityContext:
      privileged: true
    command: ["sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -c /dev/kmsg && echo HOST-DEVICES; echo done; sleep 3600"]
  volumes:
  - name: data
    emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: nonroot
spec:
  securityContext:
    runAsNonRoot: true
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

#[test]
fn security_context_is_enforced() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("secctx");
    cluster.create_yaml("objects.yaml", OBJECTS);
    let logs = |c: &str| {
        wait_for(
            &format!("container {c} to report"),
            Duration::from_secs(120),
            || {
                let out = cluster.kubectl(&["logs", "secure", "-c", c]).stdout;
                out.contains("done\n").then_some(out)
            },
        )
    };
    let show = |c: &str, out: &str| format!("{c}: {out}\n{}", cluster.logs());

    // The runtime's default set lets root chown; `drop: [ALL]` takes that away.
    let out = logs("plain");
    assert!(out.contains("CHOWN-OK"), "{}", show("plain", &out));
    let out = logs("dropall");
    assert!(out.contains("CHOWN-DENIED"), "{}", show("dropall", &out));

    // readOnlyRootFilesystem: the root is read-only, volumes stay writable.
    let out = logs("readonly");
    assert!(
        out.contains("ROOT-READONLY") && out.contains("VOLUME-WRITABLE"),
        "{}",
        show("readonly", &out)
    );

    // runAsUser/runAsGroup, with fsGroup and supplementalGroups as extra groups; the
    // emptyDir belongs to the fsGroup, so the non-root user can write to it.
    let out = logs("user");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.starts_with("uid=1000 gid=1500 groups=1500 2000 3000 datagroup=2000"),
        "{}",
        show("user", &out)
    );
    assert!(out.contains("USER-WRITES-VOLUME"), "{}", show("user", &out));

    // seccomp RuntimeDefault (mode 2, a filter) and no_new_privs.
    let out = logs("seccomp");
    assert!(
        out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"),
        "{}",
        show("seccomp", &out)
    );

    // privileged: every capability (all the node itself holds), no filter, the host's devices.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let out = logs("privileged");
    assert!(
        out.contains(&format!("CapEff:\t{bounding}"))
            && out.contains("Seccomp:\t0")
            && out.contains("HOST-DEVICES"),
        "{}",
        show("privileged", &out)
    );

    // runAsNonRoot with an image that runs as root: refused before it starts.
    let message = wait_for("nonroot to be refused", Duration::from_secs(90), || {
        let out = cluster
                .kubectl(&[
                    "get",
                    "pod",
                    "nonroot",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
                ])
                .stdout;
        out.starts_with("CreateContainerConfigError|")
            .then_some(out)
    });
    assert!(
        message.contains("container has runAsNonRoot and image will run as root"),
        "{message}"
    );
    let listed = cluster.kubectl_ok(&["get", "pod", "nonroot", "--no-headers"]);
    assert!(listed.contains("CreateContainerConfigError"), "{listed}");
}

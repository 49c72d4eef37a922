//! The README's kubectl walk-through, end to end, against a real cluster in a throwaway network
//! namespace: real kubectl, registry, control plane, agent, containers, cgroups and eBPF.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

fn pod_field(cluster: &Cluster, pod: &str, jsonpath: &str) -> String {
    cluster
        .kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={jsonpath}")])
        .stdout
}

fn netns_list() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn walkthrough() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let netns_before = netns_list();
    let mut cluster = Cluster::start("walk");

    // One node, Ready.
    let nodes = wait_for("the node to be Ready", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "nodes"]).stdout;
        out.lines()
            .any(|l| l.starts_with("skiff-e2e") && l.split_whitespace().nth(1) == Some("Ready"))
            .then_some(out)
    });
    assert!(nodes.starts_with("NAME"), "table header expected:\n{nodes}");
    assert!(
        nodes.contains("STATUS") && nodes.contains("VERSION"),
        "{nodes}"
    );

    // A pod that prints and exits.
    cluster.kubectl_ok(&[
        "run",
        "hello",
        "--image=busybox",
        "--restart=Never",
        "--",
        "echo",
        "hello from skiff",
    ]);
    wait_for("hello to complete", Duration::from_secs(90), || {
        (pod_field(&cluster, "hello", "{.status.phase}") == "Succeeded").then_some(())
    });
    let wide = cluster.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or_else(|| panic!("no hello row:\n{wide}"));
    assert!(
        row.contains("Completed"),
        "hello should show Completed:\n{wide}"
    );
    assert!(
        row.contains("10.42."),
        "hello should have an IP in the pod CIDR:\n{wide}"
    );
    assert!(
        row.contains("skiff-e2e"),
        "hello should show its node:\n{wide}"
    );
    let logs = cluster.kubectl_ok(&["logs", "hello"]);
    assert_eq!(logs, "hello from skiff\n", "kubectl logs hello");

    // A long-running pod, then its deletion.
    cluster.kubectl_ok(&["run", "sleeper", "--image=busybox", "--", "sleep", "3600"]);
    wait_for("sleeper to run", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "pod", "sleeper"]).stdout;
        out.lines()
            .any(|l| l.starts_with("sleeper") && l.contains("Running"))
            .then_some(())
    });
    let sleeper_uid = pod_field(&cluster, "sleeper", "{.metadata.uid}");
    let cgroup_count = |uid: &str| {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let kubepods = e.path().join(&cluster.cgroup_root).join("kubepods");
                ["", "besteffort", "burstable"]
                    .iter()
                    .any(|q| kubepods.join(q).join(format!("pod{uid}")).exists())
            })
            .count()
    };
    assert!(
        cgroup_count(&sleeper_uid) > 0,
        "sleeper should have a pod cgroup"
    );
    // SIGTERM is ignored by `sleep` as PID 1, so this waits out the grace period like Kubernetes.
    cluster.kubectl_ok(&["delete", "pod", "sleeper", "--grace-period=3"]);
    let after = cluster.kubectl(&["get", "pod", "sleeper"]);
    assert!(
        !after.ok && after.stderr.contains("(NotFound)"),
        "sleeper should be gone: {after:?}"
    );
    wait_for("sleeper's cgroup to go", Duration::from_secs(10), || {
        (cgroup_count(&sleeper_uid) == 0).then_some(())
    });
    assert!(
        !cluster.pod_process_running("sleep 3600"),
        "sleep 3600 still runs"
    );

    // A missing image is a clear pod status.
    cluster.kubectl_ok(&["run", "bad", "--image=no-such-image", "--restart=Never"]);
    let reason = wait_for("bad to fail pulling", Duration::from_secs(60), || {
        let r = pod_field(
            &cluster,
            "bad",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        matches!(r.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(r)
    });
    let message = pod_field(
        &cluster,
        "bad",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(!message.is_empty(), "{reason} should carry a message");
    let get_bad = cluster.kubectl_ok(&["get", "pod", "bad"]);
    assert!(
        get_bad.contains("ErrImagePull") || get_bad.contains("ImagePullBackOff"),
        "{get_bad}"
    );

    // A command that does not exist.
    cluster.kubectl_ok(&[
        "run",
        "nocmd",
        "--image=busybox",
        "--restart=Never",
        "--command",
        "--",
        "/no/such/cmd",
    ]);
    wait_for("nocmd to fail", Duration::from_secs(60), || {
        (pod_field(&cluster, "nocmd", "{.status.phase}") == "Failed").then_some(())
    });
    let terminated = pod_field(
        &cluster,
        "nocmd",
        "{.status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(terminated, "ContainerCannotRun");
    let msg = pod_field(
        &cluster,
        "nocmd",
        "{.status.containerStatuses[0].state.terminated.message}",
    );
    assert!(
        msg.contains("/no/such/cmd"),
        "the message should name the command: {msg}"
    );

    // Duplicate create: kubectl's AlreadyExists line.
    let dup = cluster.kubectl(&["run", "hello", "--image=busybox", "--restart=Never"]);
    assert!(
        dup.stderr
            .contains("Error from server (AlreadyExists): pods \"hello\" already exists"),
        "{dup:?}"
    );

    // Tear down: delete what is left, stop the agent, clean up, and check nothing remains.
    cluster.kubectl_ok(&["delete", "pod", "--all", "--grace-period=1"]);
    cluster.stop_agent();
    let cleanup = cluster.cleanup_agent();
    assert!(cleanup.ok, "skiff-agent cleanup failed: {cleanup:?}");
    let leftovers = cluster.leftovers();
    assert!(leftovers.is_empty(), "left behind: {leftovers:#?}");
    let links = cluster.ns.ip(&["-o", "link", "show"]);
    assert_eq!(
        links.lines().count(),
        1,
        "only lo should remain in the node namespace:\n{links}"
    );
    let routes = cluster.ns.ip(&["route", "show", "table", "all"]);
    assert!(
        !routes.contains("10.42.") && !routes.contains("10.43."),
        "routes left:\n{routes}"
    );
    let new_netns: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| !netns_before.contains(n) && *n != cluster.ns.name)
        .collect();
    assert!(
        new_netns.is_empty(),
        "pod network namespaces left: {new_netns:?}"
    );
    let remaining: Vec<i32> = cluster
        .ns
        .pids()
        .into_iter()
        .filter(|p| !is_infra(*p))
        .collect();
    assert!(
        remaining.is_empty(),
        "processes left in the node namespace besides registry and control plane: {remaining:?}"
    );
}

/// The registry and the control plane still run until the cluster guard drops.
fn is_infra(pid: i32) -> bool {
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.contains("docker-registry") || cmdline.contains("skiff-control")
}

//! The multi-node lab end to end: three nodes come up Ready with distinct pod CIDRs, a pod on
//! one node reaches a pod on another by pod IP through the node routes, and on a third node by
//! service name (that node's cluster DNS and socket LB), the external client
//! reaches node addresses but has no route to pod addresses, no lab namespace has a default
//! route, forwarding stays off on the host, and nothing is left after the lab drops.

use std::time::Duration;

use skiff_tests::lab::{self, Binaries, Lab, LabConfig};
use skiff_tests::{privileged_env, wait_for};

fn pod(name: &str, node: &str, script: &str, restart: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  restartPolicy: {restart}
  nodeSelector:
    kubernetes.io/hostname: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", {script:?}]
"#
    )
}

/// Whether `ip` lies in `cidr` (an a.b.c.0/24 as the control plane hands out).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let net = cidr.trim_end_matches("0/24");
    cidr.ends_with(".0/24") && ip.starts_with(net)
}

#[test]
fn three_node_lab_routes_pod_traffic_between_nodes() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let dir = tempfile::Builder::new()
        .prefix("skiff-lab-test-")
        .tempdir()
        .unwrap();
    let state_dir = dir.path().join("lab");
    let prefix = format!("skt-lab{}", std::process::id());
    let lab = Lab::start(LabConfig {
        prefix: prefix.clone(),
        nodes: 3,
        state_dir: state_dir.clone(),
        host_link: false,
        bins: Binaries::built(),
    })
    .unwrap_or_else(|e| panic!("lab start: {e:#}"));

    // Three Ready nodes, each with its own pod CIDR.
    let nodes = lab.kubectl_ok(&["get", "nodes", "--no-headers"]);
    assert_eq!(
        nodes.lines().filter(|l| l.contains(" Ready ")).count(),
        3,
        "{nodes}"
    );
    let mut cidrs: Vec<&str> = lab.nodes.iter().map(|n| n.pod_cidr.as_str()).collect();
    cidrs.sort_unstable();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 3, "pod CIDRs are not distinct: {cidrs:?}");

    // A web server on node2, a client on node1 that fetches from it by pod IP.
    let manifest = state_dir.join("web.yaml");
    std::fs::write(
        &manifest,
        pod(
            "web",
            "node2",
            "mkdir -p /www && echo hello-from-node2 > /www/index.html && exec httpd -f -p 8080 -h /www",
            "Always",
        ),
    )
    .unwrap();
    lab.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()]);
    let web_ip = wait_for("the web pod to run", Duration::from_secs(60), || {
        let out = lab.kubectl(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}",
        ]);
        let text = out.stdout.trim().to_string();
        let (phase, ip) = text.split_once(' ')?;
        (phase == "Running" && !ip.is_empty()).then(|| ip.to_string())
    });
    assert!(
        in_cidr(&web_ip, &lab.nodes[1].pod_cidr),
        "web pod IP {web_ip} is not in node2's {}",
        lab.nodes[1].pod_cidr
    );
    // busybox-static's `wget -T` segfaults here, so `timeout` bounds each try instead.
    let fetch = format!(
        "for i in $(seq 1 20); do if timeout 3 wget -q -O- http://{web_ip}:8080/index.html; then exit 0; fi; sleep 1; done; exit 1"
    );
    std::fs::write(&manifest, pod("fetch", "node1", &fetch, "Never")).unwrap();
    lab.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()]);
    let phase = wait_for("the fetch pod to finish", Duration::from_secs(60), || {
        let out = lab.kubectl(&["get", "pod", "fetch", "-o", "jsonpath={.status.phase}"]);
        let phase = out.stdout.trim().to_string();
        (phase == "Succeeded" || phase == "Failed").then_some(phase)
    });
    let logs = lab.kubectl_ok(&["logs", "fetch"]);
    assert_eq!(
        (phase.as_str(), logs.trim()),
        ("Succeeded", "hello-from-node2"),
        "cross-node fetch from node1 to {web_ip} on node2\n{}",
        lab.logs()
    );
    let fetch_ip = lab.kubectl_ok(&["get", "pod", "fetch", "-o", "jsonpath={.status.podIP}"]);
    assert!(
        in_cidr(fetch_ip.trim(), &lab.nodes[0].pod_cidr),
        "fetch pod IP {fetch_ip} is not in node1's {}",
        lab.nodes[0].pod_cidr
    );

    // A ClusterIP service in front of the web pod, by name from node3: that node's cluster
    // DNS resolves it and its socket LB sends the connect to the backend on node2.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n",
    )
    .unwrap();
    lab.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()]);
    let fetch_svc = "for i in $(seq 1 30); do if timeout 3 wget -q -O- http://web/index.html; then exit 0; fi; sleep 1; done; exit 1";
    std::fs::write(&manifest, pod("fetch-svc", "node3", fetch_svc, "Never")).unwrap();
    lab.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()]);
    let phase = wait_for(
        "the fetch-svc pod to finish",
        Duration::from_secs(90),
        || {
            let out = lab.kubectl(&["get", "pod", "fetch-svc", "-o", "jsonpath={.status.phase}"]);
            let phase = out.stdout.trim().to_string();
            (phase == "Succeeded" || phase == "Failed").then_some(phase)
        },
    );
    let logs = lab.kubectl_ok(&["logs", "fetch-svc"]);
    assert_eq!(
        (phase.as_str(), logs.trim()),
        ("Succeeded", "hello-from-node2"),
        "http://web/ from node3\n{}",
        lab.logs()
    );

    // The external client reaches node addresses, but has no route to any pod address.
    for node in &lab.nodes {
        let out = lab
            .client
            .command("/bin/busybox")
            .args(["ping", "-c", "1", "-W", "2", &node.ip.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "client cannot ping node {}", node.ip);
    }
    let out = lab
        .client
        .command("ip")
        .args(["route", "get", &web_ip])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the external client has a route to pod {web_ip}: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // No lab namespace has a default route; forwarding is on in nodes only, never on the host.
    let mut namespaces = vec![&lab.switch, &lab.control, &lab.client];
    namespaces.extend(lab.nodes.iter().map(|n| &n.ns));
    for ns in namespaces {
        let routes = ns.ip(&["route", "show", "default"]).unwrap();
        assert!(
            routes.trim().is_empty(),
            "{} has a default route: {routes}",
            ns.name
        );
    }
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(
        host_forward.trim(),
        "0",
        "forwarding was turned on in the host"
    );

    drop(lab);
    let left = lab::leftovers(&prefix, &state_dir);
    assert!(left.is_empty(), "the lab left things behind: {left:#?}");
}

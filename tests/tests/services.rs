//! ClusterIP services end to end with the real kubectl: a Deployment of three busybox httpd
//! pods behind a Service (targetPort by name), reached from another pod through the agent's
//! socket-level eBPF load balancer — every backend answers, a selector-less Service with a
//! hand-written EndpointSlice works, names resolve through the agent's cluster DNS (search
//! paths, SRV, NXDOMAIN), sessionAffinity ClientIP sticks, a process on the node reaches the ClusterIP too, no iptables rule is
//! involved, `kill -9` of the agent does not interrupt service, and a Service scaled to zero
//! refuses connections at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    # Once told a target (by exec), requests it every 0.2 s on its own, logging ok/fail: this
    # keeps going while the agent (and with it exec) is down.
    command: ["sh", "-c", "while true; do if [ -f /tmp/target ]; then if timeout 3 wget -qO- http://$(cat /tmp/target)/ >/dev/null 2>&1; then echo ok; else echo fail; fi >> /tmp/results; fi; sleep 0.2; done"]
"#;

/// Runs `n` sequential `wget`s of `url` in the client pod; returns what each printed (one
/// line per success) and the whole output.
fn fetch(cluster: &Cluster, url: &str, n: u32) -> (Vec<String>, String) {
    let script =
        format!("for i in $(seq {n}); do timeout 3 wget -qO- {url} 2>&1 || echo FAILED; done");
    let out = cluster.kubectl_ok(&["exec", "client", "--", "sh", "-c", &script]);
    let lines = out.lines().map(|l| l.trim().to_string()).collect();
    (lines, out)
}

fn web_pods(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
}

fn ready_web_ips(cluster: &Cluster) -> Vec<String> {
    let out = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| l.strip_suffix(" True").map(str::to_string))
        .collect()
}

/// Whether a process with this command line runs in this cluster's part of the cgroup2 mount
/// (where the service load balancer's socket programs apply).
fn in_lb_cgroup(cluster: &Cluster, cmdline: &str) -> bool {
    let marker = format!("0::/{}/kubepods/", cluster.cgroup_root);
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        cg.lines().any(|l| l.starts_with(&marker))
            && String::from_utf8_lossy(&cmd).replace('\0', " ").trim_end() == cmdline
    })
}

#[test]
fn cluster_ip_services_balance_survive_agent_restarts_and_refuse_without_backends() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let mut cluster = Cluster::start("svc");
    wait_for(
        "the default service account",
        Duration::from_secs(60),
        || {
            cluster
                .kubectl(&["get", "serviceaccount", "default"])
                .ok
                .then_some(())
        },
    );
    let manifests = cluster.dir.path().join("services.yaml");
    std::fs::write(&manifests, MANIFESTS).unwrap();
    cluster.kubectl_ok(&["apply", "-f", manifests.to_str().unwrap()]);
    wait_for("3 ready web pods", Duration::from_secs(120), || {
        (ready_web_ips(&cluster).len() == 3).then_some(())
    });
    wait_for("the client pod", Duration::from_secs(60), || {
        let phase = cluster
            .kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.phase}"])
            .stdout;
        (phase == "Running").then_some(())
    });
    assert!(
        in_lb_cgroup(&cluster, "httpd -f -p 8080 -h /www"),
        "pod processes live in the agent's cgroup2 subtree"
    );
    let ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let url = format!("http://{ip}/");
    let pods = web_pods(&cluster);

    // Every backend answers within 60 requests (all of them answered by some backend).
    let seen = wait_for(
        "the service to reach all backends",
        Duration::from_secs(60),
        || {
            let (lines, out) = fetch(&cluster, &url, 60);
            assert!(
                lines.iter().all(|l| pods.contains(l)),
                "unexpected answers:\n{out}"
            );
            let seen: BTreeSet<String> = lines.into_iter().collect();
            (seen == pods).then_some(seen)
        },
    );
    assert_eq!(seen.len(), 3);

    // Cluster DNS: the pod's resolv.conf (search path, ndots:5) names the cluster DNS address,
    // which the agent's socket LB sends to its DNS server.
    let nslookup = cluster.kubectl_ok(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "nslookup web 2>&1 || true",
    ]);
    assert!(
        nslookup.contains(&format!("Address: {ip}"))
            || nslookup.contains(&format!("Address:\t{ip}")),
        "nslookup web:\n{nslookup}"
    );
    for name in ["web", "web.default", "web.default.svc.cluster.local"] {
        let (lines, out) = fetch(&cluster, &format!("http://{name}/"), 3);
        assert!(
            lines.len() == 3 && lines.iter().all(|l| pods.contains(l)),
            "wget http://{name}/:\n{out}"
        );
    }
    let srv = cluster.kubectl_ok(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "nslookup -type=srv _web._tcp.web.default.svc.cluster.local 2>&1 || true",
    ]);
    assert!(
        srv.contains("web.default.svc.cluster.local") && srv.contains(" 80 "),
        "SRV for the named port:\n{srv}"
    );
    let missing = cluster.kubectl_ok(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "nslookup nope 2>&1; echo rc=$?",
    ]);
    assert!(
        !missing.contains("rc=0") && !missing.contains("Address: 10.43."),
        "an unknown name does not resolve:\n{missing}"
    );

    // sessionAffinity ClientIP: one client (pod) sticks to one backend; back to None, it
    // spreads again.
    cluster.kubectl_ok(&[
        "patch", "svc", "web", "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}}}}"#,
    ]);
    wait_for("session affinity", Duration::from_secs(30), || {
        let (lines, _) = fetch(&cluster, &url, 15);
        let distinct: BTreeSet<String> = lines.into_iter().collect();
        (distinct.len() == 1 && pods.is_superset(&distinct)).then_some(())
    });
    cluster.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);
    wait_for("affinity off again", Duration::from_secs(30), || {
        let (lines, _) = fetch(&cluster, &url, 40);
        let distinct: BTreeSet<String> = lines.into_iter().collect();
        (distinct == pods).then_some(())
    });

    // From the node itself: a process in the agent's socket-LB cgroup (here this cluster's
    // subtree; on a real node the cgroup2 root) reaches the ClusterIP without any pod netns.
    let node_cgroup = format!("/sys/fs/cgroup/unified/{}/node-test", cluster.cgroup_root);
    std::fs::create_dir_all(&node_cgroup).unwrap();
    let out = cluster
        .ns
        .command("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {node_cgroup}/cgroup.procs && for i in 1 2 3; do timeout 5 wget -q -O- {url}; done"
            ),
        ])
        .output()
        .unwrap();
    let answers = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = answers.lines().collect();
    assert!(
        lines.len() == 3 && lines.iter().all(|l| pods.contains(*l)),
        "from the node: {answers} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A selector-less Service with a hand-written EndpointSlice (unnamed port).
    let one_ip = ready_web_ips(&cluster).remove(0);
    let manual = cluster.dir.path().join("manual.yaml");
    std::fs::write(
        &manual,
        format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: manual}}
spec:
  ports: [{{port: 8081}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels: {{kubernetes.io/service-name: manual}}
addressType: IPv4
ports: [{{port: 8080, protocol: TCP}}]
endpoints: [{{addresses: ["{one_ip}"], conditions: {{ready: true}}}}]
"#
        ),
    )
    .unwrap();
    cluster.kubectl_ok(&["apply", "-f", manual.to_str().unwrap()]);
    let manual_ip =
        cluster.kubectl_ok(&["get", "svc", "manual", "-o", "jsonpath={.spec.clusterIP}"]);
    let answers = wait_for("the manual service", Duration::from_secs(30), || {
        let (lines, _) = fetch(&cluster, &format!("http://{manual_ip}:8081/"), 5);
        lines.iter().all(|l| pods.contains(l)).then_some(lines)
    });
    let distinct: BTreeSet<&String> = answers.iter().collect();
    assert_eq!(distinct.len(), 1, "one endpoint, one backend: {answers:?}");

    // No iptables rules for services: the data path is the eBPF programs alone.
    let save = cluster.ns.command("iptables-save").output();
    if let Ok(save) = save {
        let rules = String::from_utf8_lossy(&save.stdout);
        for needle in [ip.as_str(), manual_ip.as_str(), "KUBE-", "skiff"] {
            assert!(!rules.contains(needle), "iptables has {needle:?}:\n{rules}");
        }
    }

    // kill -9 of the agent: the pinned programs and maps keep serving while no agent runs and
    // after the new one has reconciled them. The client pod's own loop measures it (exec needs
    // the agent).
    cluster.kubectl_ok(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        &format!("echo {ip} > /tmp/target"),
    ]);
    // The loop's log, empty until its first request has finished.
    let results = |c: &Cluster| {
        c.kubectl(&["exec", "client", "--", "cat", "/tmp/results"])
            .stdout
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_for("the client loop to run", Duration::from_secs(30), || {
        (results(&cluster).len() >= 3).then_some(())
    });
    let before = results(&cluster).len();
    cluster.kill_agent();
    std::thread::sleep(Duration::from_secs(4));
    cluster.start_agent();
    std::thread::sleep(Duration::from_secs(4));
    let after = wait_for(
        "exec through the new agent",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&["exec", "client", "--", "cat", "/tmp/results"]);
            out.ok
                .then(|| out.stdout.lines().map(str::to_string).collect::<Vec<_>>())
        },
    );
    let during = &after[before..];
    assert!(during.len() >= 15, "the loop ran {} times", during.len());
    assert!(
        during.iter().all(|l| l == "ok"),
        "requests failed across the agent restart: {during:?}"
    );
    cluster.kubectl_ok(&["exec", "client", "--", "rm", "/tmp/target"]);
    let (lines, out) = fetch(&cluster, &url, 10);
    assert!(
        lines.len() == 10 && lines.iter().all(|l| pods.contains(l)),
        "after the restart:\n{out}"
    );

    // Scaled to zero: the connect is refused at once instead of hanging.
    cluster.kubectl_ok(&["scale", "deployment", "web", "--replicas=0"]);
    // (While pods terminate, the slice may still offer them as serving+terminating fallbacks.)
    wait_for("the web pods to be gone", Duration::from_secs(60), || {
        web_pods(&cluster).is_empty().then_some(())
    });
    let out = wait_for("connects to be refused", Duration::from_secs(60), || {
        let (_, out) = fetch(&cluster, &url, 1);
        out.contains("refused").then_some(out)
    });
    let started = Instant::now();
    let (_, out2) = fetch(&cluster, &url, 3);
    assert_eq!(out2.matches("refused").count(), 3, "{out2}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "three refused connects took {:?} ({out})",
        started.elapsed()
    );
}

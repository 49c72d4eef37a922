//! Service endpoints end to end with the real kubectl and a real agent: a Deployment of two
//! busybox httpd pods behind a Service shows both pod IPs in `kubectl get endpoints` and in
//! its EndpointSlices; scaling to 0 empties both.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

/// The IPs of the deployment's running, non-terminating pods.
fn pod_ips(cluster: &Cluster) -> Vec<String> {
    let out = cluster
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.status.podIP} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .stdout;
    let mut ips: Vec<String> = out
        .lines()
        .filter(|l| l.split_whitespace().count() == 1)
        .map(|l| l.trim().to_string())
        .collect();
    ips.sort();
    ips
}

/// The ENDPOINTS column of `kubectl get <what>` for the row starting with `name`.
fn endpoints_cell(cluster: &Cluster, args: &[&str], col: usize) -> Option<String> {
    let out = cluster.kubectl(args).stdout;
    let row = out.lines().nth(1)?;
    row.split_whitespace().nth(col).map(str::to_string)
}

fn sorted(cell: &str) -> Vec<String> {
    let mut v: Vec<String> = cell.split(',').map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn service_endpoints_follow_the_pods() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::start("endpoints");
    cluster.wait_ready();

    cluster.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
        "--port=8080",
        "--",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/",
    ]);
    // httpd as PID 1 ignores SIGTERM: keep the grace period short so scaling down is quick.
    cluster.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1}}}}"#,
    ]);
    cluster.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let ips = wait_for("two pod IPs", Duration::from_secs(30), || {
        let ips = pod_ips(&cluster);
        (ips.len() == 2).then_some(ips)
    });
    let want: Vec<String> = ips.iter().map(|ip| format!("{ip}:8080")).collect();

    // kubectl get endpoints web → NAME ENDPOINTS AGE.
    wait_for(
        "both pods in the Endpoints",
        Duration::from_secs(30),
        || {
            let cell = endpoints_cell(&cluster, &["get", "endpoints", "web"], 1)?;
            (sorted(&cell) == want).then_some(())
        },
    );
    // kubectl get endpointslices -l … → NAME ADDRESSTYPE PORTS ENDPOINTS AGE.
    let slices = &[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ];
    wait_for("both pods in the slice", Duration::from_secs(30), || {
        let out = cluster.kubectl(slices).stdout;
        let row: Vec<&str> = out.lines().nth(1)?.split_whitespace().collect();
        (out.lines().count() == 2
            && row[0].starts_with("web-")
            && row[1] == "IPv4"
            && row[2] == "8080"
            && sorted(row[3]) == ips)
            .then_some(())
    });
    let owner = cluster.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "jsonpath={.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name} {.items[0].endpoints[*].conditions.ready}",
    ]);
    assert_eq!(owner, "Service/web true true");

    // Scale to 0: both empty out.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=0"]);
    wait_for("the Endpoints to empty", Duration::from_secs(60), || {
        let cell = endpoints_cell(&cluster, &["get", "endpoints", "web"], 1)?;
        (cell == "<none>").then_some(())
    });
    wait_for("the slice to empty", Duration::from_secs(60), || {
        let cell = endpoints_cell(&cluster, slices, 3)?;
        (cell == "<unset>").then_some(())
    });

    // Deleting the service removes its Endpoints and slices.
    cluster.kubectl_ok(&["delete", "service", "web"]);
    wait_for("the Endpoints to go", Duration::from_secs(30), || {
        (!cluster.kubectl(&["get", "endpoints", "web"]).ok).then_some(())
    });
    wait_for("the slices to go", Duration::from_secs(30), || {
        cluster
            .kubectl(slices)
            .stdout
            .trim()
            .is_empty()
            .then_some(())
    });
}

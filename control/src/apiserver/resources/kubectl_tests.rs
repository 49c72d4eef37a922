//! End-to-end: the real `/usr/bin/kubectl` (1.27, 1.30, 1.33, picked by the server's reported
//! minor; 1.33 sends its generator objects as protobuf) against the router over TLS on
//! 127.0.0.1 — creating, listing and scaling the built-in kinds beyond pods.

use std::net::Ipv4Addr;

use crate::apiserver::test_server::TestServer;

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn in_service_range(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    ip.octets()[..2] == [10, 43] && ip != Ipv4Addr::new(10, 43, 0, 0)
}

async fn deployments(s: &TestServer) {
    let out = s
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=2",
        ])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let t = rows(&s.ok(&["get", "deploy"]).await);
    assert_eq!(t[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(t[1][..4], ["web", "0/2", "0", "0"]);
    let wide = rows(&s.ok(&["get", "deploy", "-o", "wide"]).await);
    assert_eq!(wide[0][5..], ["CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(wide[1][5..], ["busybox", "busybox", "app=web"]);

    let out = s.ok(&["scale", "deploy", "web", "--replicas=3"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let got = s
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.restartPolicy}"])
        .await;
    assert_eq!(got, "3 2 25% Always");
    let scale = s
        .ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ])
        .await;
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");

    let described = s.ok(&["describe", "deploy", "web"]).await;
    for want in [
        "Replicas:",
        "3 desired",
        "StrategyType:",
        "RollingUpdate",
        "25% max unavailable, 25% max surge",
        "Image:",
    ] {
        assert!(
            described.contains(want),
            "{want:?} missing from\n{described}"
        );
    }

    let applied = s.file(
        "applied.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 2\n  selector:\n    matchLabels:\n      app: db\n  template:\n    metadata:\n      labels:\n        app: db\n    spec:\n      containers:\n      - name: db\n        image: busybox:1.36\n",
    );
    assert_eq!(
        s.ok(&["apply", "-f", &applied]).await.trim(),
        "statefulset.apps/db created"
    );
    let t = rows(&s.ok(&["get", "sts"]).await);
    assert_eq!(t[0], ["NAME", "READY", "AGE"]);
    assert_eq!(t[1][..2], ["db", "0/2"]);
    assert_eq!(
        s.ok(&["scale", "sts", "db", "--replicas=1"]).await.trim(),
        "statefulset.apps/db scaled"
    );

    let bad = s.file(
        "bad-deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  selector:\n    matchLabels:\n      app: other\n  template:\n    metadata:\n      labels:\n        app: bad\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    );
    let err = s.fails(&["create", "-f", &bad]).await;
    assert!(
        err.contains(r#"The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"bad"}: `selector` does not match template `labels`"#),
        "{err}"
    );
}

async fn config_kinds(s: &TestServer) {
    let out = s
        .ok(&["create", "configmap", "c", "--from-literal=a=b"])
        .await;
    assert_eq!(out.trim(), "configmap/c created");
    assert_eq!(
        s.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]).await,
        "b"
    );
    let t = rows(&s.ok(&["get", "cm", "c"]).await);
    assert_eq!(t[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(t[1][..2], ["c", "1"]);

    let out = s
        .ok(&["create", "secret", "generic", "s", "--from-literal=p=q"])
        .await;
    assert_eq!(out.trim(), "secret/s created");
    assert_eq!(
        s.ok(&["get", "secret", "s", "-o", "jsonpath={.data.p} {.type}"])
            .await,
        "cQ== Opaque"
    );
    let t = rows(&s.ok(&["get", "secrets"]).await);
    assert_eq!(t[0], ["NAME", "TYPE", "DATA", "AGE"]);
    let with_string_data = s.file(
        "sd.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sd\nstringData:\n  user: admin\n",
    );
    s.ok(&["create", "-f", &with_string_data]).await;
    assert_eq!(
        s.ok(&["get", "secret", "sd", "-o", "jsonpath={.data.user}"])
            .await,
        "YWRtaW4="
    );
    assert_eq!(
        s.ok(&["create", "serviceaccount", "robot"]).await.trim(),
        "serviceaccount/robot created"
    );
    assert_eq!(
        rows(&s.ok(&["get", "sa", "robot"]).await)[0],
        ["NAME", "SECRETS", "AGE"]
    );
}

async fn services(s: &TestServer) {
    let out = s
        .ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await;
    assert_eq!(out.trim(), "service/web created");
    let ip = s
        .ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert!(in_service_range(&ip), "{ip}");
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ])
        .await,
        "8080"
    );
    let t = rows(&s.ok(&["get", "svc"]).await);
    assert_eq!(
        t[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        t[1][..5],
        ["kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    );
    assert_eq!(
        t[2][..5],
        ["web", "ClusterIP", ip.as_str(), "<none>", "80/TCP"]
    );
    let wide = rows(&s.ok(&["get", "svc", "web", "-o", "wide"]).await);
    assert_eq!(wide[0].last().unwrap(), "SELECTOR");
    assert_eq!(wide[1].last().unwrap(), "app=web");

    let err = s
        .fails(&[
            "create",
            "service",
            "clusterip",
            "dup",
            "--clusterip=10.43.0.1",
            "--tcp=80",
        ])
        .await;
    assert!(
        err.contains(r#"Service "dup" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.1"}: failed to allocate IP 10.43.0.1: provided IP is already allocated"#),
        "{err}"
    );
    let out = s
        .ok(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:8080",
            "--node-port=30080",
        ])
        .await;
    assert_eq!(out.trim(), "service/np created");
    let err = s
        .fails(&[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=80",
            "--node-port=30080",
        ])
        .await;
    assert!(err.contains("provided port is already allocated"), "{err}");
    let t = rows(&s.ok(&["get", "svc", "np"]).await);
    assert_eq!(t[1][4], "80:30080/TCP");

    let described = s.ok(&["describe", "svc", "web"]).await;
    let field = |name: &str| {
        described
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("IP:"), ip, "{described}");
    assert_eq!(field("TargetPort:"), "8080/TCP", "{described}");

    // `expose` reads the deployment's selector and creates a service for it.
    let out = s
        .ok(&[
            "expose",
            "deploy",
            "web",
            "--name=exposed",
            "--port=80",
            "--target-port=8080",
        ])
        .await;
    assert_eq!(out.trim(), "service/exposed exposed");
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "exposed",
            "-o",
            "jsonpath={.spec.selector.app}"
        ])
        .await,
        "web"
    );
}

async fn batch(s: &TestServer) {
    let out = s.ok(&["create", "job", "j", "--image=busybox"]).await;
    assert_eq!(out.trim(), "job.batch/j created");
    let uid = s
        .ok(&["get", "job", "j", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let sel = s
        .ok(&["get", "job", "j", "-o", "jsonpath={.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid} {.spec.backoffLimit} {.spec.completions}"])
        .await;
    assert_eq!(sel, format!("{uid} 6 1"));
    let t = rows(&s.ok(&["get", "jobs"]).await);
    assert_eq!(t[0][..4], ["NAME", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(t[1][..2], ["j", "0/1"]);

    let out = s
        .ok(&[
            "create",
            "cronjob",
            "cj",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ])
        .await;
    assert_eq!(out.trim(), "cronjob.batch/cj created");
    let t = s.ok(&["get", "cj"]).await;
    let header = t.lines().next().unwrap();
    for col in ["SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"] {
        assert!(header.contains(col), "{t}");
    }
    assert!(t.lines().nth(1).unwrap().contains("*/5 * * * *"), "{t}");
    let err = s
        .fails(&[
            "create",
            "cronjob",
            "bad",
            "--image=busybox",
            "--schedule=61 * * * *",
        ])
        .await;
    assert!(
        err.contains(r#"CronJob "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{err}"
    );
}

async fn discovery_and_get_all(s: &TestServer) {
    let out = s.ok(&["api-resources"]).await;
    let listed = rows(&out);
    for (name, short, gv, kind) in [
        ("configmaps", "cm", "v1", "ConfigMap"),
        ("services", "svc", "v1", "Service"),
        ("endpoints", "ep", "v1", "Endpoints"),
        ("limitranges", "limits", "v1", "LimitRange"),
        ("resourcequotas", "quota", "v1", "ResourceQuota"),
        ("serviceaccounts", "sa", "v1", "ServiceAccount"),
        ("deployments", "deploy", "apps/v1", "Deployment"),
        ("replicasets", "rs", "apps/v1", "ReplicaSet"),
        ("daemonsets", "ds", "apps/v1", "DaemonSet"),
        ("statefulsets", "sts", "apps/v1", "StatefulSet"),
        ("cronjobs", "cj", "batch/v1", "CronJob"),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "PodDisruptionBudget",
        ),
    ] {
        assert!(
            listed.iter().any(|r| r.len() == 5
                && r[0] == name
                && r[1] == short
                && r[2] == gv
                && r[4] == kind),
            "{name} missing from\n{out}"
        );
    }
    for (name, gv) in [
        ("jobs", "batch/v1"),
        ("secrets", "v1"),
        ("endpointslices", "discovery.k8s.io/v1"),
        ("roles", "rbac.authorization.k8s.io/v1"),
        ("clusterrolebindings", "rbac.authorization.k8s.io/v1"),
    ] {
        assert!(
            listed
                .iter()
                .any(|r| r[0] == name && r.contains(&gv.to_string())),
            "{name} missing from\n{out}"
        );
    }
    assert!(out.contains("events.k8s.io/v1"), "{out}");

    let all = s.ok(&["get", "all"]).await;
    for want in [
        "service/kubernetes",
        "service/web",
        "deployment.apps/web",
        "job.batch/j",
        "cronjob.batch/cj",
    ] {
        assert!(all.contains(want), "{want} missing from\n{all}");
    }
}

async fn rbac(s: &TestServer) {
    let out = s
        .ok(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ])
        .await;
    assert_eq!(out.trim(), "role.rbac.authorization.k8s.io/reader created");
    let out = s
        .ok(&[
            "create",
            "rolebinding",
            "rb",
            "--role=reader",
            "--user=alice",
        ])
        .await;
    assert_eq!(
        out.trim(),
        "rolebinding.rbac.authorization.k8s.io/rb created"
    );
    let t = rows(&s.ok(&["get", "rolebinding", "rb"]).await);
    assert_eq!(t[0], ["NAME", "ROLE", "AGE"]);
    assert_eq!(t[1][..2], ["rb", "Role/reader"]);
    let out = s
        .ok(&[
            "create",
            "pdb",
            "p",
            "--selector=app=web",
            "--min-available=1",
        ])
        .await;
    assert_eq!(out.trim(), "poddisruptionbudget.policy/p created");
}

async fn scenario(minor: u32) {
    let s = TestServer::start(minor).await;
    deployments(&s).await;
    config_kinds(&s).await;
    services(&s).await;
    batch(&s).await;
    rbac(&s).await;
    discovery_and_get_all(&s).await;
    // kubectl 1.32+ sends its generator objects as protobuf; older ones as JSON.
    let want = if minor >= 32 {
        crate::apiserver::protobuf::MEDIA_TYPE
    } else {
        "application/json"
    };
    for path in [
        "/apis/apps/v1/namespaces/default/deployments",
        "/api/v1/namespaces/default/services",
        "/apis/batch/v1/namespaces/default/jobs",
        "/apis/batch/v1/namespaces/default/cronjobs",
        "/api/v1/namespaces/default/secrets",
    ] {
        let cts = s.posts_to(path);
        assert!(
            !cts.is_empty() && cts.iter().any(|ct| ct == want),
            "kubectl 1.{minor} POST {path}: {cts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_builtin_kinds() {
    scenario(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_30_builtin_kinds() {
    scenario(30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_builtin_kinds() {
    scenario(33).await;
}

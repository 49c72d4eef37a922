//! Volumes and ConfigMap/Secret env end to end with the real kubectl: a pod reads a configMap
//! volume and a variable from a Secret (`kubectl logs`), a ConfigMap update reaches the mounted
//! file in seconds, two containers share an emptyDir, and missing references show the kubelet's
//! CreateContainerConfigError / FailedMount.

use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  mode: fast
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels:
    app: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo \"pass=$PASSWORD cfg_greeting=$CFG_greeting\"; last=; while true; do v=$(cat /etc/app/mode); if [ \"$v\" != \"$last\" ]; then echo \"mode=$v\"; last=$v; fi; sleep 0.2; done"]
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef:
          name: creds
          key: password
    envFrom:
    - prefix: CFG_
      configMapRef:
        name: app-config
    volumeMounts:
    - name: cfg
      mountPath: /etc/app
  volumes:
  - name: cfg
    configMap:
      name: app-config
---
apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: busybox
    command: ["sh", "-c", "echo from-writer > /shared/note; sleep 3600"]
    volumeMounts:
    - name: scratch
      mountPath: /shared
  - name: reader
    image: busybox
    command: ["sh", "-c", "while [ ! -f /data/note ]; do sleep 0.2; done; cat /data/note; sleep 3600"]
    volumeMounts:
    - name: scratch
      mountPath: /data
  volumes:
  - name: scratch
    emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: missing-env
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    env:
    - name: X
      valueFrom:
        configMapKeyRef:
          name: nope
          key: k
---
apiVersion: v1
kind: Pod
metadata:
  name: missing-volume
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - name: cfg
      mountPath: /cfg
  volumes:
  - name: cfg
    configMap:
      name: nope
"#;

fn field(cluster: &Cluster, name: &str, path: &str) -> String {
    cluster
        .kubectl(&["get", "pod", name, "-o", &format!("jsonpath={path}")])
        .stdout
}

fn status_column(cluster: &Cluster, name: &str) -> String {
    let out = cluster
        .kubectl(&["get", "pod", name, "--no-headers"])
        .stdout;
    out.split_whitespace().nth(2).unwrap_or("").to_string()
}

#[test]
fn config_maps_secrets_and_volumes() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("volumes");
    cluster.create_yaml("objects.yaml", OBJECTS);

    // A configMap volume and env from a Secret and a ConfigMap.
    wait_for("reader to print", Duration::from_secs(90), || {
        let logs = cluster.kubectl(&["logs", "reader"]).stdout;
        logs.contains("mode=fast").then_some(())
    });
    let logs = cluster.kubectl_ok(&["logs", "reader"]);
    assert!(
        logs.starts_with("pass=s3cr3t cfg_greeting=hello\nmode=fast\n"),
        "{logs}"
    );

    // An update reaches the mounted file (upstream: within the ~60 s sync period).
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    let patched = Instant::now();
    wait_for("the update in the volume", Duration::from_secs(60), || {
        let logs = cluster.kubectl(&["logs", "reader"]).stdout;
        logs.contains("mode=slow").then_some(())
    });
    let took = patched.elapsed();
    assert!(took < Duration::from_secs(15), "update took {took:?}");
    eprintln!("configMap update seen in the volume after {took:?}");

    // Two containers share an emptyDir.
    wait_for("the shared note", Duration::from_secs(60), || {
        let logs = cluster.kubectl(&["logs", "shared", "-c", "reader"]).stdout;
        (logs == "from-writer\n").then_some(())
    });

    // A missing ConfigMap in env: CreateContainerConfigError with the kubelet's message.
    wait_for(
        "missing-env to show CreateContainerConfigError",
        Duration::from_secs(60),
        || (status_column(&cluster, "missing-env") == "CreateContainerConfigError").then_some(()),
    );
    assert_eq!(
        field(
            &cluster,
            "missing-env",
            "{.status.containerStatuses[0].state.waiting.message}"
        ),
        "configmap \"nope\" not found"
    );

    // A missing ConfigMap volume: ContainerCreating and a FailedMount event.
    assert_eq!(
        status_column(&cluster, "missing-volume"),
        "ContainerCreating"
    );
    let events = wait_for("a FailedMount event", Duration::from_secs(30), || {
        let out = cluster
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=missing-volume",
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ])
            .stdout;
        out.contains("FailedMount").then_some(out)
    });
    assert!(
        events.contains(
            "FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"nope\" not found"
        ),
        "{events}"
    );
    // Creating the ConfigMap lets the pod start.
    cluster.kubectl_ok(&["create", "configmap", "nope", "--from-literal=k=v"]);
    wait_for("missing-volume to run", Duration::from_secs(60), || {
        (status_column(&cluster, "missing-volume") == "Running").then_some(())
    });

    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "reader",
        "shared",
        "missing-env",
        "missing-volume",
        "--grace-period=1",
    ]);
    wait_for("the pods to be gone", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "pods", "--no-headers"]).stdout;
        out.trim().is_empty().then_some(())
    });
    let leftovers = cluster.leftovers();
    let mounts: Vec<&String> = leftovers
        .iter()
        .filter(|l| l.starts_with("mount"))
        .collect();
    assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
}

//! imagePullSecrets end to end: a second Debian docker-registry with htpasswd (bcrypt) auth
//! holding the busybox image; a pod without credentials fails with ErrImagePull naming the
//! 401, a pod with a `kubernetes.io/dockerconfigjson` secret from
//! `kubectl create secret docker-registry` runs, a wrong password fails again (the pods pull
//! with `imagePullPolicy: Always`, so a cached image never hides a refused pull).

use std::process::{Child, Stdio};
use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{privileged_env, wait_for};

const ADDR: &str = "127.0.0.1:5001";
const USER: &str = "skiff";
const PASSWORD: &str = "s3cret-pw";

/// Kills the authenticated registry when the test ends, however it ends.
struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bcrypt htpasswd line (docker-registry accepts only bcrypt), made with the system's crypt.
fn htpasswd_line() -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            PASSWORD,
        ])
        .output()
        .expect("python3 for bcrypt");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$2"), "not a bcrypt hash: {hash:?}");
    format!("{USER}:{hash}\n")
}

/// Serves a copy of the cluster registry's storage (busybox included) with htpasswd auth.
fn start_auth_registry(cluster: &Cluster) -> Registry {
    let d = cluster.dir.path();
    let storage = d.join("registry-auth");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(d.join("registry"))
        .arg(&storage)
        .status()
        .expect("cp");
    assert!(copied.success(), "copying the registry storage");
    std::fs::write(d.join("htpasswd"), htpasswd_line()).unwrap();
    let config = d.join("registry-auth.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {ADDR}\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\nlog:\n  level: warn\n",
            storage.display(),
            d.join("htpasswd").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("logs/registry-auth.log")).unwrap();
    let mut cmd = cluster.ns.command("/usr/bin/docker-registry");
    cmd.arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let registry = Registry(cmd.spawn().expect("docker-registry"));
    // Up when /v2/ answers 401 to an anonymous client.
    wait_for(
        "the authenticated registry",
        Duration::from_secs(30),
        || {
            let mut curl = cluster.ns.command("curl");
            curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{ADDR}/v2/"));
            let out = skiff_tests::run_with_timeout(curl, Duration::from_secs(5));
            (out.stdout.trim() == "401").then_some(())
        },
    );
    registry
}

fn pod_yaml(name: &str, secret: Option<&str>) -> String {
    let secrets = secret.map_or(String::new(), |s| {
        format!("  imagePullSecrets:\n  - name: {s}\n")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{secrets}  containers:\n  - name: app\n    image: {ADDR}/library/busybox:latest\n    imagePullPolicy: Always\n    command: [\"sleep\", \"3600\"]\n"
    )
}

#[test]
fn pull_secrets_authenticate_image_pulls() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::start("pullsec");
    let _registry = start_auth_registry(&cluster);
    let create = |name: &str, yaml: String| {
        let path = cluster.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        cluster.kubectl_ok(&["create", "-f", path.to_str().unwrap(), "--validate=false"]);
    };

    // No credentials: the registry's 401 reaches the pod's events and status.
    create("anonymous", pod_yaml("anonymous", None));
    let seen = wait_for(
        "the anonymous pull to fail",
        Duration::from_secs(90),
        || {
            let events = cluster
                .kubectl(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=anonymous",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])
                .stdout;
            events.contains("401").then_some(events)
        },
    );
    assert!(
        seen.contains(&format!(
            "Failed to pull image \"{ADDR}/library/busybox:latest\""
        )),
        "{seen}"
    );
    wait_for("ErrImagePull or back-off", Duration::from_secs(60), || {
        let reason = cluster
            .kubectl(&[
                "get",
                "pod",
                "anonymous",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
            ])
            .stdout;
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(())
    });

    // With a dockerconfigjson secret the same image pulls and runs.
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={ADDR}"),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ]);
    create("authed", pod_yaml("authed", Some("regcred")));
    wait_for(
        "the authenticated pod to run",
        Duration::from_secs(90),
        || {
            let phase = cluster
                .kubectl(&["get", "pod", "authed", "-o", "jsonpath={.status.phase}"])
                .stdout;
            (phase == "Running").then_some(())
        },
    );

    // A wrong password is refused like no password.
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "badcred",
        &format!("--docker-server={ADDR}"),
        &format!("--docker-username={USER}"),
        "--docker-password=wrong",
    ]);
    create("wrongpw", pod_yaml("wrongpw", Some("badcred")));
    wait_for(
        "the wrong password to fail",
        Duration::from_secs(60),
        || {
            let events = cluster
                .kubectl(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=wrongpw",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])
                .stdout;
            events.contains("401").then_some(())
        },
    );
}

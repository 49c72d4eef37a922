//! The control plane on its own, as kubectl users meet it: bad input gets the error Kubernetes
//! would give, and acknowledged writes survive `kill -9`.

use skiff_tests::cluster::Cluster;
use skiff_tests::privileged_env;

fn write(cluster: &Cluster, name: &str, text: &str) -> String {
    let path = cluster.dir.path().join(name);
    std::fs::write(&path, text).expect("writing manifest");
    path.to_string_lossy().into_owned()
}

#[test]
fn bad_input_gets_kubernetes_errors() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let cluster = Cluster::control_plane_only("bad");

    // Malformed JSON straight to the API.
    let broken = write(
        &cluster,
        "broken.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", ",
    );
    let out = cluster.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods",
        "-f",
        &broken,
    ]);
    assert!(
        !out.ok && out.stderr.contains("Error from server (BadRequest)"),
        "{out:?}"
    );

    // A kind the server does not serve.
    let out = cluster.kubectl(&["get", "foos"]);
    assert!(
        !out.ok
            && out
                .stderr
                .contains("the server doesn't have a resource type \"foos\""),
        "{out:?}"
    );
    let foo = write(
        &cluster,
        "foo.yaml",
        "apiVersion: v1\nkind: Foo\nmetadata:\n  name: x\n",
    );
    // (Client-side validation would first look for CRDs, which the API issue brings.)
    let out = cluster.kubectl(&["create", "-f", &foo, "--validate=false"]);
    assert!(
        !out.ok
            && out
                .stderr
                .contains("no matches for kind \"Foo\" in version \"v1\""),
        "{out:?}"
    );
    let out = cluster.kubectl(&["get", "--raw", "/api/v1/foos"]);
    assert!(!out.ok && out.stderr.contains("(NotFound)"), "{out:?}");

    // Duplicate create, from a manifest and from kubectl's generator (which sends protobuf).
    let ns = write(
        &cluster,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n",
    );
    cluster.kubectl_ok(&["create", "-f", &ns]);
    let out = cluster.kubectl(&["create", "namespace", "team-a"]);
    assert!(
        out.stderr
            .contains("Error from server (AlreadyExists): namespaces \"team-a\" already exists"),
        "{out:?}"
    );
    let out = cluster.kubectl(&["create", "-f", &ns]);
    assert!(
        out.stderr.contains("Error from server (AlreadyExists)")
            && out.stderr.contains("namespaces \"team-a\" already exists"),
        "{out:?}"
    );

    // A pod without an image is Invalid (422), naming the field; kubectl prints Invalid errors
    // in its own form.
    let noimage = write(
        &cluster,
        "noimage.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n",
    );
    let out = cluster.kubectl(&["create", "-f", &noimage]);
    assert!(
        out.stderr
            .contains("The Pod \"p\" is invalid: spec.containers[0].image: Required value"),
        "{out:?}"
    );

    // A namespace that does not exist.
    let out = cluster.kubectl(&["run", "x", "--image=busybox", "-n", "nowhere"]);
    assert!(
        out.stderr
            .contains("Error from server (NotFound): namespaces \"nowhere\" not found"),
        "{out:?}"
    );
}

#[test]
fn acknowledged_creates_survive_kill_9() {
    privileged_env().unwrap_or_else(|why| panic!("this test {why}"));
    let mut cluster = Cluster::control_plane_only("dur");
    let mut created = Vec::new();
    for i in 0..15 {
        let name = format!("p{i}");
        cluster.kubectl_ok(&["run", &name, "--image=busybox", "--restart=Never"]);
        let uid = cluster.kubectl_ok(&["get", "pod", &name, "-o", "jsonpath={.metadata.uid}"]);
        created.push((name, uid));
    }
    let ns = write(
        &cluster,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kept\n",
    );
    cluster.kubectl_ok(&["create", "-f", &ns]);
    let rv_before = cluster.kubectl_ok(&[
        "get",
        "namespace",
        "kept",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);

    cluster.kill_control();
    cluster.start_control();

    for (name, uid) in &created {
        let after = cluster.kubectl_ok(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"]);
        assert_eq!(&after, uid, "pod {name} came back with another uid");
    }
    cluster.kubectl_ok(&["get", "namespace", "kept"]);
    // Revisions keep growing across the restart: a new write gets a larger resourceVersion.
    cluster.kubectl_ok(&["run", "after", "--image=busybox", "--restart=Never"]);
    let rv_new = cluster.kubectl_ok(&[
        "get",
        "pod",
        "after",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let (before, new): (u64, u64) = (rv_before.parse().unwrap(), rv_new.parse().unwrap());
    assert!(new > before, "resourceVersion went from {before} to {new}");
}

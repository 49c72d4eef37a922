//! CustomResourceDefinitions end to end with the real kubectl (control plane only): the
//! upstream CronTab example is created and established, its objects are applied, listed by
//! short name with printer columns, validated with field-level messages, scaled, explained,
//! and deleted together with the CRD.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{Output, privileged_env, wait_for};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              description: The desired schedule and image of a CronTab.
              properties:
                cronSpec:
                  type: string
                  pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
                image:
                  type: string
                replicas:
                  type: integer
                  minimum: 1
                  maximum: 10
            status:
              type: object
              properties:
                replicas:
                  type: integer
                labelSelector:
                  type: string
      subresources:
        status: {}
        scale:
          specReplicasPath: .spec.replicas
          statusReplicasPath: .status.replicas
          labelSelectorPath: .status.labelSelector
      additionalPrinterColumns:
        - name: Spec
          type: string
          jsonPath: .spec.cronSpec
        - name: Replicas
          type: integer
          jsonPath: .spec.replicas
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
      - ct
"#;

const CRONTAB: &str = r#"
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
  replicas: 1
"#;

const INVALID: &str = r#"
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: broken
spec:
  cronSpec: "* * * * */5"
  replicas: "many"
"#;

const UNKNOWN_FIELD: &str = r#"
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: typo
spec:
  cronSpec: "* * * * */5"
  imagee: oops
"#;

struct Kubectl<'a> {
    cluster: &'a Cluster,
    cache: String,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--cache-dir", self.cache.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl(&all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}\n{}",
            out.stdout,
            out.stderr,
            self.cluster.logs()
        );
        out.stdout
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.cluster.dir.path().join(name);
        std::fs::write(&p, text).expect("writing manifest");
        p.display().to_string()
    }
}

#[test]
fn crontab_crd_with_kubectl() {
    if let Err(why) = privileged_env() {
        panic!("the end-to-end test {why}");
    }
    let cluster = Cluster::control_plane_only("crd");
    let k = Kubectl {
        cluster: &cluster,
        cache: cluster.dir.path().join("kube-cache").display().to_string(),
    };
    let crd = k.file("crd.yaml", CRD);
    k.ok(&["apply", "-f", &crd]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]);
    let none = k.run(&["get", "crontabs"]);
    assert!(
        none.ok && none.stderr.contains("No resources found"),
        "{none:?}"
    );

    let ct = k.file("my-crontab.yaml", CRONTAB);
    k.ok(&["apply", "-f", &ct]);
    let table = k.ok(&["get", "ct"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(
        table.contains("my-new-cron-object   * * * * */5   1"),
        "{table}"
    );
    // Client-side apply again is a no-op patch (a merge patch for custom resources).
    assert!(k.ok(&["apply", "-f", &ct]).contains("unchanged"));

    let invalid = k.file("invalid.yaml", INVALID);
    let out = k.run(&["apply", "-f", &invalid]);
    assert!(!out.ok, "{out:?}");
    assert!(
        out.stderr.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{}",
        out.stderr
    );
    let typo = k.file("typo.yaml", UNKNOWN_FIELD);
    let out = k.run(&["create", "-f", &typo]);
    assert!(
        !out.ok && out.stderr.contains(r#"unknown field "spec.imagee""#),
        "{out:?}"
    );

    k.ok(&["scale", "crontab/my-new-cron-object", "--replicas=3"]);
    let replicas = k.ok(&[
        "get",
        "ct",
        "my-new-cron-object",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3");

    let explain = k.ok(&["explain", "crontab.spec"]);
    assert!(
        explain.contains("KIND:") && explain.contains("CronTab"),
        "{explain}"
    );
    assert!(
        explain.contains("cronSpec") && explain.contains("The desired schedule"),
        "{explain}"
    );

    k.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=60s",
    ]);
    wait_for(
        "the crontabs to stop being served",
        Duration::from_secs(30),
        || {
            let out = k.run(&["get", "crontabs"]);
            (!out.ok).then_some(())
        },
    );
    // Recreating the CRD shows that its old objects went with it.
    k.ok(&["apply", "-f", &crd]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]);
    let out = wait_for(
        "crontabs to be served again",
        Duration::from_secs(30),
        || {
            let out = k.run(&["get", "crontabs"]);
            out.ok.then_some(out)
        },
    );
    assert!(out.stderr.contains("No resources found"), "{out:?}");
}

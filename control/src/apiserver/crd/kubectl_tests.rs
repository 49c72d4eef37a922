//! The real kubectl (reported minors 27, 30 and 33) against the in-process API server: the
//! upstream CronTab CRD is created and established, a CronTab applied and listed by its short
//! name with printer columns, an invalid one rejected with the field-level message, scaled,
//! explained, and deleted with its CRD.

use crate::apiserver::test_server::TestServer;

fn crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
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
                  description: A cron schedule.
                image:
                  type: string
                replicas:
                  type: integer
            status:
              type: object
              properties:
                replicas:
                  type: integer
      subresources:
        status: {{}}
        scale:
          specReplicasPath: .spec.replicas
          statusReplicasPath: .status.replicas
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
"#
    )
}

fn crontab(group: &str, name: &str, replicas: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: {group}/v1
kind: CronTab
metadata:
  name: {name}
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
  replicas: {replicas}
{extra}"#
    )
}

#[tokio::test]
async fn crontabs_with_kubectl() {
    // One after the other: the kinds table is shared by every server in the process.
    for minor in [27, 30, 33] {
        let s = TestServer::start(minor).await;
        let group = format!("stable{minor}.example.com");
        let f = s.file("crd.yaml", &crd(&group));
        s.ok(&["apply", "-f", &f]).await;
        let name = format!("crd/crontabs.{group}");
        s.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=10s",
            &name,
        ])
        .await;
        let (_, err) = s.ok_both(&["get", "crontabs"]).await;
        assert!(err.contains("No resources found"), "{minor}: {err}");

        let f = s.file("ct.yaml", &crontab(&group, "my-new-cron-object", "1", ""));
        s.ok(&["apply", "-f", &f]).await;
        assert!(s.ok(&["apply", "-f", &f]).await.contains("unchanged"));
        let table = s.ok(&["get", "ct"]).await;
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "SPEC", "REPLICAS", "AGE"],
            "{minor}: {table}"
        );
        assert!(
            table.contains("my-new-cron-object   * * * * */5   1"),
            "{minor}: {table}"
        );

        let f = s.file("bad.yaml", &crontab(&group, "bad", "\"many\"", ""));
        let err = s.fails(&["apply", "-f", &f]).await;
        assert!(
            err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
            "{minor}: {err}"
        );
        let f = s.file("typo.yaml", &crontab(&group, "typo", "1", "  imagee: x\n"));
        let err = s.fails(&["create", "-f", &f]).await;
        assert!(
            err.contains(r#"unknown field "spec.imagee""#),
            "{minor}: {err}"
        );

        s.ok(&["scale", "crontab/my-new-cron-object", "--replicas=3"])
            .await;
        let r = s
            .ok(&[
                "get",
                "ct",
                "my-new-cron-object",
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .await;
        assert_eq!(r, "3", "{minor}");

        let explain = s.ok(&["explain", "crontab.spec"]).await;
        assert!(
            explain.contains("CronTab")
                && explain.contains("cronSpec")
                && explain.contains("A cron schedule"),
            "{minor}: {explain}"
        );

        s.ok(&["delete", &name, "--timeout=30s"]).await;
        let err = s.fails(&["get", "crontabs"]).await;
        assert!(err.contains("crontabs"), "{minor}: {err}");
        let left = s
            .registry
            .store()
            .list(&format!("/registry/{group}/"), Default::default())
            .await
            .unwrap();
        assert!(left.items.is_empty(), "{minor}: objects left behind");
    }
}

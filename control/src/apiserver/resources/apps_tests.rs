//! Unit tests of the apps/v1 kinds: defaults, validation messages and Table rows.

use super::*;

fn deployment() -> Value {
    json!({
        "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "busybox", "image": "busybox"}]}}
        }
    })
}

#[test]
fn deployment_defaults_like_upstream() {
    let mut d = deployment();
    deployment_defaults(&mut d);
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
    // Pod-only defaults (admission, service account) stay off templates.
    assert!(pod.get("tolerations").is_none());
    assert!(pod.get("serviceAccountName").is_none());
    assert!(deployment_validate(&d).is_empty());
}

#[test]
fn deployment_validation_messages() {
    let mut d = deployment();
    d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let errs = deployment_validate(&d);
    let text: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body()))
        .collect();
    assert!(
        text.contains(
            &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
        ),
        "{text:?}"
    );
    assert!(text.contains(&r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#.to_string()), "{text:?}");
    assert!(text.contains(&r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#.to_string()), "{text:?}");
    let mut no_image = deployment();
    no_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(
        deployment_validate(&no_image)[0].field,
        "spec.template.spec.containers[0].image"
    );
    let old = deployment();
    let mut new = deployment();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
    assert_eq!(selector_immutable(&new, &old)[0].field, "spec.selector");
    assert!(selector_immutable(&old, &old).is_empty());
}

#[test]
fn rows() {
    let mut d = deployment();
    deployment_defaults(&mut d);
    d["spec"]["replicas"] = json!(3);
    d["status"] = json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
    let now: jiff::Timestamp = "2024-01-01T00:00:30Z".parse().unwrap();
    let cells = deployment_row(&d, now);
    assert_eq!(
        cells,
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("30s"),
            json!("busybox"),
            json!("busybox"),
            json!("app=web")
        ]
    );
    assert_eq!(cells.len(), DEPLOYMENT_COLUMNS.len());
    let mut rs = d.clone();
    replicaset_defaults(&mut rs);
    assert_eq!(replicaset_row(&rs, now)[1], 3);
    let mut sts = deployment();
    statefulset_defaults(&mut sts);
    assert_eq!(statefulset_row(&sts, now)[1], "0/1");
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        0
    );
    let mut ds = deployment();
    ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    daemonset_defaults(&mut ds);
    assert!(daemonset_validate(&ds).is_empty());
    assert_eq!(daemonset_row(&ds, now)[6], "kubernetes.io/os=linux");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
}

#[test]
fn daemonset_and_statefulset_rules() {
    let mut ds = deployment();
    daemonset_defaults(&mut ds);
    ds["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": "0%"});
    ds["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let fields: Vec<String> = daemonset_validate(&ds)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert!(fields.contains(&"spec.template.spec.restartPolicy".to_string()));
    assert!(fields.contains(&"spec.updateStrategy.rollingUpdate.maxUnavailable".to_string()));
    ds["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(1);
    assert!(daemonset_validate(&ds).is_empty());

    let mut sts = deployment();
    statefulset_defaults(&mut sts);
    assert!(statefulset_validate(&sts).is_empty());
    let mut bad = sts.clone();
    bad["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(-1);
    assert_eq!(
        statefulset_validate(&bad)[0].field,
        "spec.updateStrategy.rollingUpdate.partition"
    );
    bad["spec"]["updateStrategy"]["type"] = json!("OnDelete");
    assert!(
        statefulset_validate(&bad)
            .iter()
            .any(|e| e.field == "spec.updateStrategy.rollingUpdate")
    );
    let mut scaled = sts.clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:2");
    assert!(statefulset_update(&scaled, &sts).is_empty());
    let mut renamed = sts.clone();
    renamed["spec"]["serviceName"] = json!("other");
    let errs = statefulset_update(&renamed, &sts);
    assert_eq!(errs[0].field, "spec");
    assert!(
        errs[0].body().contains("are forbidden"),
        "{}",
        errs[0].body()
    );
}

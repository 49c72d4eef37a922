//! Unit tests of the core/v1 configuration kinds.

use serde_json::json;

use super::*;

fn bodies(errs: &[FieldError]) -> Vec<String> {
    errs.iter()
        .map(|e| format!("{}: {}", e.field, e.body()))
        .collect()
}

#[test]
fn configmap_keys_and_row() {
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "b", "bad key": "x"}, "binaryData": {"a": "AA=="}});
    let m = bodies(&configmap_validate(&cm));
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].starts_with(r#"data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters"#), "{m:?}");
    assert_eq!(
        m[1],
        r#"data[a]: Invalid value: "a": duplicate of key present in binaryData"#
    );
    assert_eq!(configmap_row(&cm, jiff::Timestamp::now())[1], 3);
    let frozen = json!({"immutable": true, "data": {"a": "b"}});
    let changed = json!({"immutable": true, "data": {"a": "c"}});
    assert_eq!(
        bodies(&configmap_update(&changed, &frozen)),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
    assert!(configmap_update(&frozen, &frozen).is_empty());
}

#[test]
fn secrets_default_and_fold_string_data() {
    let mut s = json!({"metadata": {"name": "s"}, "data": {"x": "eQ=="}, "stringData": {"p": "q"}});
    secret_defaults(&mut s);
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"x": "eQ==", "p": "cQ=="}));
    assert!(s.get("stringData").is_none());
    assert!(secret_validate(&s).is_empty());
    let row = secret_row(&s, jiff::Timestamp::now());
    assert_eq!(row[1], "Opaque");
    assert_eq!(row[2], 2);

    let tls = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "AA==", "bad": "%%%"}});
    let m = bodies(&secret_validate(&tls));
    assert!(
        m.contains(&r#"data[bad]: Invalid value: "%%%": illegal base64 data"#.to_string()),
        "{m:?}"
    );
    assert!(
        m.contains(&"data[tls.key]: Required value".to_string()),
        "{m:?}"
    );

    let mut retyped = s.clone();
    retyped["type"] = json!("kubernetes.io/tls");
    assert_eq!(
        bodies(&secret_update(&retyped, &s)),
        [r#"type: Invalid value: "kubernetes.io/tls": field is immutable"#]
    );
}

#[test]
fn endpoints_rows_and_validation() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}, {"ip": "10.42.0.7"}, {"ip": "10.42.0.8"}], "ports": [{"port": 8080}]}]});
    assert!(endpoints_validate(&ep).is_empty());
    assert_eq!(
        endpoints_row(&ep, jiff::Timestamp::now())[1],
        "10.42.0.5:8080,10.42.0.6:8080,10.42.0.7:8080 + 1 more..."
    );
    let bad = json!({"subsets": [{"addresses": [{"ip": "nope"}], "ports": [{"port": 0}]}]});
    assert_eq!(endpoints_validate(&bad).len(), 2);
}

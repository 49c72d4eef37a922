//! The `scale` subresource's body: an autoscaling/v1 `Scale` made from a workload (its
//! `spec.replicas`, `status.replicas` and label selector), and the replica count a written
//! `Scale` asks for.

use serde_json::{Value, json};

use super::ResourceDef;
use super::workloads::selector_string;
use crate::apiserver::error::{ApiError, FieldError};

/// The `Scale` of a stored workload.
pub fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = selector_string(&obj["spec"]["selector"]);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": if selector == "<none>" { String::new() } else { selector },
        },
    })
}

/// The replica count a `Scale` body asks for (422 when missing or negative).
pub fn requested_replicas(def: &ResourceDef, name: &str, scale: &Value) -> Result<i64, ApiError> {
    let invalid = |e: FieldError| ApiError::invalid("autoscaling", "Scale", name, vec![e]);
    match &scale["spec"]["replicas"] {
        Value::Null => Ok(0),
        v => match v.as_i64() {
            Some(n) if n >= 0 => Ok(n),
            Some(n) => Err(invalid(FieldError::invalid_raw(
                "spec.replicas",
                n,
                "must be greater than or equal to 0",
            ))),
            None => Err(ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas of {} {name} must be an integer",
                def.kind
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trip() {
        let d = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 1}
        });
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["replicas"], 1);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let def = super::super::find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            requested_replicas(def, "web", &json!({"spec": {"replicas": 3}})).unwrap(),
            3
        );
        let err = requested_replicas(def, "web", &json!({"spec": {"replicas": -1}})).unwrap_err();
        assert_eq!(err.code(), 422);
    }
}

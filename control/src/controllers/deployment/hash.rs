//! The `pod-template-hash`: upstream's shape (FNV-1a 32 over the template and the collision
//! count, its decimal digits mapped onto the safe alphabet) over the template's JSON form.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The label that ties a ReplicaSet and its pods to one template of a Deployment.
pub const HASH_LABEL: &str = "pod-template-hash";

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a32(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The template without the hash label, as JSON with Go's zero values dropped (what templates
/// are compared by): a client that sends `resources: {}`, `hostNetwork: false` or
/// `nodeName: ""` means the same as one that leaves them out. Of the metadata only labels,
/// annotations and finalizers count. Numbers are kept (`terminationGracePeriodSeconds: 0` is
/// not the default).
pub fn without_hash(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(labels) = m.labels.as_mut() {
            labels.remove(HASH_LABEL);
        }
        *m = ObjectMeta {
            labels: m.labels.take(),
            annotations: m.annotations.take(),
            finalizers: m.finalizers.take(),
            ..Default::default()
        };
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    drop_empty(&mut v);
    v
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Removes null, false, `""`, `{}` and `[]` members of objects, innermost first.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(drop_empty);
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// Whether two templates are the same apart from the hash label.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// The hash of `template` with `collision_count`.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = without_hash(template).to_string();
    let mut h = fnv1a32(json.as_bytes(), 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv1a32(&(c as u32).to_le_bytes(), h);
    }
    h.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn hash_is_stable_safe_and_sensitive() {
        let a = template_hash(&template("busybox"), None);
        assert_eq!(a, template_hash(&template("busybox"), None));
        assert_ne!(a, template_hash(&template("busybox:1.35"), None));
        assert_ne!(a, template_hash(&template("busybox"), Some(1)));
        assert!(a.bytes().all(|b| SAFE.contains(&b)), "{a}");
        let mut labeled = template("busybox");
        labeled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), a.clone());
        assert!(equal_ignoring_hash(&labeled, &template("busybox")));
        let mut noisy = template("busybox");
        noisy.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        noisy.metadata.as_mut().unwrap().annotations = Some(Default::default());
        noisy.metadata.as_mut().unwrap().generation = Some(0);
        noisy.spec.as_mut().unwrap().host_network = Some(false);
        noisy.spec.as_mut().unwrap().node_name = Some(String::new());
        assert!(equal_ignoring_hash(&noisy, &template("busybox")));
        assert_eq!(template_hash(&noisy, None), a);
        let mut grace = template("busybox");
        grace
            .spec
            .as_mut()
            .unwrap()
            .termination_grace_period_seconds = Some(0);
        assert!(!equal_ignoring_hash(&grace, &template("busybox")));
        assert_eq!(template_hash(&labeled, None), a);
    }
}

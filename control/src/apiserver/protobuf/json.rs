//! A decoded protobuf message → the Kubernetes JSON form: field names are the JSON names from
//! the descriptors, and the apimachinery types with their own JSON form (Quantity, Time,
//! MicroTime, Duration, IntOrString, RawExtension, FieldsV1, apiextensions JSON) get it.

use base64::Engine as _;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage as _, Value as PValue};
use serde_json::{Map, Value};

/// The JSON name build.rs gives a field that Go embeds inline.
const INLINE: &str = ",inline";

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The JSON of a message.
pub fn message_to_json(msg: &DynamicMessage) -> Value {
    let desc = msg.descriptor();
    let name = desc.full_name();
    let get = |field: &str| {
        desc.get_field_by_name(field)
            .filter(|f| msg.has_field(f))
            .map(|f| msg.get_field(&f).into_owned())
    };
    match name {
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => {
            return get("string").map_or(Value::Null, |v| value_to_json(&v));
        }
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let is_str = get("type").and_then(|t| t.as_i64()) == Some(1);
            return if is_str {
                Value::String(
                    get("str_val")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                )
            } else {
                Value::from(get("int_val").and_then(|v| v.as_i32()).unwrap_or(0))
            };
        }
        _ if name == format!("{META}.Time") || name == format!("{META}.MicroTime") => {
            let seconds = get("seconds").and_then(|v| v.as_i64());
            let nanos = get("nanos").and_then(|v| v.as_i32());
            if seconds.is_none() && nanos.is_none() {
                return Value::Null;
            }
            let micro = name.ends_with("MicroTime");
            return time_to_json(seconds.unwrap_or(0), nanos.unwrap_or(0), micro);
        }
        _ if name == format!("{META}.Duration") => {
            let ns = get("duration").and_then(|v| v.as_i64()).unwrap_or(0);
            return Value::String(go_duration(ns));
        }
        _ if name == "k8s.io.apimachinery.pkg.runtime.RawExtension"
            || name == format!("{META}.FieldsV1")
            || (name.starts_with("k8s.io.apiextensions_apiserver.") && name.ends_with(".JSON")) =>
        {
            let raw = desc
                .fields()
                .next()
                .filter(|f| msg.has_field(f))
                .map(|f| msg.get_field(&f).into_owned());
            return match raw.as_ref().and_then(|v| v.as_bytes()) {
                Some(bytes) => embedded(bytes),
                None => Value::Null,
            };
        }
        _ => {}
    }
    let mut out = Map::new();
    for (field, value) in msg.fields() {
        match (field.json_name(), value_to_json(value)) {
            // Go's `json:",inline"` (Probe's handler, Volume's source): the fields join ours.
            (INLINE, Value::Object(inner)) => out.extend(inner),
            (name, v) => {
                out.insert(name.to_string(), v);
            }
        }
    }
    Value::Object(out)
}

/// Raw bytes embedding an object: JSON (what clients send), or a nested protobuf object.
fn embedded(bytes: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return v;
    }
    if let Ok(v) = super::decode(bytes) {
        return v;
    }
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn value_to_json(v: &PValue) -> Value {
    match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(n) => Value::from(f64::from(*n)),
        PValue::F64(n) => Value::from(*n),
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::Message(m) => message_to_json(m),
        PValue::List(items) => Value::Array(items.iter().map(value_to_json).collect()),
        PValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (map_key(k), value_to_json(v)))
                .collect(),
        ),
    }
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// metav1.Time is RFC 3339 in whole seconds, MicroTime with 6 fractional digits (UTC).
fn time_to_json(seconds: i64, nanos: i32, micro: bool) -> Value {
    let Ok(ts) = jiff::Timestamp::new(seconds, if micro { nanos } else { 0 }) else {
        return Value::Null;
    };
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::String(ts.strftime(fmt).to_string())
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64, suffix: &str| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.to_string().len() - 1;
            let f = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}", frac(u, 1_000, "µs"));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}", frac(u, 1_000_000, "ms"));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s * 1_000_000_000 + sub, 1_000_000_000, "s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000 + 500_000_000), "1h0m0.5s");
        assert_eq!(go_duration(-2_000), "-2µs");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(
            time_to_json(1_700_000_000, 123_456_789, false),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            time_to_json(1_700_000_000, 123_456_789, true),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}

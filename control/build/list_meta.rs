//! Build-script part: the structured-merge metadata of every upstream Kubernetes field, read from
//! the Go markers (`+listType=map|set|atomic`, `+listMapKey=name` (repeated), `+mapType=atomic`,
//! and `+structType=atomic` on a type) that the upstream generated.proto comments carry into the
//! doc comments of the `k8s-pb` crate, for server-side apply (src/apiserver/registry/apply/).

use prost_types::DescriptorProto;

/// (message full name, JSON field, list type, comma-separated list-map keys, map type).
pub type Field = (String, String, String, String, String);

/// What one k8s-pb module (`text`, in `package`) declares: field markers, and the full names of
/// the messages marked `+structType=atomic`.
pub fn collect(
    text: &str,
    package: &str,
    messages: &[DescriptorProto],
    fields: &mut Vec<Field>,
    atomic_structs: &mut Vec<String>,
) {
    let mut message: Option<&DescriptorProto> = None;
    let mut struct_atomic = false;
    let (mut list, mut keys, mut map) = (String::new(), Vec::<String>::new(), String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split([' ', '{']).next().unwrap_or_default();
            message = messages.iter().find(|m| m.name() == name);
            if struct_atomic && message.is_some() {
                atomic_structs.push(format!("{package}.{name}"));
            }
            struct_atomic = false;
            (list, keys, map) = (String::new(), Vec::new(), String::new());
            continue;
        }
        if line == "}" {
            message = None;
            continue;
        }
        let Some(m) = message else {
            if line.starts_with("/// +structType=atomic") {
                struct_atomic = true;
            } else if !line.starts_with("///") && !line.starts_with("#[") {
                struct_atomic = false;
            }
            continue;
        };
        let trimmed = line.trim();
        if let Some(doc) = trimmed.strip_prefix("/// ") {
            if let Some(v) = doc.strip_prefix("+listType=") {
                list = v.trim().to_string();
            } else if let Some(v) = doc.strip_prefix("+listMapKey=") {
                keys.push(v.trim().to_string());
            } else if let Some(v) = doc.strip_prefix("+mapType=") {
                map = v.trim().to_string();
            }
            continue;
        }
        let Some(decl) = trimmed.strip_prefix("pub ") else {
            continue;
        };
        let rust_name = decl
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("r#");
        if (!list.is_empty() || !keys.is_empty() || !map.is_empty())
            && let Some(f) = m.field.iter().find(|f| f.name() == rust_name)
        {
            fields.push((
                format!("{package}.{}", m.name()),
                f.json_name().to_string(),
                std::mem::take(&mut list),
                keys.join(","),
                std::mem::take(&mut map),
            ));
        }
        (list, keys, map) = (String::new(), Vec::new(), String::new());
    }
}

/// The tables as a Rust expression `(&[(message, field, list, keys, map), ...], &[struct, ...])`.
pub fn render(fields: &[Field], atomic_structs: &[String]) -> String {
    let rows: String = fields
        .iter()
        .map(|(m, f, l, k, t)| format!("    ({m:?}, {f:?}, {l:?}, {k:?}, {t:?}),\n"))
        .collect();
    let structs: String = atomic_structs
        .iter()
        .map(|s| format!("    {s:?},\n"))
        .collect();
    format!("(&[\n{rows}], &[\n{structs}])\n")
}

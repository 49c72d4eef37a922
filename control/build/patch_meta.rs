//! Build-script part: the strategic-merge-patch metadata of every upstream Kubernetes field, read
//! from the Go markers (`+patchStrategy=merge`, `+patchMergeKey=name`) that the upstream
//! generated.proto comments carry into the doc comments of the `k8s-pb` crate. These markers are
//! the ones upstream's Go struct tags (`patchStrategy:"merge" patchMergeKey:"name"`) mirror and
//! that its OpenAPI publishes as `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`.
//! The output table is keyed by protobuf message and JSON field name (from the descriptors).

use prost_types::DescriptorProto;

/// One field's patch metadata: (message full name, JSON field name, strategy, merge key).
pub type Entry = (String, String, String, String);

/// The patch metadata of the messages of one k8s-pb module (`text`) in `package`, with JSON field
/// names taken from the module's descriptors.
pub fn collect(text: &str, package: &str, messages: &[DescriptorProto], out: &mut Vec<Entry>) {
    let mut message: Option<&DescriptorProto> = None;
    let (mut strategy, mut key) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split([' ', '{']).next().unwrap_or_default();
            message = messages.iter().find(|m| m.name() == name);
            (strategy, key) = (String::new(), String::new());
            continue;
        }
        if line == "}" {
            message = None;
            continue;
        }
        let Some(m) = message else { continue };
        let trimmed = line.trim();
        // Markers are whole doc lines; indented ones inside examples are not this field's.
        if let Some(doc) = trimmed.strip_prefix("/// ") {
            if let Some(v) = doc.strip_prefix("+patchStrategy=") {
                strategy = v.trim().to_string();
            } else if let Some(v) = doc.strip_prefix("+patchMergeKey=") {
                key = v.trim().to_string();
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
        if !strategy.is_empty() || !key.is_empty() {
            let json = m
                .field
                .iter()
                .find(|f| f.name() == rust_name)
                .map(|f| f.json_name().to_string())
                .unwrap_or_else(|| {
                    panic!(
                        "k8s-pb field {}.{rust_name} not in its descriptor",
                        m.name()
                    )
                });
            out.push((
                format!("{package}.{}", m.name()),
                json,
                std::mem::take(&mut strategy),
                std::mem::take(&mut key),
            ));
        }
        (strategy, key) = (String::new(), String::new());
    }
}

/// The table as a Rust expression (`&[(message, field, strategy, key), ...]`).
pub fn render(entries: &[Entry]) -> String {
    let rows: String = entries
        .iter()
        .map(|(m, f, s, k)| format!("    ({m:?}, {f:?}, {s:?}, {k:?}),\n"))
        .collect();
    format!("&[\n{rows}]\n")
}

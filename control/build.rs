//! Build script: a protobuf `FileDescriptorSet` for every upstream Kubernetes message, made
//! from the prost code of the `k8s-pb` crate (message names, field tags and types) and the JSON
//! field names of the `k8s-openapi` crate, for the API server's generic protobuf body decoder
//! (src/apiserver/protobuf/). Both crates come from crates.io at the versions in Cargo.lock.
//! Also the strategic-merge-patch metadata of every field (build/patch_meta.rs), for
//! src/apiserver/registry/strategic/.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet, MessageOptions,
};

#[path = "build/list_meta.rs"]
mod list_meta;
#[path = "build/patch_meta.rs"]
mod patch_meta;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/patch_meta.rs");
    println!("cargo:rerun-if-changed=build/list_meta.rs");
    let lock = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let lock = std::fs::read_to_string(&lock).expect("read the workspace Cargo.lock");
    let pb = crate_src("k8s-pb", &lock);
    let openapi = crate_src("k8s-openapi", &lock);

    let json_names = openapi_json_names(&openapi);
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut api_versions: BTreeMap<String, String> = BTreeMap::new();
    let mut patch_meta: Vec<patch_meta::Entry> = Vec::new();
    let (mut list_fields, mut atomic_structs) = (Vec::new(), Vec::new());
    for module in rust_files(&pb)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "mod.rs"))
    {
        let rel: Vec<String> = module
            .parent()
            .unwrap()
            .strip_prefix(&pb)
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let text = std::fs::read_to_string(&module).unwrap();
        let messages = parse_messages(&text, &rel, &json_names);
        if messages.is_empty() {
            continue;
        }
        let package = format!("k8s.io.{}", rel.join("."));
        patch_meta::collect(&text, &package, &messages, &mut patch_meta);
        list_meta::collect(
            &text,
            &package,
            &messages,
            &mut list_fields,
            &mut atomic_structs,
        );
        // The apiVersion of the package's kinds, from k8s-pb's `Resource` impls.
        for line in text.lines() {
            if let Some(v) = line
                .trim()
                .strip_prefix("const API_VERSION: &'static str = \"")
            {
                let v = v.trim_end_matches("\";");
                api_versions.insert(v.to_string(), package.clone());
            }
        }
        let mut deps = BTreeSet::new();
        for m in &messages {
            for f in m
                .field
                .iter()
                .chain(m.nested_type.iter().flat_map(|n| &n.field))
            {
                if let Some(t) = &f.type_name {
                    let pkg = t[1..t.rfind('.').unwrap()].to_string();
                    if pkg != package && !pkg.starts_with(&format!("{package}.")) {
                        deps.insert(file_name(&pkg));
                    }
                }
            }
        }
        files.insert(
            package.clone(),
            FileDescriptorProto {
                name: Some(file_name(&package)),
                package: Some(package),
                dependency: deps.into_iter().collect(),
                message_type: messages,
                syntax: Some("proto2".into()),
                ..Default::default()
            },
        );
    }
    let set = FileDescriptorSet {
        file: files.into_values().collect(),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("k8s_descriptors.bin"), set.encode_to_vec()).unwrap();
    let table: String = api_versions
        .iter()
        .map(|(v, p)| format!("    ({v:?}, {p:?}),\n"))
        .collect();
    std::fs::write(out.join("k8s_api_versions.rs"), format!("&[\n{table}]\n")).unwrap();
    std::fs::write(
        out.join("k8s_patch_meta.rs"),
        patch_meta::render(&patch_meta),
    )
    .unwrap();
    std::fs::write(
        out.join("k8s_list_meta.rs"),
        list_meta::render(&list_fields, &atomic_structs),
    )
    .unwrap();
}

/// The JSON name that marks a field embedded inline (Go's `json:",inline"`).
const INLINE: &str = ",inline";

fn file_name(package: &str) -> String {
    format!("{}/generated.proto", package.replace('.', "/"))
}

/// The unpacked source of a crates.io dependency at the version Cargo.lock pins.
fn crate_src(name: &str, lock: &str) -> PathBuf {
    let marker = format!("name = \"{name}\"\nversion = \"");
    let start = lock
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} not in Cargo.lock"))
        + marker.len();
    let version = &lock[start..start + lock[start..].find('"').unwrap()];
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let dir = format!("{name}-{version}");
    for reg in std::fs::read_dir(home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = reg.path().join(&dir).join("src");
        if p.is_dir() {
            return p;
        }
    }
    panic!(
        "the source of {dir} is not under {}/registry/src",
        home.display()
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn normalize(name: &str) -> String {
    name.trim_start_matches("r#")
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// JSON names by "module/path.Struct" and normalized field name, from the serde code of
/// k8s-openapi (union over all its Kubernetes versions).
fn openapi_json_names(src: &Path) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for ver in std::fs::read_dir(src).unwrap().flatten() {
        if !ver.file_name().to_string_lossy().starts_with("v1_") {
            continue;
        }
        for file in rust_files(&ver.path()) {
            let rel: Vec<String> = file
                .parent()
                .unwrap()
                .strip_prefix(ver.path())
                .unwrap()
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let text = std::fs::read_to_string(&file).unwrap();
            let Some(name) = text
                .lines()
                .find_map(|l| l.strip_prefix("pub struct "))
                .and_then(|r| r.split([' ', '<', '(', ';']).next())
            else {
                continue;
            };
            let entry = out.entry(format!("{}.{name}", rel.join("/"))).or_default();
            for line in text.lines() {
                let l = line.trim();
                if let Some((json, rest)) = l.strip_prefix('"').and_then(|r| r.split_once('"'))
                    && rest.trim_start().starts_with("=> Field::Key_")
                {
                    entry.insert(normalize(json), json.to_string());
                }
            }
        }
    }
    out
}

fn lower_camel(rust: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in rust.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn upper_camel(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The proto type name (".k8s.io.pkg.Msg") of a Rust type path seen from module `here`.
fn resolve(path: &str, here: &[String]) -> String {
    let mut module: Vec<String> = here.to_vec();
    let mut parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    while parts.first() == Some(&"super") {
        module.pop();
        parts.remove(0);
    }
    if parts.first() == Some(&"crate") {
        module.clear();
        parts.remove(0);
    }
    let name = parts.pop().unwrap();
    module.extend(parts.iter().map(|s| s.to_string()));
    format!(".k8s.io.{}.{name}", module.join("."))
}

/// The innermost type of `Option<..>`/`Vec<..>`/`Box<..>`, or the map value of `BTreeMap<K, V>`.
fn inner_type(ty: &str) -> String {
    let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let mut t = ty.as_str();
    for wrap in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
    ] {
        if let Some(r) = t.strip_prefix(wrap) {
            t = r;
        }
    }
    if let Some(r) = t.strip_prefix("::prost::alloc::collections::BTreeMap<") {
        t = &r[r.find(',').unwrap() + 1..];
    }
    t.trim_end_matches(['>', ',']).to_string()
}

fn scalar(kind: &str) -> Type {
    match kind {
        "string" => Type::String,
        "int32" => Type::Int32,
        "int64" => Type::Int64,
        "bool" => Type::Bool,
        "double" => Type::Double,
        "float" => Type::Float,
        "message" => Type::Message,
        k if k.starts_with("bytes") => Type::Bytes,
        other => panic!("k8s-pb field kind {other:?} is not handled"),
    }
}

fn field(
    name: &str,
    json: &str,
    number: i32,
    label: Label,
    ty: Type,
    tn: Option<String>,
) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(json.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: tn,
        ..Default::default()
    }
}

/// The messages of one k8s-pb module (one upstream generated.proto).
fn parse_messages(
    text: &str,
    here: &[String],
    json_names: &HashMap<String, HashMap<String, String>>,
) -> Vec<DescriptorProto> {
    let mut out = Vec::new();
    let mut current: Option<(DescriptorProto, Option<&HashMap<String, String>>)> = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split([' ', '{']).next().unwrap().to_string();
            if rest.ends_with("{}") {
                out.push(DescriptorProto {
                    name: Some(name),
                    ..Default::default()
                });
                continue;
            }
            let names = json_names.get(&format!("{}.{name}", here.join("/")));
            current = Some((
                DescriptorProto {
                    name: Some(name),
                    ..Default::default()
                },
                names,
            ));
            continue;
        }
        if line == "}" {
            if let Some((m, _)) = current.take() {
                out.push(m);
            }
            continue;
        }
        let Some((msg, names)) = current.as_mut() else {
            continue;
        };
        let Some(attr) = line
            .trim()
            .strip_prefix("#[prost(")
            .and_then(|a| a.strip_suffix(")]"))
        else {
            continue;
        };
        // The field line(s) that follow, until the declaration ends with ','.
        let mut decl = String::new();
        for l in lines.by_ref() {
            decl.push_str(l.trim());
            let depth = decl.matches('<').count() as i64 - decl.matches('>').count() as i64;
            if depth == 0 && l.trim_end().ends_with(',') {
                break;
            }
        }
        let decl = decl.strip_prefix("pub ").unwrap();
        let (rust_name, ty) = decl.split_once(':').unwrap();
        let rust_name = rust_name.trim().trim_start_matches("r#");
        let kind = attr.split(',').next().unwrap().trim();
        // A message field that the JSON type lacks is embedded inline in Go (`json:",inline"`),
        // like Probe's ProbeHandler or Volume's VolumeSource: marked with the Go tag.
        let json = match names {
            Some(n) => match n.get(&normalize(rust_name)) {
                Some(j) => j.clone(),
                None if kind == "message" => INLINE.to_string(),
                // Only the special types (Quantity, Time, ...) whose JSON is not an object.
                None => lower_camel(rust_name),
            },
            None => lower_camel(rust_name),
        };
        if std::env::var_os("SKIFF_PROTO_DEBUG").is_some() && json == INLINE {
            println!("cargo:warning=inline field {}.{rust_name}", msg.name());
        }
        let number: i32 = attr
            .split("tag = \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no tag in #[prost({attr})]"));
        if kind.starts_with("btree_map") || kind.starts_with("map") {
            let spec = attr.split('"').nth(1).unwrap();
            let value_kind = spec.split(',').nth(1).unwrap().trim();
            let entry = format!("{}Entry", upper_camel(&lower_camel(rust_name)));
            let vty = scalar(value_kind);
            let vtn = (vty == Type::Message).then(|| resolve(&inner_type(ty), here));
            msg.nested_type.push(DescriptorProto {
                name: Some(entry.clone()),
                field: vec![
                    field("key", "key", 1, Label::Optional, Type::String, None),
                    field("value", "value", 2, Label::Optional, vty, vtn),
                ],
                options: Some(MessageOptions {
                    map_entry: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let full = format!(
                "{}.{}.{entry}",
                resolve(msg.name(), here).rsplit_once('.').unwrap().0,
                msg.name()
            );
            msg.field.push(field(
                rust_name,
                &json,
                number,
                Label::Repeated,
                Type::Message,
                Some(full),
            ));
            continue;
        }
        let label = if attr.contains("repeated") {
            Label::Repeated
        } else {
            Label::Optional
        };
        let fty = scalar(kind);
        let tn = (fty == Type::Message).then(|| resolve(&inner_type(ty), here));
        msg.field
            .push(field(rust_name, &json, number, label, fty, tn));
    }
    out
}

//! Repository policy checks that run with the tests: every Rust source file starts with a
//! `//!` line saying what it owns.

use std::path::{Path, PathBuf};

use crate::paths::Paths;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let paths = Paths::discover().unwrap();
    let mut files = Vec::new();
    rust_files(&paths.root, &mut files);
    assert!(files.len() > 10, "found only {} .rs files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| {
            f.strip_prefix(&paths.root)
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` line saying what they own: {offenders:?}"
    );
}

//! Unpacking crafted layers: whiteouts, gzip, digests and hostile entries.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

/// A tar entry: path bytes written raw (so `..` and absolute paths can be crafted).
fn entry(kind: tar::EntryType, path: &str, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_size(data.len() as u64);
    header.set_mtime(1_700_000_000);
    header.set_uid(0);
    header.set_gid(0);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn file(path: &str, data: &[u8]) -> Vec<u8> {
    entry(tar::EntryType::Regular, path, None, data)
}

fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<(), LayerError>) {
    let dir = tempfile::tempdir().unwrap();
    let result = unpack_stream(&mut &bytes[..], dir.path());
    (dir, result)
}

#[test]
fn oci_whiteouts_become_overlay_whiteouts() {
    let layer = tar_of(&[
        entry(tar::EntryType::Directory, "a/", None, b""),
        file("a/.wh.gone", b""),
        file("c/.wh..wh..opq", b""),
        file("c/kept", b"kept"),
        file("./.wh..wh.plnk", b""),
    ]);
    let (dir, result) = unpack(&layer);
    result.unwrap();
    let gone = std::fs::symlink_metadata(dir.path().join("a/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!dir.path().join("a/.wh.gone").exists());
    let opaque = xattr::get(dir.path().join("c"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(!dir.path().join("c/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(dir.path().join("c/kept")).unwrap(), b"kept");
}

#[test]
fn hostile_entries_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot", tar_of(&[file("../evil", b"x")])),
        ("nested dot-dot", tar_of(&[file("a/../../evil", b"x")])),
        ("absolute", tar_of(&[file("/etc/evil", b"x")])),
        (
            "write through symlink",
            tar_of(&[
                entry(tar::EntryType::Symlink, "link", Some("/tmp"), b""),
                file("link/evil", b"x"),
            ]),
        ),
        (
            "hard link out",
            tar_of(&[entry(
                tar::EntryType::Link,
                "h",
                Some("../../etc/passwd"),
                b"",
            )]),
        ),
        (
            "absolute hard link",
            tar_of(&[entry(tar::EntryType::Link, "h", Some("/etc/passwd"), b"")]),
        ),
        ("whiteout of parent", tar_of(&[file("a/.wh...", b"")])),
    ];
    for (name, layer) in cases {
        let (_dir, result) = unpack(&layer);
        assert!(
            matches!(result, Err(LayerError::PathTraversal(_))),
            "{name}: {result:?}"
        );
    }
    let (_dir, result) = unpack(&tar_of(&[entry(
        tar::EntryType::Char,
        "dev/null",
        None,
        b"",
    )]));
    assert!(matches!(result, Err(LayerError::Device(_))), "{result:?}");
    assert!(!std::path::Path::new("/tmp/evil").exists());
}

#[test]
fn gzip_layers_with_links_unpack_and_digests_are_checked() {
    let layer = tar_of(&[
        file("bin/busybox", b"#!binary"),
        entry(tar::EntryType::Symlink, "bin/sh", Some("/bin/busybox"), b""),
        entry(tar::EntryType::Link, "bin/hard", Some("bin/busybox"), b""),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer).unwrap();
    let gz = gz.finish().unwrap();
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob");
    std::fs::write(&blob, &gz).unwrap();
    let hex = hex::encode(Sha256::digest(&gz));
    let dest = work.path().join("layers").join(&hex);

    let wrong = work.path().join("layers").join("wrong");
    let err = unpack_blob(&blob, &"0".repeat(64), &wrong).unwrap_err();
    assert!(matches!(err, LayerError::DigestMismatch { .. }), "{err}");
    assert!(!wrong.exists());

    unpack_blob(&blob, &hex, &dest).unwrap();
    assert_eq!(
        std::fs::read(dest.join("bin/busybox")).unwrap(),
        b"#!binary"
    );
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let ino = |p: &str| std::fs::metadata(dest.join(p)).unwrap().ino();
    assert_eq!(ino("bin/hard"), ino("bin/busybox"));
    // No temp dirs left beside the layer.
    let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(&hex)]);
    // A second unpack is a no-op.
    unpack_blob(&blob, &hex, &dest).unwrap();
}

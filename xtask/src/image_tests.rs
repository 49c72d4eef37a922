//! Tests of the busybox image builder and of pushing it to a real local registry.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::*;
use crate::registry::{self, Client, Pushed};

fn fake_busybox(applets: &[&str]) -> Busybox {
    Busybox {
        binary: b"\x7fELF not really busybox".to_vec(),
        applets: applets.iter().map(|s| s.to_string()).collect(),
        version: Some("1.35.0".into()),
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn the_same_input_gives_byte_identical_blobs() {
    let a = build(&fake_busybox(&["sh", "ls", "echo"])).unwrap();
    // Applet order must not matter.
    let b = build(&fake_busybox(&["echo", "sh", "ls"])).unwrap();
    assert_eq!(a.layer.data, b.layer.data);
    assert_eq!(a.config.data, b.config.data);
    assert_eq!(a.manifest.data, b.manifest.data);
    let c = build(&fake_busybox(&["sh", "ls"])).unwrap();
    assert_ne!(a.manifest.digest, c.manifest.digest);
}

#[test]
fn manifest_and_config_carry_the_right_digests_and_sizes() {
    let img = build(&fake_busybox(&["sh", "sleep"])).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&img.manifest.data).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        manifest["config"]["digest"],
        sha256_digest(&img.config.data)
    );
    assert_eq!(manifest["config"]["size"], img.config.data.len());
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["digest"], sha256_digest(&img.layer.data));
    assert_eq!(layer["size"], img.layer.data.len());
    assert_eq!(layer["mediaType"], LAYER_MEDIA_TYPE);
    assert_eq!(img.manifest.digest, sha256_digest(&img.manifest.data));

    let config: serde_json::Value = serde_json::from_slice(&img.config.data).unwrap();
    let diff_id = sha256_digest(&gunzip(&img.layer.data));
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id);
    assert_eq!(config["config"]["Cmd"], json!(["sh"]));
    assert_eq!(config["config"]["Env"], json!([PATH_ENV]));
    assert_eq!(config["os"], "linux");
}

#[test]
fn layer_holds_busybox_its_applet_links_and_users() {
    let bb = fake_busybox(&["sh", "busybox", "wget", "sh"]);
    let tar_bytes = gunzip(&build(&bb).unwrap().layer.data);
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let h = entry.header().clone();
        assert_eq!(h.mtime().unwrap(), 0, "{path}");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path}");
        match path.as_str() {
            "bin/busybox" => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                assert_eq!(data, bb.binary);
                assert_eq!(h.mode().unwrap(), 0o755);
            }
            "bin/sh" | "bin/wget" => {
                assert_eq!(h.entry_type(), tar::EntryType::Symlink);
                assert_eq!(h.link_name().unwrap().unwrap(), Path::new("busybox"));
            }
            "etc/passwd" | "etc/group" => {
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                assert!(text.starts_with("root:x:0:"), "{text}");
                assert!(text.contains("nobody:x:65534:"), "{text}");
            }
            _ => {}
        }
        seen.push(path);
    }
    for want in [
        "bin/",
        "tmp/",
        "bin/busybox",
        "bin/sh",
        "bin/wget",
        "etc/passwd",
        "etc/group",
    ] {
        assert!(
            seen.iter().any(|p| p == want),
            "{want} missing from {seen:?}"
        );
    }
    // `busybox` is the binary itself, and duplicates are linked once.
    assert_eq!(seen.iter().filter(|p| *p == "bin/busybox").count(), 1);
    assert_eq!(seen.iter().filter(|p| *p == "bin/sh").count(), 1);
}

#[test]
fn version_and_tags_come_from_the_banner() {
    let banner = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n";
    assert_eq!(parse_version(banner).as_deref(), Some("1.35.0"));
    assert_eq!(parse_version("nothing here"), None);
    assert_eq!(fake_busybox(&[]).tags(), vec!["latest", "1.35"]);
}

/// Kills the registry when the test ends, however it ends.
struct RegistryGuard(Child);

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pushes_to_a_real_registry_and_reads_the_manifest_back() {
    if !Path::new(registry::REGISTRY_BIN).exists() {
        eprintln!("skipping: {} not installed", registry::REGISTRY_BIN);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    registry::write_config(&config, &dir.path().join("data"), &addr).unwrap();
    let child = registry::serve_command(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = RegistryGuard(child);
    let client = Client::new(&format!("http://{addr}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !client.ping() {
        assert!(
            std::time::Instant::now() < deadline,
            "registry did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let bb = if Path::new("/bin/busybox").exists() {
        Busybox::load(Path::new("/bin/busybox")).unwrap()
    } else {
        fake_busybox(&["sh", "echo"])
    };
    let img = build(&bb).unwrap();
    let tags = bb.tags();
    assert_eq!(
        client.push_image(REPO, &tags, &img).unwrap(),
        Pushed::Uploaded
    );
    for tag in &tags {
        let got = client.get_manifest(REPO, tag, MANIFEST_MEDIA_TYPE).unwrap();
        assert_eq!(got, img.manifest.data, "manifest for tag {tag}");
        let digest = client
            .manifest_digest(REPO, tag, MANIFEST_MEDIA_TYPE)
            .unwrap();
        assert_eq!(digest.as_deref(), Some(img.manifest.digest.as_str()));
    }
    let layer = client.get_blob(REPO, &img.layer.digest).unwrap();
    assert_eq!(sha256_digest(&layer), img.layer.digest);
    let config = client.get_blob(REPO, &img.config.digest).unwrap();
    assert_eq!(config, img.config.data);
    // A second push of the same image sends nothing.
    assert_eq!(
        client.push_image(REPO, &tags, &img).unwrap(),
        Pushed::AlreadyPresent
    );
}

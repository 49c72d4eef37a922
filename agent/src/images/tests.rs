//! Image store tests against a real registry (Debian's docker-registry on loopback).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::*;

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry on 127.0.0.1:<free port>, killed on drop.
struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            host,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gzip_tar(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

fn small_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder.append_data(&mut header, path, data).unwrap();
}

/// Pushes one two-layer busybox image (layer 2 adds /etc/motd and deletes /bin/ls) as
/// `<registry>/<repo>:latest` for each repo.
async fn push_busybox(registry: &str, repos: &[&str]) {
    let rootfs = tempfile::tempdir().unwrap();
    crate::runtime::tests::busybox_rootfs(rootfs.path());
    let base = gzip_tar(|b| b.append_dir_all(".", rootfs.path()).unwrap());
    let top = gzip_tar(|b| {
        small_file(b, "etc/motd", b"welcome\n");
        small_file(b, "bin/.wh.ls", b"");
    });
    let layers = vec![
        ImageLayer::oci_v1_gzip(base, None),
        ImageLayer::oci_v1_gzip(top, None),
    ];
    let config_json = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    let config = Config::oci_v1(serde_json::to_vec(&config_json).unwrap(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    for repo in repos {
        let reference =
            Reference::with_tag(registry.to_string(), repo.to_string(), "latest".into());
        let pushed = client.push(
            &reference,
            &layers,
            config.clone(),
            &RegistryAuth::Anonymous,
            Some(manifest.clone()),
        );
        pushed.await.unwrap();
    }
}

fn layer_dirs(root: &Path) -> usize {
    std::fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn pulls_through_mirrors_and_reports_missing_images() {
    if !Path::new(REGISTRY).exists() {
        eprintln!("skipped: {REGISTRY} is not installed");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = Registry::start();
    push_busybox(&registry.host, &["busybox", "library/busybox"]).await;

    let store_dir = tempfile::tempdir().unwrap();
    let root = store_dir.path().join("images");
    let mirrors = RegistryConfig::parse(&format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
        registry.host
    ))
    .unwrap();
    let store = ImageStore::new(root.clone(), mirrors.clone()).unwrap();

    // Directly from the loopback registry.
    let direct = format!("{}/busybox", registry.host);
    let image = store
        .ensure(&direct, PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert_eq!(image.name, format!("{}/busybox:latest", registry.host));
    assert!(image.digest.starts_with("sha256:"));
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert_eq!(image.layers.len(), 2);
    assert!(image.size > 0);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read(image.layers[1].join("etc/motd")).unwrap(),
        b"welcome\n"
    );
    let whiteout = std::fs::symlink_metadata(image.layers[1].join("bin/ls")).unwrap();
    assert!(
        whiteout.file_type().is_char_device(),
        "OCI whiteout must become an overlay whiteout"
    );

    // `busybox` is docker.io/library/busybox, served by the mirror; two concurrent pulls.
    let (a, b) = tokio::join!(
        store.ensure("busybox", PullPolicy::Always),
        store.ensure("busybox:latest", PullPolicy::Always)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.name, "docker.io/library/busybox:latest");
    assert_eq!(a, b);
    assert_eq!(a.digest, image.digest, "same content, same manifest digest");
    // Layers are stored once per digest.
    assert_eq!(layer_dirs(&root), 2);

    let missing = format!("{}/no-such-image", registry.host);
    let err = store
        .ensure(&missing, PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    let name = format!("{}/no-such-image:latest", registry.host);
    assert_eq!(
        err.to_string(),
        format!(
            "failed to pull and unpack image \"{name}\": failed to resolve reference \"{name}\": {name}: not found"
        )
    );
    let err = store.ensure(&missing, PullPolicy::Never).await.unwrap_err();
    assert!(matches!(err, ImageError::NotPresent { .. }), "{err:?}");
    let err = store
        .ensure("Not/Valid", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::InvalidReference { .. }),
        "{err:?}"
    );

    let names: Vec<String> = store.list().into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        vec![
            image.name.clone(),
            "docker.io/library/busybox:latest".to_string()
        ]
    );

    // A restarted agent finds its images without the registry.
    drop(registry);
    let reopened = ImageStore::new(root.clone(), mirrors).unwrap();
    let again = reopened.ensure("busybox", PullPolicy::Never).await.unwrap();
    assert_eq!(again, a);
    assert!(
        reopened
            .ensure("busybox", PullPolicy::IfNotPresent)
            .await
            .is_ok()
    );
    let err = reopened
        .ensure(&direct, PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::Pull { .. }),
        "registry is gone: {err:?}"
    );
}

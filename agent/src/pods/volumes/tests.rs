//! Unit tests of volume set-up: configMap projection with items and modes, optional and
//! missing objects, downwardAPI files, emptyDir, volumeMounts with subPath.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::pods::env::tests::{ctx, objects, pod};

fn pod_with_volumes(
    volumes: serde_json::Value,
    containers: serde_json::Value,
) -> k8s_openapi::api::core::v1::Pod {
    let mut p = pod(containers);
    p.spec.as_mut().unwrap().volumes = Some(serde_json::from_value(volumes).unwrap());
    p
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn config_map_items_modes_and_downward_api() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pod_with_volumes(
        serde_json::json!([
            {"name": "all", "configMap": {"name": "app-config", "defaultMode": 0o440}},
            {"name": "some", "configMap": {"name": "app-config", "items": [
                {"key": "mode", "path": "conf/mode.txt", "mode": 0o600},
                {"key": "level", "path": "level"}
            ]}},
            {"name": "opt", "configMap": {"name": "missing", "optional": true}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
            ]}},
            {"name": "scratch", "emptyDir": {}}
        ]),
        serde_json::json!([{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}]),
    );
    let (o, none) = (objects(), HashMap::new());
    let vols = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap();
    let all = &vols["all"];
    assert!(all.read_only);
    assert_eq!(
        std::fs::read_to_string(all.path.join("mode")).unwrap(),
        "fast"
    );
    assert_eq!(std::fs::read(all.path.join("bin")).unwrap(), b"hi");
    assert_eq!(mode(&all.path.join("mode")), 0o440);
    let some = &vols["some"].path;
    assert_eq!(
        std::fs::read_to_string(some.join("conf/mode.txt")).unwrap(),
        "fast"
    );
    assert_eq!(mode(&some.join("conf/mode.txt")), 0o600);
    assert_eq!(mode(&some.join("level")), 0o644);
    assert!(!some.join("mode").exists(), "items limit the keys");
    // An optional, missing ConfigMap gives an empty volume: only `..data` and its target.
    assert_eq!(std::fs::read_dir(&vols["opt"].path).unwrap().count(), 2);
    let info = &vols["info"].path;
    assert_eq!(
        std::fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "web");
    assert_eq!(std::fs::read_to_string(info.join("mem")).unwrap(), "32");
    let scratch = &vols["scratch"];
    assert!(!scratch.read_only && scratch.path.is_dir());
    assert_eq!(mode(&scratch.path), 0o777);
    // A second pass changes nothing and fails nothing.
    let again = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap();
    assert_eq!(again, vols);
}

#[test]
fn missing_objects_and_keys_fail_the_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, none) = (objects(), HashMap::new());
    let p = pod_with_volumes(
        serde_json::json!([{"name": "cfg", "configMap": {"name": "missing"}}]),
        serde_json::json!([{"name": "c"}]),
    );
    let err = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"missing\" not found"
    );
    let p = pod_with_volumes(
        serde_json::json!([{"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "nope", "path": "x"}]}}]),
        serde_json::json!([{"name": "c"}]),
    );
    let err = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap_err();
    assert_eq!(
        err.message,
        "configmap references non-existent config key: nope"
    );
    let p = pod_with_volumes(
        serde_json::json!([{"name": "h", "hostPath": {"path": "/nonexistent/dir", "type": "Directory"}}]),
        serde_json::json!([{"name": "c"}]),
    );
    let err = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap_err();
    assert_eq!(
        err.message,
        "hostPath type check failed: /nonexistent/dir is not a directory"
    );
}

#[test]
fn volume_mounts_honour_read_only_and_sub_path() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pod_with_volumes(
        serde_json::json!([
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "data", "emptyDir": {}}
        ]),
        serde_json::json!([{"name": "c", "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "cfg", "mountPath": "/etc/mode", "subPath": "mode"},
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/logs", "subPath": "logs/c", "readOnly": true}
        ]}]),
    );
    let (o, none) = (objects(), HashMap::new());
    let vols = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap();
    let c = &p.spec.as_ref().unwrap().containers[0];
    let mounts = container_mounts(&vols, c).unwrap();
    let cfg = &vols["cfg"].path;
    let data = &vols["data"].path;
    assert_eq!(mounts[0], (cfg.clone(), "/etc/app".into(), true));
    // subPath of a configMap key resolves through the ..data links to the real file.
    assert!(mounts[1].0.starts_with(std::fs::canonicalize(cfg).unwrap()));
    assert_eq!(std::fs::read_to_string(&mounts[1].0).unwrap(), "fast");
    assert_eq!(mounts[2], (data.clone(), "/data".into(), false));
    assert!(data.join("logs/c").is_dir(), "missing subPath is created");
    assert!(mounts[3].2);
    // Escapes are refused.
    let mut bad = c.clone();
    bad.volume_mounts.as_mut().unwrap()[1].sub_path = Some("../../etc".into());
    assert!(container_mounts(&vols, &bad).is_err());
    std::os::unix::fs::symlink("/etc", data.join("out")).unwrap();
    bad.volume_mounts.as_mut().unwrap()[1].sub_path = Some("out".into());
    bad.volume_mounts.as_mut().unwrap()[1].name = "data".into();
    let err = container_mounts(&vols, &bad).unwrap_err();
    assert!(err.to_string().contains("outside of the volume"), "{err}");
    let mut unknown = c.clone();
    unknown.volume_mounts.as_mut().unwrap()[0].name = "nope".into();
    assert_eq!(
        container_mounts(&vols, &unknown).unwrap_err().to_string(),
        "cannot find volume \"nope\" to mount into container \"c\""
    );
}

#[test]
fn secret_volumes_live_on_tmpfs_and_are_unmounted() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = tear_down(&self.0);
        }
    }
    let _guard = Guard(tmp.path().to_path_buf());
    let p = pod_with_volumes(
        serde_json::json!([
            {"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}},
            {"name": "proj", "projected": {"sources": [
                {"configMap": {"name": "app-config", "items": [{"key": "mode", "path": "mode"}]}},
                {"secret": {"name": "creds"}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                {"serviceAccountToken": {"path": "token"}}
            ]}}
        ]),
        serde_json::json!([{"name": "c"}]),
    );
    let (o, none) = (objects(), HashMap::new());
    let vols = set_up(&ctx(&p, &o, &none), tmp.path()).unwrap();
    let s = &vols["s"].path;
    assert_eq!(
        std::fs::read_to_string(s.join("password")).unwrap(),
        "s3cr3t"
    );
    assert_eq!(mode(&s.join("password")), 0o400);
    let tmpfs = nix::sys::statfs::TMPFS_MAGIC;
    assert_eq!(
        nix::sys::statfs::statfs(s).unwrap().filesystem_type(),
        tmpfs
    );
    let mem = nix::sys::statfs::statfs(&vols["mem"].path).unwrap();
    assert_eq!(mem.filesystem_type(), tmpfs);
    assert_eq!(mem.blocks() * mem.block_size() as u64, 2 << 20);
    let proj = &vols["proj"].path;
    assert_eq!(std::fs::read_to_string(proj.join("mode")).unwrap(), "fast");
    assert_eq!(
        std::fs::read_to_string(proj.join("password")).unwrap(),
        "s3cr3t"
    );
    assert_eq!(std::fs::read_to_string(proj.join("ns")).unwrap(), "default");
    assert!(!proj.join("token").exists());
    assert_eq!(mounts::mounts_under(tmp.path()).len(), 3);
    tear_down(tmp.path()).unwrap();
    assert!(mounts::mounts_under(tmp.path()).is_empty());
    std::fs::remove_dir_all(tmp.path().join("secret")).unwrap();
}

//! Volumes in a real container (root only): a configMap volume, a configMap key by subPath and
//! an emptyDir bind-mounted with their modes; an update of the ConfigMap reaches the running
//! container through the `..data` swap; read-only mounts refuse writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::pods::env::tests::{ctx, objects, pod};
use crate::runtime::ContainerState;
use crate::runtime::tests::TestContainers;
use crate::runtime::tests::is_root;

/// Unmounts the volumes' tmpfs mounts even when the test fails.
struct Volumes(tempfile::TempDir);

impl Drop for Volumes {
    fn drop(&mut self) {
        let _ = tear_down(self.0.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_reads_volumes_and_sees_config_map_updates() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = TestContainers::new("volumes");
    let vols_dir = Volumes(tempfile::tempdir().unwrap());
    let mut p = pod(serde_json::json!([{"name": "c", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/app"},
        {"name": "cfg", "mountPath": "/etc/level", "subPath": "level"},
        {"name": "creds", "mountPath": "/secrets"},
        {"name": "data", "mountPath": "/data"}
    ]}]));
    p.spec.as_mut().unwrap().volumes = Some(
        serde_json::from_value(serde_json::json!([
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "data", "emptyDir": {"medium": "Memory"}}
        ]))
        .unwrap(),
    );
    let mut objs = objects();
    let none = HashMap::new();
    let vols = set_up(&ctx(&p, &objs, &none), vols_dir.0.path()).unwrap();
    let c = &p.spec.as_ref().unwrap().containers[0];
    let mut spec = fx.spec(
        "vol",
        &[
            "sh",
            "-c",
            "cat /etc/app/mode; echo; cat /etc/level; echo; cat /secrets/password; echo; \
             i=0; while [ \"$(cat /etc/app/mode)\" != slow ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
             echo now-$(cat /etc/app/mode); echo written > /data/out; \
             (echo x > /etc/app/new) 2>/dev/null || echo read-only",
        ],
    );
    spec.extra_mounts = container_mounts(&vols, c).unwrap();
    fx.start(&spec).await;
    // Let it print the first value, then change the ConfigMap and refresh the volumes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cm = objs
        .config_maps
        .get_mut("app-config")
        .unwrap()
        .as_mut()
        .unwrap();
    cm.data
        .as_mut()
        .unwrap()
        .insert("mode".into(), "slow".into());
    set_up(&ctx(&p, &objs, &none), vols_dir.0.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let state = fx.runtime.state("vol");
        if matches!(state, ContainerState::Exited { .. }) || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}\n{log}"
    );
    assert_eq!(
        lines,
        ["fast", "3", "s3cr3t", "now-slow", "read-only"],
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(vols["data"].path.join("out")).unwrap(),
        "written\n"
    );
}

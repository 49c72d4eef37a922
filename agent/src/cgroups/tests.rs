//! Tests of QoS classification, pod resources and (as root) the cgroup tree on this host.

use std::{collections::BTreeMap, fs, path::PathBuf, process::Command};

use k8s_openapi::{
    api::core::v1::{Container, Pod, PodSpec, ResourceRequirements},
    apimachinery::pkg::api::resource::Quantity,
};

use super::*;

fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    let map = |kv: &[(&str, &str)]| {
        (!kv.is_empty()).then(|| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: map(requests),
            limits: map(limits),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn qos_classes_follow_kubernetes_rules() {
    let none = container(&[], &[]);
    assert_eq!(
        qos_class(&pod(vec![none.clone()], vec![])),
        QosClass::BestEffort
    );
    // Zero quantities do not count.
    let zero = container(&[("cpu", "0")], &[]);
    assert_eq!(qos_class(&pod(vec![zero], vec![])), QosClass::BestEffort);

    let full = container(&[], &[("cpu", "500m"), ("memory", "64Mi")]);
    assert_eq!(
        qos_class(&pod(vec![full.clone()], vec![])),
        QosClass::Guaranteed
    );
    let same = container(
        &[("cpu", "0.5"), ("memory", "67108864")],
        &[("cpu", "500m"), ("memory", "64Mi")],
    );
    assert_eq!(qos_class(&pod(vec![same], vec![])), QosClass::Guaranteed);

    let lower = container(&[("cpu", "100m")], &[("cpu", "500m"), ("memory", "64Mi")]);
    assert_eq!(qos_class(&pod(vec![lower], vec![])), QosClass::Burstable);
    let cpu_only = container(&[], &[("cpu", "1")]);
    assert_eq!(qos_class(&pod(vec![cpu_only], vec![])), QosClass::Burstable);
    // One container without limits makes the pod Burstable, init containers included.
    assert_eq!(
        qos_class(&pod(vec![full.clone(), none.clone()], vec![])),
        QosClass::Burstable
    );
    assert_eq!(qos_class(&pod(vec![full], vec![none])), QosClass::Burstable);
}

#[test]
fn shares_and_quota_match_the_kubelet() {
    assert_eq!(milli_cpu_to_shares(0), 2);
    assert_eq!(milli_cpu_to_shares(1), 2);
    assert_eq!(milli_cpu_to_shares(100), 102);
    assert_eq!(milli_cpu_to_shares(1000), 1024);
    assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
    assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD_US), None);
    assert_eq!(milli_cpu_to_quota(5, CPU_PERIOD_US), Some(MIN_QUOTA_US));
    assert_eq!(milli_cpu_to_quota(250, CPU_PERIOD_US), Some(25_000));
    assert_eq!(milli_cpu_to_quota(2000, CPU_PERIOD_US), Some(200_000));
}

#[test]
fn pod_resources_sum_containers_like_the_kubelet() {
    let a = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "128Mi")]);
    let b = container(&[("cpu", "250m")], &[("cpu", "1"), ("memory", "64Mi")]);
    let big_init = container(&[("cpu", "2")], &[("cpu", "2"), ("memory", "1Gi")]);
    let res = pod_resources(&pod(vec![a.clone(), b.clone()], vec![]));
    assert_eq!(res.cpu_shares, 512);
    assert_eq!(res.cpu_quota, Some(150_000));
    assert_eq!(res.memory_limit, Some(192 << 20));
    // An init container bigger than the app containers' sum sets the pod size.
    let res = pod_resources(&pod(vec![a.clone(), b], vec![big_init]));
    assert_eq!((res.cpu_shares, res.cpu_quota), (2048, Some(200_000)));
    assert_eq!(res.memory_limit, Some(1 << 30));
    // A container without a limit lifts the pod's limit, but requests still give shares.
    let open = container(&[("cpu", "100m")], &[]);
    let res = pod_resources(&pod(vec![a, open], vec![]));
    assert_eq!(
        (res.cpu_shares, res.cpu_quota, res.memory_limit),
        (358, None, None)
    );
    let res = pod_resources(&pod(vec![container(&[], &[])], vec![]));
    assert_eq!(
        (res.cpu_shares, res.cpu_quota, res.memory_limit),
        (MIN_SHARES, None, None)
    );
}

#[test]
fn invalid_names_are_refused() {
    assert!(CgroupManager::with_backends("../x", vec![], None).is_err());
    assert!(CgroupManager::with_backends("", vec![], None).is_err());
    let m = CgroupManager::with_backends("skiff", vec![], None).unwrap();
    assert!(m.pod_path("../../etc", QosClass::BestEffort).is_err());
    assert_eq!(
        m.pod_path("abc-1", QosClass::Guaranteed).unwrap(),
        "/skiff/kubepods/podabc-1"
    );
    assert_eq!(
        m.pod_path("abc-1", QosClass::Burstable).unwrap(),
        "/skiff/kubepods/burstable/podabc-1"
    );
}

/// A cgroup root for one test, removed in every hierarchy on drop.
struct TestRoot(CgroupManager);

impl Drop for TestRoot {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_all() {
            eprintln!("cgroup cleanup failed: {e}");
        }
    }
}

fn read(dirs: &[PathBuf], file: &str) -> Option<String> {
    dirs.iter()
        .map(|d| d.join(file))
        .find(|p| p.exists())
        .map(|p| fs::read_to_string(p).unwrap().trim().to_owned())
}

#[test]
fn pod_cgroups_are_created_limited_and_removed_with_their_tasks() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let root = format!("skiff-test-{}-cg", std::process::id());
    let m = TestRoot(CgroupManager::new(&root).unwrap());
    let uid = "0b6c1e1e-7d2a-4c53-9a4e-0f3f1d1b2c3d";
    let res = PodResources {
        cpu_shares: 512,
        cpu_quota: Some(50_000),
        cpu_period: CPU_PERIOD_US,
        memory_limit: Some(64 << 20),
    };
    let path = m.0.create_pod(uid, QosClass::Burstable, &res).unwrap();
    assert_eq!(path, format!("/{root}/kubepods/burstable/pod{uid}"));
    // Idempotent.
    assert_eq!(
        m.0.create_pod(uid, QosClass::Burstable, &res).unwrap(),
        path
    );

    let dirs = m.0.pod_dirs(uid, QosClass::Burstable).unwrap();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    if !is_cgroup2_host() {
        assert_eq!(
            read(&dirs, "memory.limit_in_bytes").as_deref(),
            Some("67108864")
        );
        assert_eq!(read(&dirs, "cpu.cfs_quota_us").as_deref(), Some("50000"));
        assert_eq!(read(&dirs, "cpu.shares").as_deref(), Some("512"));
        let unified =
            m.0.unified_pod_dir(uid, QosClass::Burstable)
                .expect("hybrid host");
        assert!(unified.is_dir());
    }

    // A container leaf (libcontainer's job) with a running task in it.
    let leaf_parent = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("/pids/"))
        .unwrap_or(&dirs[0]);
    let leaf = leaf_parent.join("container-1");
    fs::create_dir(&leaf).unwrap();
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    fs::write(leaf.join("cgroup.procs"), child.id().to_string()).unwrap();

    m.0.remove_pod(uid, QosClass::Burstable).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the stray task was killed");
    assert!(
        dirs.iter().all(|d| !d.exists()),
        "pod cgroup removed everywhere"
    );
    m.0.remove_pod(uid, QosClass::Burstable)
        .expect("idempotent");

    m.0.remove_all().unwrap();
    let root_dirs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.ancestors().nth(3).unwrap().to_owned())
        .collect();
    assert!(
        root_dirs.iter().all(|d| d.ends_with(&root) && !d.exists()),
        "{root_dirs:?}"
    );
}

fn is_cgroup2_host() -> bool {
    cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode()
}

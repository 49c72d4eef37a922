//! `cargo xtask bench pods`: create → Running latency of pods on a one-node cluster in a
//! throwaway network namespace (image cached) — 20 one at a time, then 50 at once — against runc
//! starting the same root filesystem 50 times in the same run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use skiff_tests::cluster::Cluster;

use super::BenchRow;
use crate::paths::Paths;
use crate::run::{cargo, note, run as run_cmd, step};

const PODS: usize = 50;
/// Pods started one at a time (each waits for the previous to run).
const ONE_BY_ONE: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(180);

/// Value at percentile `p` (0–100) of sorted `v`, nearest-rank.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    })
}

/// Watches pods with kubectl and records, per pod, when it was first seen and when Running.
fn watch_pods(cluster: &Cluster) -> Result<std::sync::mpsc::Receiver<(String, bool, Instant)>> {
    let mut cmd = cluster.ns.command("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(&cluster.kubeconfig);
    cmd.args([
        "get",
        "pods",
        "-l",
        "bench=pods",
        "-w",
        "--output-watch-events",
        "-o",
        "json",
    ]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("kubectl get -w")?;
    let stdout = child.stdout.take().context("kubectl stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for event in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
            let Ok(event) = event else { break };
            let at = Instant::now();
            let object = &event["object"];
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let running = object["status"]["phase"] == "Running";
            if tx.send((name, running, at)).is_err() {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    });
    Ok(rx)
}

/// skiff: create → Running latency per pod (ms), and the wall time until all ran (s). The
/// pods are created in `batches` (each one `kubectl create` of a List), waiting for each batch
/// to run before the next; the latency runs from the watch seeing a pod to seeing it Running.
fn measure_skiff(cluster: &Cluster, tag: &str, batches: &[usize]) -> Result<(Vec<f64>, f64)> {
    let events = watch_pods(cluster)?;
    std::thread::sleep(Duration::from_millis(500));
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut created = 0;
    for (b, size) in batches.iter().enumerate() {
        let items: Vec<Value> = (created..created + size)
            .map(|i| pod(&format!("{tag}-{i}")))
            .collect();
        created += size;
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        let manifest = cluster.dir.path().join(format!("{tag}-{b}.json"));
        std::fs::write(&manifest, serde_json::to_vec(&list)?)?;
        let create = cluster.kubectl(&["create", "-f", &manifest.to_string_lossy()]);
        if !create.ok {
            bail!("creating the bench pods failed: {}", create.stderr);
        }
        let deadline = Instant::now() + TIMEOUT;
        while running.len() < created {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((name, is_running, at)) = events.recv_timeout(left) else {
                bail!(
                    "only {} of {created} pods ran within {TIMEOUT:?}\n{}",
                    running.len(),
                    cluster.logs()
                );
            };
            if !name.starts_with(tag) {
                continue;
            }
            seen.entry(name.clone()).or_insert(at);
            if is_running {
                running.entry(name).or_insert(at);
            }
        }
    }
    let mut latencies: Vec<f64> = running
        .iter()
        .map(|(name, at)| at.duration_since(seen[name]).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let first = seen.values().min().copied().context("no pods seen")?;
    let last = running.values().max().copied().context("no pods ran")?;
    Ok((latencies, last.duration_since(first).as_secs_f64()))
}

/// The busybox layer the agent unpacked (the image has exactly one).
fn busybox_rootfs(cluster: &Cluster) -> Result<PathBuf> {
    let layers = cluster.dir.path().join("agent/images/layers/sha256");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&layers)
        .with_context(|| format!("reading {}", layers.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin/busybox").exists())
        .collect();
    dirs.pop().context("the agent has no busybox layer")
}

fn runc(args: &[&str], bundle: &Path) -> Result<()> {
    let status = Command::new("runc")
        .args(args)
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running runc")?;
    if !status.success() {
        bail!("runc {args:?} failed: {status}");
    }
    Ok(())
}

/// runc: `run -d` (create + start) latency of the same root filesystem, sequentially (ms).
fn measure_runc(rootfs: &Path) -> Result<Vec<f64>> {
    let bundle = tempfile::tempdir()?;
    runc(&["spec"], bundle.path())?;
    let config_path = bundle.path().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sleep", "3600"]);
    config["root"] = json!({"path": rootfs, "readonly": true});
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let mut latencies = Vec::with_capacity(PODS);
    let ids: Vec<String> = (0..PODS)
        .map(|i| format!("skiff-bench-runc-{}-{i}", std::process::id()))
        .collect();
    let result = (|| -> Result<()> {
        for id in &ids {
            let t0 = Instant::now();
            runc(&["run", "-d", id], bundle.path())?;
            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    })();
    for id in &ids {
        let _ = runc(&["delete", "-f", id], bundle.path());
    }
    result?;
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

pub fn run(paths: &Paths) -> Result<Vec<BenchRow>> {
    step("building skiff-control and skiff-agent (release)");
    run_cmd(cargo(paths).args([
        "build",
        "--release",
        "-p",
        "skiff-control",
        "-p",
        "skiff-agent",
    ]))?;
    // SAFETY: xtask is single-threaded here; the harness reads this to pick release binaries.
    unsafe { std::env::set_var("SKIFF_BIN_DIR", paths.target().join("release")) };
    step("starting a one-node cluster in a throwaway network namespace");
    let cluster = Cluster::start("bench");
    skiff_tests::wait_for("the node to be Ready", Duration::from_secs(60), || {
        let out = cluster.kubectl(&["get", "nodes", "--no-headers"]).stdout;
        out.contains(" Ready").then_some(())
    });
    step("pulling the image once (the measured pods find it cached)");
    cluster.kubectl_ok(&["run", "warm", "--image=busybox", "--", "sleep", "3600"]);
    skiff_tests::wait_for("the warm-up pod to run", Duration::from_secs(60), || {
        let phase = cluster
            .kubectl(&["get", "pod", "warm", "-o", "jsonpath={.status.phase}"])
            .stdout;
        (phase == "Running").then_some(())
    });
    cluster.kubectl_ok(&["delete", "pod", "warm", "--grace-period=0", "--force"]);

    step(format!(
        "skiff: {ONE_BY_ONE} pods one at a time, timing create → Running"
    ));
    let (single, _) = measure_skiff(&cluster, "one", &[1; ONE_BY_ONE])?;
    step(format!(
        "skiff: {PODS} pods at once, timing create → Running"
    ));
    let (burst, wall) = measure_skiff(&cluster, "burst", &[PODS])?;
    let rootfs = busybox_rootfs(&cluster)?;
    let delete = [
        "delete",
        "pods",
        "-l",
        "bench=pods",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ];
    cluster.kubectl_ok(&delete);
    step(format!(
        "runc: `runc run -d` of the same root filesystem {PODS} times"
    ));
    let runc = measure_runc(&rootfs)?;
    note(format!("runc total {:.0} ms", runc.iter().sum::<f64>()));
    let row = |metric: &str, skiff: &[f64], p: f64| {
        BenchRow::new(metric, percentile(skiff, p), "ms")
            .against("runc run -d", percentile(&runc, p))
    };
    Ok(vec![
        row("pod create→Running p50, one at a time", &single, 50.0),
        row("pod create→Running p99, one at a time", &single, 99.0),
        row("pod create→Running p50, 50 at once", &burst, 50.0),
        row("pod create→Running p99, 50 at once", &burst, 99.0),
        BenchRow::new(&format!("{PODS} pods all Running"), wall * 1000.0, "ms").against(
            &format!("runc run -d ×{PODS}, sequential"),
            runc.iter().sum::<f64>(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 25.0);
        assert_eq!(percentile(&v, 99.0), 50.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}

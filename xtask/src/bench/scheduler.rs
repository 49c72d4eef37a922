//! `cargo xtask bench scheduler`: a control plane with thousands of hollow nodes
//! (`skiff-agent hollow`), and waves of pods (plain, with pod anti-affinity, with topology
//! spread) created by many concurrent API clients while one watch times each pod's bind and
//! Running. Reports pods/s scheduled, create → bound / Running percentiles, the API's create
//! latency during the run, and the control plane's RSS and CPU.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use skiff_tests::cluster::Cluster;

use super::BenchRow;
use super::pods::percentile;
use crate::cluster::api::Api;
use crate::paths::Paths;
use crate::run::{cargo, note, run as run_cmd, step};

/// Concurrent API clients creating pods.
const CLIENTS: usize = 32;
/// Kubernetes' scheduler_perf threshold for 5,000 nodes (upstream's published floor, on far
/// bigger machines; not run here — quoted as the anchor).
const UPSTREAM_FLOOR: f64 = 680.0;

/// One wave of pods.
struct Wave {
    name: &'static str,
    pods: usize,
    /// Extra pod spec (affinity, spread constraints).
    spec: fn(usize) -> Value,
    labels: fn(usize) -> Value,
}

fn plain_labels(_: usize) -> Value {
    json!({"bench": "scheduler"})
}

fn no_spec(_: usize) -> Value {
    json!({})
}

/// Four colours; a pod refuses a node that has a pod of its colour (so at most four per node).
fn colour_labels(i: usize) -> Value {
    json!({"bench": "scheduler", "colour": format!("c{}", i % 4)})
}

fn anti_affinity(i: usize) -> Value {
    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"colour": format!("c{}", i % 4)}},
        "topologyKey": "kubernetes.io/hostname"
    }]}}})
}

fn spread_labels(_: usize) -> Value {
    json!({"bench": "scheduler", "spread": "zones"})
}

fn spread(_: usize) -> Value {
    json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"spread": "zones"}}
    }]})
}

fn pod(wave: &Wave, i: usize) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
        }]
    });
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), (wave.spec)(i)) {
        s.extend(extra);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{}-{i}", wave.name), "labels": (wave.labels)(i)},
        "spec": spec
    })
}

/// Moves the calling thread into the cluster's network namespace (where the API listens on
/// 127.0.0.1).
fn enter(cluster: &Cluster) -> Result<()> {
    let ns = std::fs::File::open(cluster.ns.path()).context("opening the netns")?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

fn api(cluster: &Cluster, timeout: Option<Duration>) -> Result<Api> {
    let d = cluster.dir.path();
    Api::with_timeout(&d.join("control/pki/ca.crt"), &cluster.kubeconfig, timeout)
}

/// When the watch saw a pod bound and Running.
#[derive(Default, Clone, Copy)]
struct Seen {
    bound: Option<Instant>,
    running: Option<Instant>,
}

/// Watches the wave's pods from `rv` until every one of `count` is bound and Running (or the
/// deadline); returns per-pod times.
fn watch(
    cluster: &Cluster,
    ns: &str,
    rv: &str,
    count: usize,
    deadline: Instant,
) -> Result<mpsc::Receiver<HashMap<String, Seen>>> {
    let api = api(cluster, None)?;
    let path = format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}");
    let netns = std::fs::File::open(cluster.ns.path())?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET);
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut done = 0;
        if let Ok(lines) = api.stream(&path) {
            for line in lines.lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let pod = &event["object"];
                let Some(name) = pod["metadata"]["name"].as_str() else {
                    continue;
                };
                let s = seen.entry(name.to_string()).or_default();
                let was_done = s.bound.is_some() && s.running.is_some();
                if s.bound.is_none() && pod["spec"]["nodeName"].as_str().is_some() {
                    s.bound = Some(at);
                }
                if s.running.is_none() && pod["status"]["phase"] == "Running" {
                    s.running = Some(at);
                }
                if !was_done && s.bound.is_some() && s.running.is_some() {
                    done += 1;
                }
                if done >= count || Instant::now() > deadline {
                    break;
                }
            }
        }
        let _ = tx.send(seen);
    });
    Ok(rx)
}

/// Creates the wave's pods with `CLIENTS` threads; returns (pod name → create start, create
/// latencies in ms).
fn create(
    cluster: &Cluster,
    ns: &str,
    wave: &Wave,
) -> Result<(HashMap<String, Instant>, Vec<f64>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| -> Result<()> {
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let tx = tx.clone();
            let api = api(cluster, Some(Duration::from_secs(30)))?;
            clients.push(scope.spawn(move || -> Result<()> {
                enter(cluster)?;
                for i in (client..wave.pods).step_by(CLIENTS) {
                    let body = serde_json::to_vec(&pod(wave, i))?;
                    let start = Instant::now();
                    let (status, text) =
                        api.post_json(&format!("/api/v1/namespaces/{ns}/pods"), &body)?;
                    if status != 201 {
                        bail!("creating pod {i}: {status} {text}");
                    }
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    let _ = tx.send((format!("{}-{i}", wave.name), start, ms));
                }
                Ok(())
            }));
        }
        for c in clients {
            c.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        }
        Ok(())
    })?;
    drop(tx);
    let mut starts = HashMap::new();
    let mut latencies = Vec::new();
    for (name, start, ms) in rx {
        starts.insert(name, start);
        latencies.push(ms);
    }
    if starts.len() != wave.pods {
        bail!("only {} of {} pods were created", starts.len(), wave.pods);
    }
    Ok((starts, latencies))
}

/// (user + system CPU seconds, RSS MiB, peak RSS MiB) of a process.
fn usage(pid: u32) -> Result<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks / hz, kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0))
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs one wave in its own namespace and returns its rows.
fn run_wave(cluster: &Cluster, wave: &Wave, control: u32) -> Result<Vec<BenchRow>> {
    step(format!("wave {}: {} pods", wave.name, wave.pods));
    let ns = format!("bench-{}", wave.name);
    cluster.kubectl_ok(&["create", "namespace", &ns]);
    let list_api = api(cluster, Some(Duration::from_secs(30)))?;
    let rv = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<String> {
                enter(cluster)?;
                let path = format!("/api/v1/namespaces/{ns}/pods?limit=1");
                let (status, body) = list_api.get_body(&path)?;
                anyhow::ensure!(status == 200, "listing pods: {status} {body}");
                let list: Value = serde_json::from_str(&body)?;
                Ok(list["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("0")
                    .to_string())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the list thread panicked"))?
    })?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let seen = watch(cluster, &ns, &rv, wave.pods, deadline)?;
    let (cpu0, ..) = usage(control)?;
    let started = Instant::now();
    let (starts, create_ms) = create(cluster, &ns, wave)?;
    let created_in = started.elapsed().as_secs_f64();
    let seen = seen
        .recv_timeout(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5))
        .context("the watch thread vanished")?;
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, rss, peak) = usage(control)?;
    let mut bound = Vec::new();
    let mut running = Vec::new();
    let mut binds = Vec::new();
    for (name, start) in &starts {
        let Some(s) = seen.get(name) else { continue };
        if let Some(b) = s.bound {
            bound.push(b.duration_since(*start).as_secs_f64() * 1000.0);
            binds.push(b);
        }
        if let Some(r) = s.running {
            running.push(r.duration_since(*start).as_secs_f64() * 1000.0);
        }
    }
    if bound.len() < wave.pods {
        bail!(
            "only {} of {} pods were bound within the deadline\n{}",
            bound.len(),
            wave.pods,
            cluster.logs()
        );
    }
    binds.sort();
    let span = binds[binds.len() - 1]
        .duration_since(binds[0])
        .as_secs_f64()
        .max(1e-3);
    let rate = wave.pods as f64 / span;
    note(format!(
        "{}: created in {created_in:.1} s, all bound after {wall:.1} s",
        wave.name
    ));
    let (bound, running, create_ms) = (sorted(bound), sorted(running), sorted(create_ms));
    let w = wave.name;
    let mut rows = vec![
        BenchRow::new(
            &format!("{w}: pods scheduled/s (first to last bind)"),
            rate,
            "pods/s",
        )
        .against(
            "kube-scheduler scheduler_perf floor, 5k nodes (upstream, not run here)",
            UPSTREAM_FLOOR,
        ),
        BenchRow::new(
            &format!("{w}: create→bound p50"),
            percentile(&bound, 50.0),
            "ms",
        ),
        BenchRow::new(
            &format!("{w}: create→bound p99"),
            percentile(&bound, 99.0),
            "ms",
        ),
        BenchRow::new(
            &format!("{w}: pod create API p99 during the run"),
            percentile(&create_ms, 99.0),
            "ms",
        ),
        BenchRow::new(
            &format!("{w}: control plane CPU"),
            (cpu1 - cpu0) / wall,
            "cores",
        ),
        BenchRow::new(&format!("{w}: control plane RSS after"), rss, "MiB"),
        BenchRow::new(&format!("{w}: control plane peak RSS"), peak, "MiB"),
    ];
    if running.len() == wave.pods {
        rows.insert(
            3,
            BenchRow::new(
                &format!("{w}: create→Running p50"),
                percentile(&running, 50.0),
                "ms",
            ),
        );
        rows.insert(
            4,
            BenchRow::new(
                &format!("{w}: create→Running p99"),
                percentile(&running, 99.0),
                "ms",
            ),
        );
    } else {
        note(format!(
            "{w}: only {} of {} pods reported Running",
            running.len(),
            wave.pods
        ));
    }
    Ok(rows)
}

pub fn run(paths: &Paths) -> Result<Vec<BenchRow>> {
    let nodes: usize = std::env::var("SKIFF_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let scale: f64 = std::env::var("SKIFF_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let size = |n: usize| ((n as f64 * scale) as usize).max(1);
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
    step(format!(
        "starting a control plane with {nodes} hollow nodes"
    ));
    // One /24 per node: 10.64.0.0/10 holds 16,384 of them, clear of the service range.
    let mut cluster = Cluster::control_plane_with("bsched", &["--cluster-cidr", "10.64.0.0/10"]);
    let control = cluster.control_pid().context("control plane pid")?;
    cluster.start_hollow_with("h-", nodes, 300, &["--zones", "10"]);
    let registered = Instant::now();
    skiff_tests::wait_for(
        "the hollow nodes to be Ready",
        Duration::from_secs(600),
        || {
            let out = cluster.kubectl(&["get", "nodes", "--no-headers"]).stdout;
            let ready = out.lines().filter(|l| l.contains(" Ready ")).count();
            (ready >= nodes).then_some(())
        },
    );
    let (_, idle_rss, _) = usage(control)?;
    note(format!(
        "{nodes} nodes Ready after {:.1} s; control plane RSS {idle_rss:.0} MiB",
        registered.elapsed().as_secs_f64()
    ));
    let mut rows = vec![BenchRow::new(
        &format!("control plane RSS with {nodes} idle nodes"),
        idle_rss,
        "MiB",
    )];
    let waves = [
        Wave {
            name: "plain-10k",
            pods: size(10_000),
            spec: no_spec,
            labels: plain_labels,
        },
        Wave {
            name: "plain-30k",
            pods: size(30_000),
            spec: no_spec,
            labels: plain_labels,
        },
        Wave {
            name: "anti-affinity-10k",
            pods: size(10_000),
            spec: anti_affinity,
            labels: colour_labels,
        },
        Wave {
            name: "spread-10k",
            pods: size(10_000),
            spec: spread,
            labels: spread_labels,
        },
    ];
    for wave in &waves {
        let wave_rows = run_wave(&cluster, wave, control)?;
        // Each wave's figures as soon as they exist (a long run may be cut short).
        print!("{}", super::table(&wave_rows));
        rows.extend(wave_rows);
    }
    Ok(rows)
}

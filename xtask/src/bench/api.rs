//! `cargo xtask bench api`: the API server's durable write path, LIST and watch fan-out — skiff
//! on its embedded sled store and skiff on etcd, side by side in one run, with raw etcd puts
//! of the same bodies as the floor. Every control plane runs in a throwaway network namespace;
//! the bench's client threads enter it.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};
use skiff_tests::cluster::Cluster;

use super::BenchRow;
use super::pods::percentile;
use crate::cluster::api::Api;
use crate::paths::Paths;
use crate::run::{cargo, note, run as run_cmd, step};

/// Creates timed with one client.
const ONE_CLIENT_CREATES: usize = 300;
/// Concurrent clients for the loaded runs.
const CLIENTS: usize = 64;
/// Creates timed with `CLIENTS` clients; they also make the big LIST.
const MANY_CREATES: usize = 10_000;
/// Concurrent watchers for the fan-out run, and the events each waits for.
const WATCHERS: usize = 1000;
const WATCH_EVENTS: usize = 50;
/// The ConfigMap data size (a typical small object once encoded: ~0.6 KiB).
const VALUE_BYTES: usize = 512;

fn config_map(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"value": "x".repeat(VALUE_BYTES)}
    })
}

fn enter(cluster: &Cluster) -> Result<()> {
    let ns = std::fs::File::open(cluster.ns.path()).context("opening the netns")?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

fn api(cluster: &Cluster, timeout: Option<Duration>) -> Result<Api> {
    Api::with_timeout(
        &cluster.dir.path().join("control/pki/ca.crt"),
        &cluster.kubeconfig,
        timeout,
    )
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// `count` operations spread over `clients` threads inside the cluster's namespace; `op(i)`
/// does operation `i`. Returns (operations/s, sorted latencies in ms).
fn load(
    cluster: &Cluster,
    clients: usize,
    count: usize,
    op: impl Fn(usize) -> Result<()> + Sync,
) -> Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let latencies = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| -> Result<()> {
        let mut threads = Vec::new();
        for client in 0..clients {
            let (op, latencies) = (&op, &latencies);
            threads.push(scope.spawn(move || -> Result<()> {
                enter(cluster)?;
                let mut mine = Vec::new();
                for i in (client..count).step_by(clients) {
                    let start = Instant::now();
                    op(i)?;
                    mine.push(start.elapsed().as_secs_f64() * 1000.0);
                }
                latencies.lock().expect("latencies").extend(mine);
                Ok(())
            }));
        }
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    Ok((
        count as f64 / secs,
        sorted(latencies.into_inner().expect("latencies")),
    ))
}

/// Creates ConfigMaps `<prefix>-<i>` in `ns`.
fn creates(
    cluster: &Cluster,
    ns: &str,
    prefix: &str,
    clients: usize,
    count: usize,
) -> Result<(f64, Vec<f64>)> {
    let client = api(cluster, Some(Duration::from_secs(30)))?;
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    load(cluster, clients, count, |i| {
        let body = serde_json::to_vec(&config_map(&format!("{prefix}-{i}"), json!({})))?;
        let (status, text) = client.post_json(&path, &body)?;
        if status != 201 {
            bail!("create {prefix}-{i}: {status} {text}");
        }
        Ok(())
    })
}

/// Raw etcd puts of the same bodies through etcd's JSON gateway (the floor).
fn etcd_puts(cluster: &Cluster, clients: usize, count: usize) -> Result<(f64, Vec<f64>)> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let value = serde_json::to_vec(&config_map("raw", json!({})))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    load(cluster, clients, count, |i| {
        let body = json!({
            "key": b64.encode(format!("/bench-raw/{clients}/{i}")),
            "value": b64.encode(&value),
        });
        let resp = agent
            .post("http://127.0.0.1:2379/v3/kv/put")
            .content_type("application/json")
            .send(serde_json::to_vec(&body)?.as_slice())?;
        if resp.status() != 200 {
            bail!("etcd put: {}", resp.status());
        }
        Ok(())
    })
}

/// Full LISTs of `ns`'s ConfigMaps: sorted latencies (ms) and the item count seen.
fn lists(cluster: &Cluster, ns: &str, times: usize) -> Result<(Vec<f64>, usize)> {
    let client = api(cluster, Some(Duration::from_secs(60)))?;
    let items = Mutex::new(0);
    let (_, latencies) = load(cluster, 1, times, |_| {
        let (status, body) = client.get_body(&format!("/api/v1/namespaces/{ns}/configmaps"))?;
        if status != 200 {
            bail!("list: {status}");
        }
        let list: Value = serde_json::from_str(&body)?;
        *items.lock().expect("items") = list["items"].as_array().map_or(0, Vec::len);
        Ok(())
    })?;
    Ok((latencies, items.into_inner().expect("items")))
}

/// `WATCHERS` watches of `ns`; then `WATCH_EVENTS` creates, paced; returns the sorted
/// create-request → delivered latencies (ms) over every watcher and event.
fn fan_out(cluster: &Cluster, ns: &str) -> Result<Vec<f64>> {
    let client = api(cluster, Some(Duration::from_secs(30)))?;
    let rv = {
        let out = Mutex::new(String::new());
        load(cluster, 1, 1, |_| {
            let (_, body) =
                client.get_body(&format!("/api/v1/namespaces/{ns}/configmaps?limit=1"))?;
            let list: Value = serde_json::from_str(&body)?;
            *out.lock().expect("rv") = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_string();
            Ok(())
        })?;
        out.into_inner().expect("rv")
    };
    let path = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&labelSelector=wave%3Dwatch&resourceVersion={rv}&timeoutSeconds=120"
    );
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (opened_tx, opened_rx) = mpsc::channel();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let watch_api = api(cluster, None)?;
        let netns = std::fs::File::open(cluster.ns.path())?;
        let (path, received, opened) = (path.clone(), received.clone(), opened_tx.clone());
        watchers.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let _ = nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET);
                    let Ok(lines) = watch_api.stream(&path) else {
                        let _ = opened.send(false);
                        return;
                    };
                    let _ = opened.send(true);
                    let mut mine = Vec::with_capacity(WATCH_EVENTS);
                    for line in lines.lines() {
                        let Ok(line) = line else { break };
                        let at = Instant::now();
                        let Ok(event) = serde_json::from_str::<Value>(&line) else {
                            continue;
                        };
                        if event["type"] == "ADDED"
                            && let Some(name) = event["object"]["metadata"]["name"].as_str()
                        {
                            mine.push((name.to_string(), at));
                            if mine.len() == WATCH_EVENTS {
                                break;
                            }
                        }
                    }
                    received.lock().expect("received").extend(mine);
                })?,
        );
    }
    let opened = (0..WATCHERS)
        .filter(|_| {
            opened_rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or(false)
        })
        .count();
    if opened < WATCHERS {
        bail!("only {opened} of {WATCHERS} watches opened");
    }
    // Let the server finish setting up the watches before the first event.
    std::thread::sleep(Duration::from_secs(2));
    let sent: Mutex<HashMap<String, Instant>> = Mutex::default();
    load(cluster, 1, WATCH_EVENTS, |i| {
        let name = format!("fan-{i}");
        let body = serde_json::to_vec(&config_map(&name, json!({"wave": "watch"})))?;
        sent.lock()
            .expect("sent")
            .insert(name.clone(), Instant::now());
        let (status, text) =
            client.post_json(&format!("/api/v1/namespaces/{ns}/configmaps"), &body)?;
        if status != 201 {
            bail!("create {name}: {status} {text}");
        }
        std::thread::sleep(Duration::from_millis(40));
        Ok(())
    })?;
    for w in watchers {
        let _ = w.join();
    }
    let sent = sent.into_inner().expect("sent");
    let received = Arc::try_unwrap(received)
        .map_err(|_| anyhow::anyhow!("watchers still running"))?
        .into_inner()
        .expect("received");
    let expected = WATCHERS * WATCH_EVENTS;
    if received.len() < expected {
        bail!("only {} of {expected} watch events arrived", received.len());
    }
    Ok(sorted(
        received
            .iter()
            .filter_map(|(name, at)| {
                Some(at.duration_since(*sent.get(name)?).as_secs_f64() * 1000.0)
            })
            .collect(),
    ))
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The figures for one store.
struct Run {
    idle_rss: f64,
    one: (f64, Vec<f64>),
    many: (f64, Vec<f64>),
    list: (Vec<f64>, usize),
    fan_out: Vec<f64>,
    raw_one: Option<(f64, Vec<f64>)>,
    raw_many: Option<(f64, Vec<f64>)>,
}

fn measure(cluster: &Cluster, store: &str, raw: bool) -> Result<Run> {
    let pid = cluster.control_pid().context("control plane pid")?;
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = rss_mib(pid);
    cluster.kubectl_ok(&["create", "namespace", "bench"]);
    step(format!(
        "{store}: {ONE_CLIENT_CREATES} creates from 1 client"
    ));
    let one = creates(cluster, "bench", "one", 1, ONE_CLIENT_CREATES)?;
    step(format!(
        "{store}: {MANY_CREATES} creates from {CLIENTS} clients"
    ));
    let many = creates(cluster, "bench", "many", CLIENTS, MANY_CREATES)?;
    step(format!("{store}: LIST of every ConfigMap, 5 times"));
    let list = lists(cluster, "bench", 5)?;
    step(format!(
        "{store}: {WATCHERS} watchers, {WATCH_EVENTS} events"
    ));
    cluster.kubectl_ok(&["create", "namespace", "watch"]);
    let fan_out = fan_out(cluster, "watch")?;
    let (raw_one, raw_many) = if raw {
        step(format!(
            "raw etcd: {ONE_CLIENT_CREATES} puts from 1 client, {MANY_CREATES} from {CLIENTS}"
        ));
        (
            Some(etcd_puts(cluster, 1, ONE_CLIENT_CREATES)?),
            Some(etcd_puts(cluster, CLIENTS, MANY_CREATES)?),
        )
    } else {
        (None, None)
    };
    note(format!(
        "{store}: idle RSS {idle_rss:.0} MiB, after the run {:.0} MiB",
        rss_mib(pid)
    ));
    Ok(Run {
        idle_rss,
        one,
        many,
        list,
        fan_out,
        raw_one,
        raw_many,
    })
}

pub fn run(paths: &Paths) -> Result<Vec<BenchRow>> {
    step("building skiff-control (release)");
    run_cmd(cargo(paths).args(["build", "--release", "-p", "skiff-control"]))?;
    // SAFETY: xtask is single-threaded here; the harness reads this to pick release binaries.
    unsafe { std::env::set_var("SKIFF_BIN_DIR", paths.target().join("release")) };
    step("skiff on sled: a control plane in a throwaway network namespace");
    let sled = {
        let cluster = Cluster::control_plane_only("bapi-sled");
        measure(&cluster, "sled", false)?
    };
    step("skiff on etcd: Debian's etcd in the namespace, then the control plane");
    let etcd = {
        let cluster = Cluster::control_plane_on_etcd("bapi-etcd", &[]);
        measure(&cluster, "etcd", true)?
    };
    let raw_one = etcd.raw_one.clone().context("raw etcd figures")?;
    let raw_many = etcd.raw_many.clone().context("raw etcd figures")?;
    let mut rows = Vec::new();
    for (store, r) in [("sled", &sled), ("etcd", &etcd)] {
        let s = |m: &str| format!("skiff on {store}: {m}");
        rows.extend([
            BenchRow::new(&s("creates/s, 1 client"), r.one.0, "ops/s")
                .against("raw etcd put, 1 client", raw_one.0),
            BenchRow::new(&s("create p50, 1 client"), percentile(&r.one.1, 50.0), "ms")
                .against("raw etcd put p50", percentile(&raw_one.1, 50.0)),
            BenchRow::new(&s("create p99, 1 client"), percentile(&r.one.1, 99.0), "ms")
                .against("raw etcd put p99", percentile(&raw_one.1, 99.0)),
            BenchRow::new(
                &s(&format!("creates/s, {CLIENTS} clients")),
                r.many.0,
                "ops/s",
            )
            .against(&format!("raw etcd put, {CLIENTS} clients"), raw_many.0),
            BenchRow::new(
                &s(&format!("create p50, {CLIENTS} clients")),
                percentile(&r.many.1, 50.0),
                "ms",
            )
            .against("raw etcd put p50", percentile(&raw_many.1, 50.0)),
            BenchRow::new(
                &s(&format!("create p99, {CLIENTS} clients")),
                percentile(&r.many.1, 99.0),
                "ms",
            )
            .against("raw etcd put p99", percentile(&raw_many.1, 99.0)),
            BenchRow::new(
                &s(&format!("LIST of {} ConfigMaps p50", r.list.1)),
                percentile(&r.list.0, 50.0),
                "ms",
            ),
            BenchRow::new(
                &s(&format!("watch delivery p50, {WATCHERS} watchers")),
                percentile(&r.fan_out, 50.0),
                "ms",
            ),
            BenchRow::new(
                &s(&format!("watch delivery p99, {WATCHERS} watchers")),
                percentile(&r.fan_out, 99.0),
                "ms",
            ),
            BenchRow::new(&s("control plane RSS, idle"), r.idle_rss, "MiB"),
        ]);
    }
    Ok(rows)
}

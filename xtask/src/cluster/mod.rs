//! `cargo xtask up`: a single-node cluster in the foreground (registry with the busybox image,
//! control plane, agent), all state in `.skiff/`; stops in order on Ctrl-C / SIGTERM.

pub(crate) mod api;
mod down;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use down::down;

use crate::image;
use crate::paths::{Paths, Profile};
use crate::proc::{AGENT, ALL_STOP_ORDER, CONTROL, Program, REGISTRY};
use crate::push;
use crate::registry::{self, Pushed};
use crate::run::{cargo_build, note, step, tail};
use crate::setup;

const REGISTRY_ADDR: &str = "127.0.0.1:5000";

/// The programs `up` started, and whether a stop signal arrived.
struct Cluster<'a> {
    paths: &'a Paths,
    children: Vec<(Program, Child)>,
    stop: Arc<AtomicBool>,
}

impl Cluster<'_> {
    fn start(&mut self, program: Program, cmd: &mut Command) -> Result<()> {
        let child = program.spawn(self.paths, cmd)?;
        self.children.push((program, child));
        Ok(())
    }

    /// Fails if a stop was requested or a started program has exited (with its log's tail).
    fn check(&mut self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        for (program, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let log = program.log_file(self.paths);
                bail!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    program.exe,
                    log.display(),
                    tail(&log, 30)
                );
            }
        }
        Ok(())
    }

    /// Polls `ok` until it holds (true) or `timeout` passes (false); fails early when a
    /// program dies or a stop signal arrives.
    fn wait_until(&mut self, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check()?;
            if ok() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait(&mut self, what: &str, timeout: Duration, ok: impl FnMut() -> bool) -> Result<()> {
        if !self.wait_until(timeout, ok)? {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        Ok(())
    }
}

/// Starts the cluster and serves until stopped. With `bin_dir`, runs the binaries found there
/// instead of building `target/<profile>/`.
pub fn up(paths: &Paths, profile: Profile, bin_dir: Option<PathBuf>) -> Result<()> {
    let running: Vec<String> = ALL_STOP_ORDER
        .iter()
        .filter_map(|p| p.running(paths).map(|pid| format!("{} (pid {pid})", p.exe)))
        .collect();
    if !running.is_empty() {
        bail!(
            "a skiff cluster from this repository is already running: {}; stop it with `cargo xtask down`",
            running.join(", ")
        );
    }
    setup::setup()?;
    let bin_dir = match bin_dir {
        Some(dir) => dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?,
        None => {
            cargo_build(paths, profile)?;
            paths.bin_dir(profile)
        }
    };
    let control_bin = bin_dir.join(CONTROL.exe);
    let agent_bin = bin_dir.join(AGENT.exe);
    for bin in [&control_bin, &agent_bin] {
        anyhow::ensure!(bin.exists(), "{} was not built", bin.display());
    }
    for port in [REGISTRY_ADDR, api::API_ADDR] {
        if TcpStream::connect(port).is_ok() {
            bail!("something already listens on {port}; is another cluster running?");
        }
    }
    for dir in [
        paths.registry_dir(),
        paths.control_dir(),
        paths.agent_dir(),
        paths.logs_dir(),
        paths.run_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(paths.bin_dir_file(), bin_dir.to_string_lossy().as_bytes())?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut cluster = Cluster {
        paths,
        children: Vec::new(),
        stop,
    };
    let result =
        start_all(&mut cluster, &control_bin, &agent_bin).and_then(|()| serve(&mut cluster));
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    }
    step("shutting down");
    let stopped = down::shutdown(paths);
    for (_, child) in &mut cluster.children {
        let _ = child.wait();
    }
    match (result, stopped) {
        (Ok(()), stopped) => stopped,
        (Err(_), Ok(())) => bail!("the cluster stopped after the error above"),
        (Err(_), Err(e)) => Err(e.context("the cluster stopped after the error above")),
    }
}

fn start_all(cluster: &mut Cluster, control_bin: &Path, agent_bin: &Path) -> Result<()> {
    let paths = cluster.paths;
    step(format!("starting the image registry on {REGISTRY_ADDR}"));
    let config = paths.registry_dir().join("config.yml");
    registry::write_config(&config, &paths.registry_dir().join("data"), REGISTRY_ADDR)?;
    cluster.start(REGISTRY, &mut registry::serve_command(&config))?;
    let client = registry::Client::new(&format!("http://{REGISTRY_ADDR}"));
    cluster.wait("the registry's /v2/", Duration::from_secs(30), || {
        client.ping()
    })?;

    step(format!("building the busybox image from {}", push::BUSYBOX));
    match push::push_busybox(REGISTRY_ADDR)? {
        (digest, Pushed::AlreadyPresent) => note(format!(
            "{} already in the registry ({digest})",
            image::REPO
        )),
        (digest, Pushed::Uploaded) => note(format!("pushed {} ({digest})", image::REPO)),
    }
    std::fs::write(
        paths.registries_yaml(),
        format!("mirrors:\n  \"docker.io\":\n    endpoint:\n      - \"http://{REGISTRY_ADDR}\"\n"),
    )?;

    step(format!("starting skiff-control on {}", api::API_ADDR));
    let _ = std::fs::remove_file(paths.kubeconfig());
    cluster.start(
        CONTROL,
        Command::new(control_bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(paths.control_dir())
            .args(["--listen", api::API_ADDR])
            .arg("--kubeconfig")
            .arg(paths.kubeconfig()),
    )?;
    cluster.wait(
        "the kubeconfig, node token and CA",
        Duration::from_secs(60),
        || {
            [paths.kubeconfig(), paths.node_token(), paths.ca_cert()]
                .iter()
                .all(|p| p.exists())
        },
    )?;
    let api = api::Api::new(&paths.ca_cert(), &paths.kubeconfig())?;
    cluster.wait(
        "https://127.0.0.1:6443/readyz",
        Duration::from_secs(60),
        || api.ready(),
    )?;

    let node = node_name()?;
    step(format!("starting skiff-agent as node {node}"));
    cluster.start(
        AGENT,
        Command::new(agent_bin)
            .arg("run")
            .arg("--server")
            .arg(format!("https://{}", api::API_ADDR))
            .arg("--token-file")
            .arg(paths.node_token())
            .arg("--ca-file")
            .arg(paths.ca_cert())
            .args(["--node-name", &node])
            .arg("--root-dir")
            .arg(paths.agent_dir())
            .arg("--registries")
            .arg(paths.registries_yaml()),
    )?;
    if cluster.wait_until(Duration::from_secs(90), || api.node_ready(&node))? {
        note(format!("node {node} is Ready"));
    } else {
        // A slow node is worth a warning, not a teardown: its log says why.
        note(format!(
            "warning: node {node} is not Ready after 90 s; see {}",
            AGENT.log_file(paths).display()
        ));
    }
    Ok(())
}

/// Stays in the foreground until a stop signal (Ok) or a program exits (Err).
fn serve(cluster: &mut Cluster) -> Result<()> {
    let kubeconfig = cluster.paths.kubeconfig();
    println!();
    println!("skiff is up. In another shell:");
    println!("    export KUBECONFIG={}", kubeconfig.display());
    println!("    kubectl get nodes");
    println!("    kubectl run hello --image=busybox --restart=Never -- echo hello");
    println!(
        "Logs are in {}. Press Ctrl-C to stop.",
        cluster.paths.logs_dir().display()
    );
    loop {
        match cluster.check() {
            Ok(()) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) if cluster.stop.load(Ordering::SeqCst) => {
                drop(e);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// The node name: this machine's host name, lower-cased as Kubernetes names must be.
fn node_name() -> Result<String> {
    let host = nix::unistd::gethostname().context("reading the host name")?;
    let name = host.to_string_lossy().to_lowercase();
    anyhow::ensure!(!name.is_empty(), "the host name is empty");
    Ok(name)
}

//! The multi-node lab: a switch namespace with a bridge, the control plane and the registry in
//! their own namespace at 10.99.0.1, N node namespaces (own agent, pod bridge, pod CIDR,
//! forwarding on inside the namespace only, routes to the other nodes' pod CIDRs) and an
//! external client that reaches nodes only by their lab addresses. No namespace has a default
//! route. Dropping the lab (or `down` after a crash) removes everything.

mod teardown;
mod topology;

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use teardown::{NodeLayout, down, host_if, leftovers};
pub use topology::{CLIENT_IP, CONTROL_IP, HOST_IP, LAB_IF, LabNs, MAX_NODES, node_ip};

use crate::cluster::{clone_cmd, spawn, terminate};
use crate::{Output, run_with_timeout};

/// The skiff binaries a lab runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub control: PathBuf,
    pub agent: PathBuf,
    /// `xtask`, for `push-busybox`.
    pub xtask: PathBuf,
}

impl Binaries {
    /// The binaries the tests were built with (see [`crate::binary`]).
    pub fn built() -> Binaries {
        Binaries {
            control: crate::binary("skiff-control"),
            agent: crate::binary("skiff-agent"),
            xtask: crate::binary("xtask"),
        }
    }
}

/// What lab to build.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Prefix of every namespace, cgroup and pin name, e.g. `skiff-lab`.
    pub prefix: String,
    /// How many nodes (1..=MAX_NODES).
    pub nodes: usize,
    /// Where logs, the control plane's data and the agents' roots live (emptied at start).
    pub state_dir: PathBuf,
    /// Also link the host to the switch (a veth `<prefix>-host` with 10.99.0.254/32 and a /32
    /// route to the control address only), so kubectl works from the host shell.
    pub host_link: bool,
    pub bins: Binaries,
}

/// One node of a running lab.
#[derive(Debug)]
pub struct LabNode {
    pub layout: NodeLayout,
    pub ns: LabNs,
    pub ip: Ipv4Addr,
    /// The pod CIDR the control plane assigned (set once the node is Ready).
    pub pod_cidr: String,
}

/// A running lab; dropping it takes everything down.
pub struct Lab {
    pub config: LabConfig,
    pub switch: LabNs,
    pub control: LabNs,
    pub client: LabNs,
    pub nodes: Vec<LabNode>,
    /// Admin kubeconfig; its server is https://10.99.0.1:6443.
    pub kubeconfig: PathBuf,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// Builds the topology, starts registry, control plane and agents, waits until every
    /// node is Ready and installs the routes between pod CIDRs.
    pub fn start(config: LabConfig) -> Result<Lab> {
        if config.nodes == 0 || config.nodes > MAX_NODES {
            bail!("a lab has 1 to {MAX_NODES} nodes, not {}", config.nodes);
        }
        let stale = down(&config.prefix, &config.state_dir, &config.bins.agent);
        if !stale.is_empty() {
            bail!("could not remove a previous lab: {}", stale.join("; "));
        }
        if config.state_dir.exists() {
            std::fs::remove_dir_all(&config.state_dir)
                .with_context(|| format!("emptying {}", config.state_dir.display()))?;
        }
        std::fs::create_dir_all(config.state_dir.join("logs"))?;
        let p = &config.prefix;
        // From here on a failure drops `lab`, which removes what was made so far.
        let mut lab = Lab {
            switch: LabNs {
                name: format!("{p}-switch"),
            },
            control: LabNs {
                name: format!("{p}-control"),
            },
            client: LabNs {
                name: format!("{p}-client"),
            },
            nodes: Vec::new(),
            kubeconfig: config.state_dir.join("kubeconfig"),
            children: Vec::new(),
            config,
        };
        lab.build_network()?;
        lab.start_registry()?;
        lab.start_control()?;
        for node in 0..lab.nodes.len() {
            lab.start_agent(node)?;
        }
        lab.wait_ready()?;
        lab.route_pod_cidrs()?;
        Ok(lab)
    }

    fn build_network(&mut self) -> Result<()> {
        let p = self.config.prefix.clone();
        self.switch = topology::make_switch(&self.switch.name)?;
        self.control = LabNs::create(&self.control.name)?;
        topology::plug(&self.switch, "ctl", &self.control, CONTROL_IP)?;
        for i in 1..=self.config.nodes {
            let layout = NodeLayout::new(&p, &self.config.state_dir, i);
            let ns = LabNs::create(&layout.ns_name)?;
            let ip = node_ip(i);
            topology::plug(&self.switch, &format!("n{i}"), &ns, ip)?;
            // Forwarding only inside the node's own namespace (sysctls are per namespace).
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            self.nodes.push(LabNode {
                layout,
                ns,
                ip,
                pod_cidr: String::new(),
            });
        }
        self.client = LabNs::create(&self.client.name)?;
        topology::plug(&self.switch, "cli", &self.client, CLIENT_IP)?;
        if self.config.host_link {
            let link = host_if(&p);
            anyhow::ensure!(link.len() <= 15, "host link name {link} is too long");
            topology::plug_host(&self.switch, &link)?;
        }
        Ok(())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.config
            .state_dir
            .join("logs")
            .join(format!("{name}.log"))
    }

    /// Starts `cmd` in its own process group (a Ctrl-C to xtask reaches only xtask, which
    /// then stops everything in order), logging to `logs/<name>.log`.
    fn start_child(&mut self, name: &str, mut cmd: Command) {
        cmd.process_group(0);
        let child = spawn(&mut cmd, &self.log(name));
        self.children.push((name.to_string(), child));
    }

    fn start_registry(&mut self) -> Result<()> {
        let dir = self.config.state_dir.join("registry");
        let config = self.config.state_dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {CONTROL_IP}:5000\nlog:\n  level: warn\n",
                dir.display()
            ),
        )?;
        let mut cmd = self.control.command("/usr/bin/docker-registry");
        cmd.arg("serve").arg(&config);
        self.start_child("registry", cmd);
        let mut push = self.control.command(&self.config.bins.xtask);
        push.args(["push-busybox", "--registry", &format!("{CONTROL_IP}:5000")]);
        let mut last = None;
        self.wait(
            "the busybox image to be pushed",
            Duration::from_secs(90),
            |_| {
                let out = run_with_timeout(clone_cmd(&push), Duration::from_secs(60));
                let ok = out.ok;
                last = Some(out);
                ok
            },
        )
        .with_context(|| format!("{:?}", last.map(|o| o.stderr)))?;
        std::fs::write(
            self.registries_yaml(),
            format!("mirrors:\n  docker.io:\n    endpoint:\n      - http://{CONTROL_IP}:5000\n"),
        )?;
        Ok(())
    }

    fn registries_yaml(&self) -> PathBuf {
        self.config.state_dir.join("registries.yaml")
    }

    fn control_dir(&self) -> PathBuf {
        self.config.state_dir.join("control")
    }

    fn start_control(&mut self) -> Result<()> {
        let mut cmd = self.control.command(&self.config.bins.control);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.control_dir())
            .args(["--listen", &format!("{CONTROL_IP}:6443")])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        self.start_child("control", cmd);
        self.wait(
            "the control plane to answer",
            Duration::from_secs(60),
            |lab| lab.kubeconfig.exists() && lab.kubectl(&["get", "--raw", "/readyz"]).ok,
        )
    }

    /// Starts node `node`'s agent and waits until it has registered and holds a pod CIDR.
    /// One at a time: skiff-control allocates pod CIDRs with a list-then-create that races
    /// between concurrent registrations (two nodes got the same /24 in a parallel start).
    fn start_agent(&mut self, node: usize) -> Result<()> {
        let n = &self.nodes[node];
        let pki = self.control_dir().join("pki");
        let mut cmd = n.ns.command(&self.config.bins.agent);
        cmd.arg("run")
            .args(["--server", &format!("https://{CONTROL_IP}:6443")])
            .args(["--node-name", &n.layout.name])
            .args(["--node-ip", &n.ip.to_string()])
            .arg("--token-file")
            .arg(pki.join("node-token"))
            .arg("--ca-file")
            .arg(pki.join("ca.crt"))
            .arg("--registries")
            .arg(self.registries_yaml());
        n.layout.node_args(&mut cmd);
        let name = n.layout.name.clone();
        self.start_child(&name, cmd);
        let what = format!("{name} to register");
        self.wait(&what, Duration::from_secs(60), |lab| {
            let out = lab.kubectl(&["get", "node", &name, "-o", "jsonpath={.spec.podCIDR}"]);
            out.ok && !out.stdout.trim().is_empty()
        })
    }

    /// `name podCIDR ready` for every registered node.
    fn node_table(&self) -> Vec<(String, String, bool)> {
        let out = self.kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ]);
        out.stdout
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.into(), f.next()?.into(), f.next()? == "True"))
            })
            .collect()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let want = self.nodes.len();
        self.wait("every node to be Ready", Duration::from_secs(120), |lab| {
            let table = lab.node_table();
            table.len() == want && table.iter().all(|(_, _, ready)| *ready)
        })?;
        let table = self.node_table();
        for node in &mut self.nodes {
            let (_, cidr, _) = table
                .iter()
                .find(|(name, _, _)| *name == node.layout.name)
                .with_context(|| format!("node {} is not registered", node.layout.name))?;
            node.pod_cidr = cidr.clone();
        }
        let mut cidrs: Vec<&str> = self.nodes.iter().map(|n| n.pod_cidr.as_str()).collect();
        cidrs.sort_unstable();
        cidrs.dedup();
        if cidrs.len() != self.nodes.len() {
            bail!("nodes share a pod CIDR: {:?}", table);
        }
        Ok(())
    }

    /// In every node, a route to each other node's pod CIDR via that node's lab address (the
    /// agent's blackhole for the whole cluster CIDR stays behind these more specific routes).
    fn route_pod_cidrs(&self) -> Result<()> {
        for node in &self.nodes {
            for other in self.nodes.iter().filter(|o| o.ip != node.ip) {
                topology::route_via(&node.ns, &other.pod_cidr, other.ip)?;
            }
        }
        Ok(())
    }

    /// Polls `ok` every 250 ms until it holds; fails after `timeout` or as soon as a started
    /// program exits (with its log's tail).
    fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ok: impl FnMut(&Self) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if ok(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Fails if a program the lab started has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let mut exited = None;
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                exited = Some(format!("{name} exited ({status})"));
                break;
            }
        }
        match exited {
            Some(e) => bail!("{e}\n{}", self.logs()),
            None => Ok(()),
        }
    }

    /// Runs kubectl in the control namespace with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = self.control.command("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    /// kubectl that must succeed (panics with the logs otherwise); returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}\n{}",
            out.stdout,
            out.stderr,
            self.logs()
        );
        out.stdout
    }

    /// The last lines of every program's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (name, _) in &self.children {
            text.push_str(&format!(
                "--- {name}.log (tail) ---\n{}\n",
                tail(&self.log(name), 30)
            ));
        }
        text
    }

    /// The host link's name, when the lab has one.
    pub fn host_link(&self) -> Option<String> {
        self.config.host_link.then(|| host_if(&self.config.prefix))
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Agents first (they would restart what the cleanup removes), then the rest.
        for (name, child) in self.children.iter_mut().rev() {
            let grace = if name.starts_with("node") { 10 } else { 5 };
            terminate(child, Duration::from_secs(grace));
        }
        let errors = down(
            &self.config.prefix,
            &self.config.state_dir,
            &self.config.bins.agent,
        );
        for e in errors {
            eprintln!("lab teardown: {e}");
        }
    }
}

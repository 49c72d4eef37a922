//! A whole skiff cluster inside a throwaway network namespace: Debian's docker-registry with a
//! busybox image, skiff-control and one skiff-agent, each a real process, plus kubectl against
//! it. Dropping the cluster stops everything and removes what the agent made.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::netns::NetNs;
use crate::{Output, binary, run_with_timeout, wait_for};

/// A running cluster; everything lives in `dir` and `ns`.
pub struct Cluster {
    pub ns: NetNs,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// Unique names for the host-wide things the agent makes (cgroups, bpffs pins).
    pub cgroup_root: String,
    pub bpffs_dir: PathBuf,
    children: Vec<(&'static str, Child)>,
    agent: Option<Child>,
    control: Option<Child>,
    /// `skiff-agent hollow` fleets by name prefix.
    hollows: Vec<(String, Child)>,
    /// The etcd the control plane stores in, when it is not the embedded sled store.
    etcd: Option<Child>,
    /// Whether an agent ever ran (only then is there anything for `skiff-agent cleanup`).
    agent_started: bool,
    /// Extra flags for skiff-control (kept across restarts).
    control_args: Vec<String>,
}

/// Spawns `cmd` with stdout and stderr appended to `log` (kept across restarts).
pub(crate) fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening log file");
    let err = file.try_clone().expect("cloning log file");
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

impl Cluster {
    /// Starts registry, control plane and agent in a new namespace tagged `tag`.
    pub fn start(tag: &str) -> Cluster {
        Cluster::start_with(tag, &[])
    }

    /// Like [`Cluster::start`], with extra flags for skiff-control (e.g. a short
    /// `--node-monitor-grace-period`).
    pub fn start_with(tag: &str, control_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::control_plane_with(tag, control_args);
        cluster.start_registry();
        cluster.start_agent();
        cluster
    }

    /// Starts only the control plane, in a new namespace tagged `tag`.
    pub fn control_plane_only(tag: &str) -> Cluster {
        Cluster::control_plane_with(tag, &[])
    }

    /// Starts a Debian etcd on the namespace's 127.0.0.1:2379 (data under the cluster dir),
    /// then a control plane storing in it.
    pub fn control_plane_on_etcd(tag: &str, control_args: &[&str]) -> Cluster {
        let mut args = vec!["--store", "etcd://127.0.0.1:2379"];
        args.extend_from_slice(control_args);
        Cluster::build(tag, &args, |cluster| {
            let d = cluster.dir.path();
            let mut cmd = cluster.ns.command("/usr/bin/etcd");
            cmd.arg("--name=skiff")
                .arg(format!("--data-dir={}", d.join("etcd").display()))
                .arg("--listen-client-urls=http://127.0.0.1:2379")
                .arg("--advertise-client-urls=http://127.0.0.1:2379")
                .arg("--listen-peer-urls=http://127.0.0.1:2380")
                .arg("--initial-advertise-peer-urls=http://127.0.0.1:2380")
                .arg("--initial-cluster=skiff=http://127.0.0.1:2380");
            cluster.etcd = Some(spawn(&mut cmd, &d.join("logs/etcd.log")));
            wait_for("etcd to serve", Duration::from_secs(30), || {
                let mut get = cluster.ns.command("/usr/bin/timeout");
                get.args([
                    "3",
                    "/bin/busybox",
                    "wget",
                    "-qO-",
                    "http://127.0.0.1:2379/health",
                ]);
                let out = run_with_timeout(get, Duration::from_secs(5));
                out.stdout.contains("true").then_some(())
            });
        })
    }

    /// Starts only the control plane, with extra flags for skiff-control.
    pub fn control_plane_with(tag: &str, control_args: &[&str]) -> Cluster {
        Cluster::build(tag, control_args, |_| {})
    }

    /// Makes the namespace and directory, runs `before` (e.g. to start a store), then starts
    /// the control plane.
    fn build(tag: &str, control_args: &[&str], before: impl FnOnce(&mut Cluster)) -> Cluster {
        let ns = NetNs::new(tag);
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        let suffix = format!("{tag}-{}", std::process::id());
        let mut cluster = Cluster {
            ns,
            kubeconfig: dir.path().join("kubeconfig"),
            cgroup_root: format!("skiff-test-{suffix}"),
            bpffs_dir: PathBuf::from(format!("/sys/fs/bpf/skiff-test-{suffix}")),
            dir,
            children: Vec::new(),
            agent: None,
            control: None,
            hollows: Vec::new(),
            etcd: None,
            agent_started: false,
            control_args: control_args.iter().map(|a| a.to_string()).collect(),
        };
        before(&mut cluster);
        cluster.start_control();
        cluster
    }

    /// Starts (or restarts) the control plane and waits until it answers.
    pub fn start_control(&mut self) {
        let d = self.dir.path().to_path_buf();
        let mut cmd = self.ns.command(binary("skiff-control"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(d.join("control"))
            .args(["--listen", "127.0.0.1:6443"])
            .args(&self.control_args);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        self.control = Some(spawn(&mut cmd, &d.join("logs/control.log")));
        wait_for(
            "the control plane to answer",
            Duration::from_secs(30),
            || {
                self.kubeconfig.exists().then_some(())?;
                self.kubectl(&["get", "--raw", "/readyz"]).ok.then_some(())
            },
        );
    }

    /// The control plane's process id while it runs.
    pub fn control_pid(&self) -> Option<u32> {
        self.control.as_ref().map(Child::id)
    }

    /// Kills the control plane with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill_control(&mut self) {
        if let Some(mut child) = self.control.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry on the namespace's own loopback and pushes the busybox image.
    pub fn start_registry(&mut self) {
        let d = self.dir.path().to_path_buf();
        let registry_config = d.join("registry.yml");
        std::fs::write(
            &registry_config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\nlog:\n  level: warn\n",
                d.join("registry").display()
            ),
        )
        .expect("registry config");
        let mut cmd = self.ns.command("/usr/bin/docker-registry");
        cmd.arg("serve").arg(&registry_config);
        let child = spawn(&mut cmd, &d.join("logs/registry.log"));
        self.children.push(("registry", child));
        let mut push = self.ns.command(binary("xtask"));
        push.args(["push-busybox", "--registry", "127.0.0.1:5000"]);
        wait_for(
            "the busybox image to be pushed",
            Duration::from_secs(60),
            || {
                let out = run_with_timeout(clone_cmd(&push), Duration::from_secs(30));
                out.ok.then_some(out)
            },
        );
        std::fs::write(
            d.join("registries.yaml"),
            "mirrors:\n  docker.io:\n    endpoint:\n      - http://127.0.0.1:5000\n",
        )
        .expect("registries.yaml");
    }

    /// Starts (or restarts) the agent.
    pub fn start_agent(&mut self) {
        let d = self.dir.path();
        let mut cmd = self.ns.command(binary("skiff-agent"));
        cmd.arg("run")
            .args([
                "--server",
                "https://127.0.0.1:6443",
                "--node-name",
                "skiff-e2e",
            ])
            .arg("--token-file")
            .arg(d.join("control/pki/node-token"))
            .arg("--ca-file")
            .arg(d.join("control/pki/ca.crt"))
            .arg("--registries")
            .arg(d.join("registries.yaml"));
        self.node_args(&mut cmd);
        self.agent = Some(spawn(&mut cmd, &d.join("logs/agent.log")));
        self.agent_started = true;
    }

    fn node_args(&self, cmd: &mut Command) {
        cmd.arg("--root-dir")
            .arg(self.dir.path().join("agent"))
            .args(["--cgroup-root", &self.cgroup_root])
            // Socket LB on this cluster's subtree only (the default, the cgroup2 root, is
            // shared by every test on the machine).
            .arg("--lb-cgroup-root")
            .arg(format!("/sys/fs/cgroup/unified/{}", self.cgroup_root))
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir);
    }

    /// Stops the agent (SIGTERM, then SIGKILL after 10 s); pods keep running.
    pub fn stop_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            terminate(&mut agent, Duration::from_secs(10));
        }
    }

    /// Kills the agent with SIGKILL (its containers keep running).
    pub fn kill_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    /// Starts `count` hollow nodes named `<prefix>00000`… (`skiff-agent hollow`: the real node
    /// protocol with a fake runtime), posting status every `status_every` seconds.
    pub fn start_hollow(&mut self, prefix: &str, count: usize, status_every: u64) {
        self.start_hollow_with(prefix, count, status_every, &[]);
    }

    /// Like [`Cluster::start_hollow`], with extra `skiff-agent hollow` flags; returns its pid.
    pub fn start_hollow_with(
        &mut self,
        prefix: &str,
        count: usize,
        status_every: u64,
        extra: &[&str],
    ) -> u32 {
        let d = self.dir.path();
        let mut cmd = self.ns.command(binary("skiff-agent"));
        cmd.arg("hollow")
            .args(["--server", "https://127.0.0.1:6443"])
            .arg("--token-file")
            .arg(d.join("control/pki/node-token"))
            .arg("--ca-file")
            .arg(d.join("control/pki/ca.crt"))
            .args(["--count", &count.to_string(), "--name-prefix", prefix])
            .args(["--status-every-seconds", &status_every.to_string()])
            .args(extra);
        let child = spawn(&mut cmd, &d.join(format!("logs/hollow-{prefix}.log")));
        let pid = child.id();
        self.hollows.push((prefix.to_string(), child));
        pid
    }

    /// Kills the hollow fleet started with `prefix` (its nodes stop heartbeating).
    pub fn kill_hollow(&mut self, prefix: &str) {
        if let Some(i) = self.hollows.iter().position(|(p, _)| p == prefix) {
            let (_, mut child) = self.hollows.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `skiff-agent cleanup` for this cluster's agent.
    pub fn cleanup_agent(&self) -> Output {
        let mut cmd = self.ns.command(binary("skiff-agent"));
        cmd.arg("cleanup");
        self.node_args(&mut cmd);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    /// Waits until the node is Ready and the `default` namespace has its ServiceAccount (what
    /// creating pods through controllers needs).
    pub fn wait_ready(&self) {
        wait_for("the node to be Ready", Duration::from_secs(60), || {
            let out = self.kubectl(&["get", "nodes"]).stdout;
            out.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .then_some(())
        });
        wait_for(
            "the default service account",
            Duration::from_secs(30),
            || {
                self.kubectl(&["get", "serviceaccount", "default"])
                    .ok
                    .then_some(())
            },
        );
    }

    /// Writes `yaml` to a file in the cluster dir and `kubectl create`s it (without client-side
    /// validation, so tests can send what a schema would refuse).
    pub fn create_yaml(&self, file: &str, yaml: &str) {
        let manifest = self.dir.path().join(file);
        std::fs::write(&manifest, yaml).expect("writing manifest");
        self.kubectl_ok(&[
            "create",
            "-f",
            manifest.to_str().expect("utf-8 path"),
            "--validate=false",
        ]);
    }

    /// Runs kubectl inside the namespace with this cluster's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = self.ns.command("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    /// kubectl that must succeed; returns stdout.
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

    /// The last lines of every component's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["control", "agent", "registry"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("logs/{name}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            text.push_str(&format!("--- {name}.log (tail) ---\n{tail}\n"));
        }
        text
    }

    /// Whether a process with exactly this command line runs in this cluster's pods (found by
    /// its cgroup, so other clusters on the machine do not count).
    pub fn pod_process_running(&self, args: &str) -> bool {
        let marker = format!("/{}/", self.cgroup_root);
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        procs.flatten().any(|entry| {
            let dir = entry.path();
            let cgroups = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cgroups.contains(&marker) && cmdline.trim_end() == args
        })
    }

    /// Host-wide leftovers of this cluster's agent: cgroup dirs, bpffs pins, pod netns.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path().join(&self.cgroup_root);
            if dir.exists() {
                found.push(format!("cgroup {}", dir.display()));
            }
        }
        if self.bpffs_dir.exists() {
            found.push(format!("bpffs {}", self.bpffs_dir.display()));
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().to_string_lossy().into_owned();
        for line in mounts.lines().filter(|l| l.contains(&root)) {
            found.push(format!("mount {line}"));
        }
        found
    }
}

pub(crate) fn clone_cmd(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    c
}

pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes a cgroup subtree in every hierarchy (deepest first), killing what is left in it.
pub(crate) fn remove_cgroup_tree(name: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let root = entry.path().join(name);
        if root.exists() {
            remove_cgroup_dir(&root);
        }
    }
}

fn remove_cgroup_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_dir(&entry.path());
        }
    }
    for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
    {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.hollows {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_agent();
        if self.agent_started {
            let _ = self.cleanup_agent();
        }
        if let Some(mut control) = self.control.take() {
            terminate(&mut control, Duration::from_secs(5));
        }
        if let Some(mut etcd) = self.etcd.take() {
            terminate(&mut etcd, Duration::from_secs(5));
        }
        for (_, child) in self.children.iter_mut().rev() {
            terminate(child, Duration::from_secs(5));
        }
        // Whatever the agent's cleanup missed must still go, so a failed test leaves nothing.
        remove_cgroup_tree(&self.cgroup_root);
        let _ = std::fs::remove_dir_all(&self.bpffs_dir);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().to_string_lossy().into_owned();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

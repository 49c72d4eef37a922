//! `skiff-agent`: the node agent binary — `run` (the agent), `cleanup` (remove everything it
//! made), `hollow` (simulated nodes for scale tests) and the internal `shim` (one
//! single-threaded parent process per container).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use skiff_agent::daemon::{self, AgentConfig};

#[derive(Parser)]
#[command(
    name = "skiff-agent",
    version,
    about = "skiff node agent (kubelet + kube-proxy in one)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register this node and run the pods the control plane binds to it.
    Run(RunArgs),
    /// Remove every container, pod network, cgroup and eBPF pin a previous agent left.
    Cleanup(NodeArgs),
    /// Simulate many nodes (fake runtime, real node protocol) for scale tests and benchmarks.
    Hollow(skiff_agent::hollow::HollowArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Control-plane URL, e.g. https://127.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// File holding the node join token.
    #[arg(long)]
    token_file: PathBuf,
    /// CA certificate (PEM) that signed the control plane's serving certificate.
    #[arg(long)]
    ca_file: PathBuf,
    /// This node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default-route interface).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Registry mirrors (k3s registries.yaml format).
    #[arg(long)]
    registries: Option<PathBuf>,
    /// Relay DNS names outside cluster.local to this server (off: they get REFUSED).
    #[arg(long)]
    dns_upstream: Option<SocketAddr>,
    /// Rotate a container's log file past this size (kubelet's containerLogMaxSize).
    #[arg(long, default_value = "10Mi", value_parser = parse_size)]
    container_log_max_size: u64,
    /// Log files kept per container, the live one included (containerLogMaxFiles).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    container_log_max_files: u32,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Args)]
struct NodeArgs {
    /// Where the agent keeps images, containers and pod state.
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    root_dir: PathBuf,
    /// Name of the cgroup subtree the agent owns (kubepods lives below it).
    #[arg(long, default_value = "skiff")]
    cgroup_root: String,
    /// Where eBPF maps and links are pinned.
    #[arg(long, default_value = "/sys/fs/bpf/skiff")]
    bpffs_dir: PathBuf,
    /// The pod bridge.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// Where pod network namespaces are bind-mounted.
    #[arg(long, default_value = "/run/netns")]
    netns_dir: PathBuf,
    /// The cgroup2 directory the ClusterIP socket programs attach to; every process below it
    /// reaches services (default: the cgroup2 root, so node processes do too). Test clusters
    /// sharing one host pass their own subtree.
    #[arg(long)]
    lb_cgroup_root: Option<PathBuf>,
}

impl NodeArgs {
    /// The configuration for `cleanup`, which needs only where things live.
    fn cleanup_config(self) -> AgentConfig {
        self.with(
            String::new(),
            PathBuf::new(),
            PathBuf::new(),
            String::new(),
            None,
            None,
        )
    }

    fn with(
        self,
        server: String,
        token_file: PathBuf,
        ca_file: PathBuf,
        node_name: String,
        node_ip: Option<IpAddr>,
        registries: Option<PathBuf>,
    ) -> AgentConfig {
        AgentConfig {
            server,
            token_file,
            ca_file,
            node_name,
            node_ip,
            root_dir: self.root_dir,
            registries,
            cgroup_root: self.cgroup_root,
            bpffs_dir: self.bpffs_dir,
            bridge: self.bridge,
            netns_dir: self.netns_dir,
            lb_cgroup_root: self.lb_cgroup_root,
            dns_upstream: None,
            container_log_max_size: 10 << 20,
            container_log_max_files: 5,
        }
    }
}

/// A size as Kubernetes quantities write it (`10Mi`, `500k`, `1048576`).
fn parse_size(s: &str) -> Result<u64, String> {
    let q = k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.to_string());
    let bytes = skiff_proto::quantity::parse_bytes(&q).map_err(|e| e.to_string())?;
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{s} is not a positive size"))
}

fn main() -> anyhow::Result<()> {
    // The shim must run before any thread exists (libcontainer forks).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(skiff_agent::runtime::shim::main(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Cmd::Run(run) => {
            let node_name = match run.node_name {
                Some(n) => n,
                None => nix::unistd::gethostname()?.to_string_lossy().to_lowercase(),
            };
            let config = run.node.with(
                run.server,
                run.token_file,
                run.ca_file,
                node_name,
                run.node_ip,
                run.registries,
            );
            let config = AgentConfig {
                dns_upstream: run.dns_upstream,
                container_log_max_size: run.container_log_max_size,
                container_log_max_files: run.container_log_max_files,
                ..config
            };
            runtime.block_on(daemon::run(config))
        }
        Cmd::Cleanup(node) => runtime.block_on(daemon::cleanup(node.cleanup_config())),
        Cmd::Hollow(args) => runtime.block_on(skiff_agent::hollow::run(args.into())),
    }
}

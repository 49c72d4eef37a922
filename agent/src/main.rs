//! `skiff-agent`: the node agent binary — `run` (the agent), `cleanup` (remove everything it
//! made), `hollow` (simulated nodes for scale tests) and the internal `shim` (one
//! single-threaded parent process per container).

use std::net::IpAddr;
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
        }
    }
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
            runtime.block_on(daemon::run(config))
        }
        Cmd::Cleanup(node) => runtime.block_on(daemon::cleanup(node.cleanup_config())),
        Cmd::Hollow(args) => runtime.block_on(skiff_agent::hollow::run(args.into())),
    }
}

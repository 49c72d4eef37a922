//! Hollow nodes: many simulated nodes in one process, each speaking the real node protocol
//! (registration, Lease, status, the pod command stream) with a fake runtime that reports its
//! pods Running without starting containers. It is how skiff is tested and benchmarked at
//! thousands of nodes on one machine, like Kubernetes' kubemark.

mod node;
mod pods;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

pub use node::HollowNode;

/// What the fleet looks like.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// Control-plane URL.
    pub server: String,
    pub ca_file: PathBuf,
    pub token_file: PathBuf,
    /// How many nodes to simulate.
    pub count: usize,
    /// Node names are `<prefix><index>` with the index zero-padded to five digits.
    pub name_prefix: String,
    /// Each node's capacity.
    pub cpu: String,
    pub memory: String,
    pub max_pods: u32,
    /// Nodes sharing one HTTP/2 connection (each node holds one long-lived stream on it).
    pub nodes_per_connection: usize,
    /// How often a node posts its full status (the Lease is renewed far more often), as the
    /// kubelet's nodeStatusReportFrequency.
    pub status_every: Duration,
    /// Simulated container start time before a pod is reported Running.
    pub start_delay: Duration,
    /// Nodes are labelled `topology.kubernetes.io/zone=zone-<index % zones>` (0: no label).
    pub zones: usize,
}

impl HollowConfig {
    /// The name of node `index`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}{index:05}", self.name_prefix)
    }
}

/// `skiff-agent hollow` flags.
#[derive(Debug, clap::Args)]
pub struct HollowArgs {
    /// Control-plane URL, e.g. https://127.0.0.1:6443.
    #[arg(long)]
    pub server: String,
    /// File holding the node join token.
    #[arg(long)]
    pub token_file: PathBuf,
    /// CA certificate (PEM) that signed the control plane's serving certificate.
    #[arg(long)]
    pub ca_file: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Node names are this prefix and a five-digit index.
    #[arg(long, default_value = "hollow-")]
    pub name_prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "4")]
    pub cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "16Gi")]
    pub memory: String,
    /// Pods capacity of each node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Nodes sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    pub nodes_per_connection: usize,
    /// Seconds between full node status posts (the Lease is renewed more often).
    #[arg(long, default_value_t = 60)]
    pub status_every_seconds: u64,
    /// Milliseconds a fake container takes to start.
    #[arg(long, default_value_t = 0)]
    pub start_delay_ms: u64,
    /// Spread the nodes over this many zones (`topology.kubernetes.io/zone`); 0 for none.
    #[arg(long, default_value_t = 0)]
    pub zones: usize,
}

impl From<HollowArgs> for HollowConfig {
    fn from(a: HollowArgs) -> Self {
        HollowConfig {
            server: a.server,
            ca_file: a.ca_file,
            token_file: a.token_file,
            count: a.count,
            name_prefix: a.name_prefix,
            cpu: a.cpu,
            memory: a.memory,
            max_pods: a.max_pods,
            nodes_per_connection: a.nodes_per_connection,
            status_every: Duration::from_secs(a.status_every_seconds.max(1)),
            start_delay: Duration::from_millis(a.start_delay_ms),
            zones: a.zones,
        }
    }
}

/// Runs `config.count` hollow nodes until SIGINT/SIGTERM.
pub async fn run(config: HollowConfig) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mut nodes = JoinSet::new();
    let mut client = None;
    for index in 0..config.count {
        if index % config.nodes_per_connection.max(1) == 0 {
            client = Some(crate::node::connect(
                &config.server,
                &config.ca_file,
                &config.token_file,
            )?);
        }
        let node = Arc::new(HollowNode::new(config.clone(), index));
        let client = client.clone().expect("set at index 0");
        nodes.spawn(async move { node.run(client).await });
        // Spread registrations a little so thousands of nodes don't arrive in one instant.
        if index % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tracing::info!(count = config.count, "hollow nodes started");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
        Some(ended) = nodes.join_next() => {
            anyhow::bail!("a hollow node stopped: {ended:?}");
        }
    }
    tracing::info!("stopping hollow nodes");
    nodes.shutdown().await;
    Ok(())
}

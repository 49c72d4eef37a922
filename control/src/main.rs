//! `skiff-control`: the control-plane binary — API server, store, scheduler and the node
//! protocol, served together on one HTTPS port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use skiff_control::apiserver::resources::ServiceNetwork;
use skiff_control::apiserver::{self, Pki, registry::Registry};
use skiff_control::controllers::endpointslice;
use skiff_control::controllers::node_lifecycle::NodeLifecycleConfig;
use skiff_control::leader::{LeaderConfig, LeaderElector, default_identity};
use skiff_control::nodes::{ClusterNetwork, NodeService, StreamHub};
use skiff_control::scheduler::Scheduler;
use skiff_control::store::{EtcdOptions, EtcdStore, SledStore, Store, restore_snapshot};

#[derive(Parser)]
#[command(name = "skiff-control", version, about = "skiff control plane")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the Kubernetes API and the node protocol.
    Serve(Box<ServeArgs>),
    /// Back up or restore the embedded (sled) store, like `etcdctl snapshot`.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Print a kubeconfig for USER with a fresh client certificate signed by the cluster CA
    /// (CN = user, O = group), e.g. `skiff-control kubeconfig --user jane > jane.kubeconfig`.
    Kubeconfig(KubeconfigArgs),
}

#[derive(Args)]
struct KubeconfigArgs {
    /// The user name (the certificate's CN).
    #[arg(long)]
    user: String,
    /// The user's group (the certificate's O); one per certificate.
    #[arg(long)]
    group: Option<String>,
    /// Where the server keeps its PKI.
    #[arg(long, default_value = "/var/lib/skiff/control")]
    data_dir: PathBuf,
    /// The server URL to write.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    server: String,
}

fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    let pki = Pki::load_existing(&args.data_dir)?;
    print!(
        "{}",
        pki.client_kubeconfig(&args.server, &args.user, args.group.as_deref())?
    );
    Ok(())
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Write a consistent snapshot of the store under --data-dir to FILE. The store is opened
    /// by this command, so the server using that directory must be stopped (sled locks it).
    Save {
        file: PathBuf,
        #[arg(long, default_value = "/var/lib/skiff/control")]
        data_dir: PathBuf,
    },
    /// Create a fresh store under --data-dir from FILE (the store directory must not exist
    /// or be empty), with the snapshot's objects and revisions.
    Restore {
        file: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
}

async fn snapshot(cmd: SnapshotCmd) -> anyhow::Result<()> {
    let (verb, info, file) = match cmd {
        SnapshotCmd::Save { file, data_dir } => {
            let dir = data_dir.join("store");
            anyhow::ensure!(dir.exists(), "no store at {}", dir.display());
            let store = SledStore::open(&dir).with_context(|| {
                format!("opening {} (is the server still running?)", dir.display())
            })?;
            let info = store.save_snapshot(&file).await?;
            ("saved", info, file)
        }
        SnapshotCmd::Restore { file, data_dir } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let info = restore_snapshot(&file, &data_dir.join("store"))?;
            ("restored", info, file)
        }
    };
    println!(
        "{verb} {}: revision {}, {} objects",
        file.display(),
        info.revision,
        info.objects
    );
    Ok(())
}

#[derive(Args)]
struct ServeArgs {
    /// Where the store, certificates and tokens live.
    #[arg(long, default_value = "/var/lib/skiff/control")]
    data_dir: PathBuf,
    /// The store: `sled` (embedded, under --data-dir) or `etcd://HOST:PORT[,HOST:PORT...]`.
    /// With etcd, several replicas may share it: the scheduler and controllers then run only
    /// in the replica that holds the leader lease.
    #[arg(long, default_value = "sled")]
    store: String,
    /// The key prefix in etcd.
    #[arg(long, default_value = "/skiff/")]
    etcd_prefix: String,
    /// Address to serve HTTPS on (API and node protocol).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig (default: DATA_DIR/kubeconfig).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The URL clients use (default: https://LISTEN).
    #[arg(long)]
    server_url: Option<String>,
    /// The address pods and nodes reach the API server at, published as the endpoints of the
    /// `default/kubernetes` Service (default: the --listen address unless it is a wildcard or
    /// loopback, which pods cannot reach).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Extra names or IPs for the serving certificate.
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Pod addresses, cut into one /24 per node.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Service ClusterIP range.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// The cluster DNS address pods get in resolv.conf.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: String,
    /// The Kubernetes minor version reported by /version (kubectl picks its client by it).
    #[arg(long, default_value_t = 33)]
    version_minor: u32,
    /// How long a node may stay silent before it is marked Unknown (e.g. `40s`, `1.5s`;
    /// tests shorten it).
    #[arg(long, default_value = "40s", value_parser = parse_duration, hide = true)]
    node_monitor_grace_period: Duration,
}

/// A duration as Kubernetes flags write it (`40s`, `500ms`, `1m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from(d).map_err(|e| format!("{e}"))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // Leader election is only needed when replicas can share the store: sled locks its
    // directory, so a second process on it cannot even start.
    let (store, elect): (Arc<dyn Store>, bool) = if args.store == "sled" {
        (
            Arc::new(SledStore::open(&args.data_dir.join("store"))?),
            false,
        )
    } else {
        let options = EtcdOptions {
            prefix: args.etcd_prefix.clone(),
            ..EtcdOptions::from_url(&args.store)?
        };
        (Arc::new(EtcdStore::connect(options).await?), true)
    };
    let service_network = ServiceNetwork::parse(&args.service_cidr)
        .with_context(|| format!("--service-cidr {}", args.service_cidr))?;
    let registry =
        Registry::with_service_network(store, service_network, args.listen.port()).await?;

    let mut sans = args.tls_sans.clone();
    sans.push(args.listen.ip().to_string());
    let pki = Pki::load_or_create(&args.data_dir, &sans)?;
    let server_url = args
        .server_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", args.listen));
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    pki.write_kubeconfig(&kubeconfig, &server_url)?;

    apiserver::authz::bootstrap::ensure_defaults(&registry).await?;
    let hub = StreamHub::default();
    let network = ClusterNetwork {
        cluster_cidr: args.cluster_cidr.clone(),
        service_cidr: args.service_cidr.clone(),
        cluster_dns: args.cluster_dns.clone(),
    };
    let nodes = NodeService::new(
        registry.clone(),
        pki.node_token().to_string(),
        network,
        hub.clone(),
    );
    let api = apiserver::router(
        registry.clone(),
        Arc::new(hub),
        apiserver::Auth::for_cluster(&pki, registry.clone())?,
        args.version_minor,
    );
    // gRPC (the node protocol) and REST share the port; the node service checks its own token.
    let app = tonic::service::Routes::new(nodes.into_server())
        .into_axum_router()
        .merge(api);

    let node_lifecycle = NodeLifecycleConfig {
        grace_period: args.node_monitor_grace_period,
        ..Default::default()
    };
    let advertised = args
        .advertise_address
        .or(Some(args.listen.ip()).filter(|ip| !ip.is_unspecified() && !ip.is_loopback()))
        .map(|ip| SocketAddr::new(ip, args.listen.port()));
    if elect {
        tokio::spawn(lead_then_control(
            registry.clone(),
            node_lifecycle,
            advertised,
        ));
    } else {
        start_control_loops(registry.clone(), node_lifecycle, advertised);
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, kubeconfig = %kubeconfig.display(), "serving");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    apiserver::serve(listener, pki.server_tls_config()?, app, shutdown).await?;
    Ok(())
}

/// The scheduler, every controller and the publisher of the `kubernetes` Service's endpoints.
/// They run in one replica only (see `leader.rs`).
fn start_control_loops(
    registry: Registry,
    node_lifecycle: NodeLifecycleConfig,
    advertised: Option<SocketAddr>,
) {
    tokio::spawn(Scheduler::new(registry.clone()).run());
    if let Some(addr) = advertised {
        tokio::spawn(endpointslice::apiserver::run(registry.clone(), addr));
    }
    skiff_control::controllers::run_all_with(registry, node_lifecycle);
}

/// Waits for the leader lease, starts the control loops, and keeps renewing. Losing the lease
/// ends the process with exit code 3: the controllers' tasks cannot be trusted to stop in
/// between their steps, and a supervisor (systemd, the lab, a test) restarts the replica as a
/// follower. The API keeps serving until then.
async fn lead_then_control(
    registry: Registry,
    node_lifecycle: NodeLifecycleConfig,
    advertised: Option<SocketAddr>,
) {
    let mut elector = LeaderElector::new(
        registry.clone(),
        LeaderConfig::controller_manager(default_identity()),
    );
    tracing::info!(
        identity = elector.identity(),
        "waiting for the leader lease"
    );
    elector.acquire().await;
    start_control_loops(registry, node_lifecycle, advertised);
    let lost = elector.hold().await;
    tracing::error!(
        ?lost,
        "lost the leader lease; exiting so this replica restarts as a follower"
    );
    std::process::exit(3);
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Cmd::Serve(args) => runtime.block_on(serve(*args)),
        Cmd::Snapshot(cmd) => runtime.block_on(snapshot(cmd)),
        Cmd::Kubeconfig(args) => kubeconfig(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubernetes_flags() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}

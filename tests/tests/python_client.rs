//! The official Kubernetes Python client (`kubernetes` from PyPI, installed by `cargo xtask
//! setup` into `target/python-client`) drives a live control plane through
//! tests/python/client_e2e.py: create, selectors, watch from a resourceVersion, merge and
//! strategic patches, replace conflicts, and deletion with propagation policies.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::{repo_root, run_with_timeout};

#[test]
fn python_client_round_trips() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), std::path::PathBuf::from);
    let python = target.join("python-client/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask setup` (or `cargo xtask test`) installs the Python client",
        python.display()
    );
    let cluster = Cluster::control_plane_only("pyclient");
    let mut cmd = cluster.ns.command(&python);
    cmd.arg(repo_root().join("tests/python/client_e2e.py"))
        .env("KUBECONFIG", &cluster.kubeconfig);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    println!("{}", out.stdout);
    assert!(
        out.ok && out.stdout.contains("all checks passed"),
        "the Python client script failed:\n{}\n{}\ncontrol plane log:\n{}",
        out.stdout,
        out.stderr,
        cluster.logs()
    );
}

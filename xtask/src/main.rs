//! `cargo xtask`: installs, builds, runs, tests and benchmarks skiff.

mod bench;
mod cluster;
mod image;
mod lab;
mod paths;
mod proc;
mod push;
mod registry;
mod run;
mod setup;
mod test;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::paths::{Paths, Profile};

/// Developer tasks for the skiff workspace.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and running skiff needs (apt packages, rust-src, bpf-linker, bpffs).
    Setup,
    /// Build the whole workspace (the agent's build script also builds the eBPF programs).
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Start a single-node cluster (registry, control plane, agent) in the foreground.
    Up {
        /// Build and run the release binaries.
        #[arg(long)]
        release: bool,
        /// Run prebuilt `skiff-control` and `skiff-agent` from this directory (skips the build).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
    },
    /// Stop the cluster started by `up` and clean up what the agent left behind.
    Down {
        /// Also remove the whole `.skiff/` state directory.
        #[arg(long)]
        purge: bool,
    },
    /// Check formatting, build, and run the whole test suite (extra args go to `cargo test`).
    Test {
        /// Arguments passed on to `cargo test --workspace`, e.g. a test name filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the busybox image and push it to a registry (for tests and `up`).
    #[command(hide = true)]
    PushBusybox {
        /// Registry address, host:port (plain HTTP).
        #[arg(long)]
        registry: String,
    },
    /// The multi-node lab: a control plane and N nodes in network namespaces.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Run a benchmark and write `target/bench/NAME.json`.
    Bench {
        /// Which benchmark to run (`pods`).
        name: String,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Start a lab in the foreground (state in `.skiff/lab/`, names `skiff-lab-*`).
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Build and run the release binaries.
        #[arg(long)]
        release: bool,
        /// Run prebuilt `skiff-control` and `skiff-agent` from this directory (skips the build).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
    },
    /// Remove everything a lab made, also after a crash.
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain on one line, without anyhow's backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Setup => {
            setup::setup()?;
            setup::python_client(&paths.target()).map(|_| ())
        }
        Command::Build { release } => run::cargo_build(&paths, Profile::from_release(release)),
        Command::Up { release, bin_dir } => {
            cluster::up(&paths, Profile::from_release(release), bin_dir)
        }
        Command::Down { purge } => cluster::down(&paths, purge),
        Command::Test { args } => test::test(&paths, &args),
        Command::Lab(LabCommand::Up {
            nodes,
            release,
            bin_dir,
        }) => lab::up(&paths, Profile::from_release(release), bin_dir, nodes),
        Command::Lab(LabCommand::Down) => lab::down(&paths),
        Command::Bench { name } => bench::bench(&paths, &name),
        Command::PushBusybox { registry } => {
            let (digest, _) = push::push_busybox(&registry)?;
            println!("busybox pushed to {registry} ({digest})");
            Ok(())
        }
    }
}

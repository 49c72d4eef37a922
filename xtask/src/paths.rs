//! Where things live: the repository root, the `.skiff/` state directory and built binaries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Cargo build profile of the binaries `up` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub fn from_release(release: bool) -> Self {
        if release {
            Profile::Release
        } else {
            Profile::Debug
        }
    }

    /// The directory below `target/` that holds this profile's binaries.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }

    /// Extra `cargo build` arguments for this profile.
    pub fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Profile::Debug => &[],
            Profile::Release => &["--release"],
        }
    }
}

/// Absolute paths of everything xtask reads or writes.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The workspace root (the parent of `xtask/`).
    pub root: PathBuf,
    /// `.skiff/`: all state of the cluster started by `up`.
    pub skiff: PathBuf,
}

impl Paths {
    pub fn discover() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .context("xtask's manifest dir has no parent")?
            .canonicalize()
            .context("resolving the workspace root")?;
        Ok(Self::at(root))
    }

    pub fn at(root: PathBuf) -> Self {
        let skiff = root.join(".skiff");
        Self { root, skiff }
    }

    pub fn target(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| {
                if p.is_absolute() {
                    p
                } else {
                    self.root.join(p)
                }
            })
            .unwrap_or_else(|| self.root.join("target"))
    }

    /// `target/<profile>/`, where cargo puts the binaries.
    pub fn bin_dir(&self, profile: Profile) -> PathBuf {
        self.target().join(profile.dir_name())
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.skiff.join("registry")
    }

    pub fn control_dir(&self) -> PathBuf {
        self.skiff.join("control")
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.skiff.join("agent")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.skiff.join("logs")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.skiff.join("run")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.skiff.join("kubeconfig")
    }

    pub fn registries_yaml(&self) -> PathBuf {
        self.skiff.join("registries.yaml")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.control_dir().join("pki").join("ca.crt")
    }

    pub fn node_token(&self) -> PathBuf {
        self.control_dir().join("pki").join("node-token")
    }

    /// Records the directory of the binaries `up` ran, so `down` runs the matching
    /// `skiff-agent cleanup`.
    pub fn bin_dir_file(&self) -> PathBuf {
        self.run_dir().join("bin-dir")
    }
}

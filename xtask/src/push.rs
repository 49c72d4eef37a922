//! `cargo xtask push-busybox`: builds the busybox image from busybox-static and pushes it to a
//! registry (used by `up` and by the end-to-end tests, which run it inside their namespace).

use std::path::Path;

use anyhow::Result;

use crate::image::{self, Busybox};
use crate::registry::{self, Pushed};

/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds the image and pushes it (all tags) to the registry at `addr` (host:port, plain HTTP).
/// Returns the manifest digest and whether anything was uploaded.
pub fn push_busybox(addr: &str) -> Result<(String, Pushed)> {
    let bb = Busybox::load(Path::new(BUSYBOX))?;
    let img = image::build(&bb)?;
    let client = registry::Client::new(&format!("http://{addr}"));
    let pushed = client.push_image(image::REPO, &bb.tags(), &img)?;
    Ok((img.manifest.digest.clone(), pushed))
}

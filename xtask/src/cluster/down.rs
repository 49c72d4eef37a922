//! `cargo xtask down`: stops the cluster's programs in order, runs `skiff-agent cleanup`,
//! and with `--purge` unmounts and removes `.skiff/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::paths::{Paths, Profile};
use crate::proc::{AGENT, ALL_STOP_ORDER};
use crate::run::{note, run_with_timeout, step};

pub fn down(paths: &Paths, purge: bool) -> Result<()> {
    step("stopping the skiff cluster");
    let stopped = shutdown(paths);
    if purge {
        if let Err(e) = &stopped {
            bail!("not purging {}: {e:#}", paths.skiff.display());
        }
        purge_state(&paths.skiff)?;
    }
    stopped
}

/// Stops agent, control and registry (each verified by its command line), then runs the
/// agent's cleanup. Keeps going past a failure so as much as possible is stopped.
pub fn shutdown(paths: &Paths) -> Result<()> {
    let mut errors = Vec::new();
    let mut any = false;
    for program in ALL_STOP_ORDER {
        match program.stop(paths) {
            Ok(stopped) => any |= stopped,
            Err(e) => errors.push(format!("{}: {e:#}", program.exe)),
        }
    }
    if !any {
        note("no cluster processes were running");
    }
    if let Err(e) = cleanup(paths) {
        errors.push(format!("cleanup: {e:#}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("; "))
    }
}

/// Runs `skiff-agent cleanup --root-dir .skiff/agent` (pods, netns, links, cgroups, pins).
fn cleanup(paths: &Paths) -> Result<()> {
    let root_dir = paths.agent_dir();
    if !root_dir.exists() {
        return Ok(());
    }
    // The binaries `up` ran, else whatever cargo built.
    let recorded = std::fs::read_to_string(paths.bin_dir_file())
        .ok()
        .map(|d| PathBuf::from(d.trim()));
    let candidates = recorded.into_iter().chain([
        paths.bin_dir(Profile::Debug),
        paths.bin_dir(Profile::Release),
    ]);
    let Some(bin) = candidates
        .map(|dir| dir.join(AGENT.exe))
        .find(|b| b.exists())
    else {
        bail!(
            "no {} binary to clean up with; run `cargo xtask build`",
            AGENT.exe
        );
    };
    step("cleaning up what the agent left behind");
    run_with_timeout(
        Command::new(bin)
            .arg("cleanup")
            .arg("--root-dir")
            .arg(&root_dir),
        Duration::from_secs(120),
    )
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
            out.push(u8::from_str_radix(oct, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything below `dir`, checks nothing is left mounted, then removes it.
fn purge_state(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    step(format!("purging {}", dir.display()));
    // Stacked mounts need several rounds.
    for _ in 0..10 {
        let mounts = mounts_below(dir)?;
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            note(format!("unmounting {}", m.display()));
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                note(format!("umount {}: {e}", m.display()));
            }
        }
    }
    let left = mounts_below(dir)?;
    if !left.is_empty() {
        bail!(
            "still mounted below {}: {}; not removing it",
            dir.display(),
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    note(format!("removed {}", dir.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Detaches the test mount if the test fails before purging it.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b/c\134d"), r"/a b/c\d");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn purge_unmounts_what_is_mounted_below_and_removes_the_dir() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root to mount");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".skiff");
        let mnt = state.join("agent/pods/x/rootfs");
        std::fs::create_dir_all(&mnt).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &mnt,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let _guard = Unmount(mnt.clone());
        std::fs::write(mnt.join("file"), "x").unwrap();
        assert_eq!(mounts_below(&state).unwrap(), vec![mnt.clone()]);
        purge_state(&state).unwrap();
        assert!(!state.exists());
        assert!(mounts_below(dir.path()).unwrap().is_empty());
    }
}

//! `cargo xtask test`: setup, format check, build, then the whole test suite with a summary.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::paths::{Paths, Profile};
use crate::run::{cargo, cargo_build, note, run, step};
use crate::setup;

/// Counts from cargo's `test result:` lines, summed over all test binaries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub suites: u64,
}

impl Tally {
    /// Adds one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line; ignores others.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.suites += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

pub fn test(paths: &Paths, args: &[String]) -> Result<()> {
    let started = Instant::now();
    if !nix::unistd::geteuid().is_root() {
        note("warning: not root; privileged tests will fail or skip");
    }
    setup::setup()?;
    setup::python_client(&paths.target())?;
    step("checking formatting (cargo fmt --all -- --check)");
    run(cargo(paths).args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs; run `cargo fmt --all`")?;
    cargo_build(paths, Profile::Debug)?;

    step("running the test suite (cargo test --workspace --no-fail-fast)");
    let mut cmd = cargo(paths);
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let mut tally = Tally::default();
    // Echo the output as it comes while counting results.
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child.wait()?;
    let secs = started.elapsed().as_secs();
    println!();
    step(format!(
        "{} test binaries, {} passed, {} failed, {} ignored in {secs} s",
        tally.suites, tally.passed, tally.failed, tally.ignored
    ));
    // The plain closing line CI reads.
    println!(
        "summary: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if tally.failed > 0 {
        bail!("{} tests failed", tally.failed);
    }
    if tally.suites == 0 {
        bail!("cargo test ran no test binary");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_result_lines_and_ignores_the_rest() {
        let mut t = Tally::default();
        for line in [
            "running 4 tests",
            "test a ... ok",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 1 filtered out; finished in 1.5s",
        ] {
            t.add_line(line);
        }
        assert_eq!(
            t,
            Tally {
                passed: 8,
                failed: 2,
                ignored: 1,
                suites: 2
            }
        );
    }
}

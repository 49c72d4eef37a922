//! `cargo xtask`: installs, builds, runs, tests and benchmarks skiff.
fn main() {}

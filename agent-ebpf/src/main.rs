//! skiff's eBPF programs (placeholder until the loader lands).
fn main() {}

//! `skiff-agent`: the node agent binary (`run`, and the internal `shim`).
fn main() {}

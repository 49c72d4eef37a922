//! `skiff-control`: the control-plane binary (API server, store, scheduler, node protocol).
fn main() {}

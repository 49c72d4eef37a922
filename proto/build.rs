//! Generates the node protocol's Rust code from `proto/node.proto` (needs `protoc`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/node.proto");
    tonic_prost_build::configure().compile_protos(&["proto/node.proto"], &["proto"])?;
    Ok(())
}

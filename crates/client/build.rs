//! Generates the client side of `twinshop.payment.v1.Payments` from
//! `proto/` with protox (a pure-Rust protobuf compiler: no `protoc` binary)
//! and tonic-prost-build.
//!
//! Why the client generates its own code rather than using the
//! workspace's contracts crate: the client is black-box, it may know the
//! language-neutral contract (the `.proto` file) but no crate of the
//! implementation. Only the client stubs are generated; health checks use
//! tonic-health's ready-made client.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = proto_root.join("twinshop/payment/v1/payments.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_root])?;
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(descriptors)?;
    Ok(())
}

//! Compiles `proto/` with protox (pure Rust: no `protoc` binary needed).
//!
//! - twinshop's own contracts: client and server code, and the descriptor
//!   set the services serve through gRPC reflection;
//! - etcd's v3 API (`proto/etcd/`, vendored by `scripts/vendor-etcd-proto`):
//!   client code only, and only for the calls the service registry makes
//!   (`twinshop_platform::discovery::etcd`). Kept out of the reflection
//!   descriptor set: no twinshop process serves it.

use std::{env, fs, path::PathBuf};

/// The etcd calls the registry uses, by service.
const ETCD_CALLS: &[(&str, &[&str])] =
    &[("KV", &["Range", "Put"]), ("Watch", &["Watch"]), ("Lease", &["LeaseGrant", "LeaseRevoke", "LeaseKeepAlive"])];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let files = [proto_root.join("twinshop/payment/v1/payments.proto")];
    let fds = protox::compile(&files, [&proto_root])?;
    fs::write(out.join("descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().compile_fds(fds)?;

    let etcd = [proto_root.join("etcd/etcdserver/etcdserverpb/rpc.proto")];
    let mut fds = protox::compile(&etcd, [&proto_root])?;
    for file in &mut fds.file {
        for service in &mut file.service {
            let keep = ETCD_CALLS.iter().find(|(s, _)| Some(*s) == service.name.as_deref()).map_or(&[][..], |c| c.1);
            service.method.retain(|m| m.name.as_deref().is_some_and(|n| keep.contains(&n)));
        }
        file.service.retain(|s| !s.method.is_empty());
    }
    tonic_prost_build::configure().build_server(false).compile_fds(fds)?;
    Ok(())
}

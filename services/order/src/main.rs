//! `order-service`: the order area alone, reaching the user and payment
//! areas over the network.

// `build_info!()` reads TWINSHOP_COMMIT and TWINSHOP_RELEASE here, in the
// binary's own crate: another release recompiles this file only.
fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_order::SERVICE, twinshop_platform::build_info!())
}

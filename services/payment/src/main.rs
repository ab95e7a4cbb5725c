//! `payment-service`: the payment area alone, serving Charge/Refund over
//! gRPC.

// `build_info!()` reads TWINSHOP_COMMIT and TWINSHOP_RELEASE here, in the
// binary's own crate: another release recompiles this file only.
fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_payment::SERVICE, twinshop_platform::build_info!())
}

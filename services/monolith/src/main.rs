//! `monolith`: the user, payment and order areas in one process.

// `build_info!()` reads TWINSHOP_COMMIT and TWINSHOP_RELEASE here, in the
// binary's own crate: another release recompiles this file only.
fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_monolith::MONOLITH, twinshop_platform::build_info!())
}

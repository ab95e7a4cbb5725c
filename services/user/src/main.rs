//! `user-service`: the user area alone, serving the user lookup over HTTP.

// `build_info!()` reads TWINSHOP_COMMIT and TWINSHOP_RELEASE here, in the
// binary's own crate: another release recompiles this file only.
fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_user::SERVICE, twinshop_platform::build_info!())
}

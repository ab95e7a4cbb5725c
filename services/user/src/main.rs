//! `user-service`: the user area alone, serving the user lookup over HTTP.

fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_user::SERVICE)
}

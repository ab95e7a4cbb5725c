//! `monolith`: the user, payment and order areas in one process.

fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_monolith::MONOLITH)
}

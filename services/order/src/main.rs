//! `order-service`: the order area alone, reaching the user and payment
//! areas over the network.

fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_order::SERVICE)
}

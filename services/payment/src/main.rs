//! `payment-service`: the payment area alone, serving Charge/Refund over
//! gRPC.

fn main() -> std::process::ExitCode {
    twinshop_platform::host::main(&twinshop_payment::SERVICE)
}

//! `loadtest-floor`: the bare tonic and axum servers of
//! [`twinshop_loadtest::floor`], as a process of its own so its CPU time is
//! its own. `loadtest compare` starts it; it prints where it listens as one
//! JSON line, then serves until its stdin closes (or SIGTERM/SIGINT).

use std::process::ExitCode;

use clap::Parser;

/// The floor of the internal calls: frameworks only, no layers, no work.
#[derive(Debug, Parser)]
#[command(name = "loadtest-floor", version)]
struct Args {
    /// Redis for the lookup floor's cache entries.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The address both servers bind to (free ports).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

/// Until stdin reaches its end (the parent closed it or died), or a signal.
async fn stopped() {
    use tokio::io::AsyncReadExt as _;
    let stdin = async {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = stdin => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // As every service builds its runtime (twinshop_platform::host::main).
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadtest-floor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(twinshop_loadtest::floor::serve(
        args.bind,
        &args.redis,
        |addrs| {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::json!(addrs));
            }
        },
        stopped(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

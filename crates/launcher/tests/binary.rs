//! The `twinshop-launch` binary as `make run` uses it: up on the given
//! port, the URL printed, and Ctrl-C (SIGINT) drains everything.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[tokio::test]
async fn the_binary_prints_the_url_and_drains_on_ctrl_c() {
    twinshop_launcher::prereq::ensure("nginx", "nginx").expect("nginx");
    let port = twinshop_launcher::ports::free_port().expect("port");
    let logs = common::log_dir("binary");
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinshop-launch"))
        .args(["--bin-dir", &common::bin_dir().display().to_string(), "--port", &port.to_string()])
        .args(["--fresh-databases", "--monolith", "--no-check", "--drain-secs", "10"])
        .args(["--log-dir", &logs.display().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the launcher");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Its release identity first, then the URL once everything is ready.
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.starts_with("twinshop-launch ") && first.ends_with(" starting"), "{first}");
    let up = lines.next().expect("a line").expect("utf-8");
    assert_eq!(up, format!("twinshop (monolith) is up: http://127.0.0.1:{port}  (Ctrl-C stops everything)"));
    let res = common::client().get(format!("http://127.0.0.1:{port}/v1/products")).send().await.expect("get");
    assert_eq!(res.status(), 200);

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let started = Instant::now();
    let status = child.wait().expect("wait");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{status}: {rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("stopped."), "{rest:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(std::fs::read_to_string(logs.join("monolith-1.log")).is_ok_and(|l| l.contains("all tasks drained")));
}

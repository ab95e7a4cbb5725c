//! A reload while a request hangs on its upstream: the old worker may
//! finish it for `worker_shutdown_timeout`, then nginx closes what it
//! holds, and the reload returns instead of waiting as long as the
//! request would (the rollout lab once waited 60 s in CI).

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use twinshop_launcher::{
    Events, LogTarget, RestartPolicy,
    nginx::Nginx,
    ports::free_port,
    prereq,
    processes::{Readiness, children},
};

/// An upstream that accepts connections and never answers.
async fn hanging_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_request_hanging_in_the_old_worker_ends_when_the_drain_bound_does() {
    prereq::ensure("nginx", "nginx").expect("nginx");
    let (upstream, accepted) = hanging_upstream().await;
    let port = free_port().expect("port");
    let render = move |prefix: &std::path::Path| {
        let p = prefix.display();
        Ok(vec![(
            "nginx.conf",
            format!(
                "pid {p}/nginx.pid;\nerror_log stderr warn;\nworker_processes 1;\nworker_shutdown_timeout 1s;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {p}/client_body;\n  proxy_temp_path {p}/proxy;\n\
                 \x20 fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
                 \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n\
                 \x20     proxy_read_timeout 300s;\n    }}\n  }}\n}}\n"
            ),
        )])
    };
    let nginx = Nginx::start(
        "hang",
        &render,
        Readiness::Tcp(format!("127.0.0.1:{port}")),
        Events::new(),
        LogTarget::Discard,
        RestartPolicy::Never,
        Duration::from_secs(10),
    )
    .await
    .expect("nginx starts");
    let master = nginx.supervisor().pid().expect("master");

    let request = tokio::spawn(async move {
        let client = reqwest::Client::new();
        client.get(format!("http://127.0.0.1:{port}/slow")).timeout(Duration::from_secs(120)).send().await
    });
    common::eventually("nginx passes the request on", Duration::from_secs(10), || async {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    let old_workers = children(master);
    assert!(!old_workers.is_empty(), "the worker holding the request");

    let files = render(nginx.prefix()).expect("render");
    let drained = nginx.reload(&files).await.expect("the reload returns once the old worker is gone");
    assert!(old_workers.iter().all(|&pid| !twinshop_launcher::processes::is_alive(pid)), "old workers gone");
    assert!(
        drained >= Duration::from_secs(1) && drained < Duration::from_secs(10),
        "the old worker kept the hanging request for its bound (1 s), then exited: {drained:?}"
    );
    let answer = request.await.expect("request task");
    // nginx closed the client's connection (or answered 502): the request
    // ended with the old worker, not by the client's own 120 s timeout.
    match &answer {
        Ok(response) => assert!(response.status().is_server_error(), "{answer:?}"),
        Err(e) => assert!(!e.is_timeout(), "{e:?}"),
    }
    nginx.stop(Duration::from_secs(2)).await.expect("stop");
}

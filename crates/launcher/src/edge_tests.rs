//! Unit tests of the edge's rendering (the running edge is tested in `tests/`).

use super::*;
use crate::plan::workspace_root;

fn config(build: Build, internal: Vec<InternalBalancer>) -> EdgeConfig {
    EdgeConfig {
        build,
        port: 20123,
        all_addresses: false,
        templates: workspace_root().join("deploy/edge"),
        shop: PathBuf::from("/repo/web/shop"),
        jaeger_ui: "http://localhost:16686".into(),
        internal,
    }
}

fn member(public: &str, internal: &str, in_edge: bool) -> Member {
    Member { public: public.into(), internal: internal.into(), in_edge }
}

#[test]
fn replicas_become_several_server_lines_of_one_upstream() {
    let members = BTreeMap::from([
        (ProcessId::new(Service::User, 1), member("127.0.0.1:1", "127.0.0.1:11", true)),
        (ProcessId::new(Service::Payment, 1), member("127.0.0.1:2", "127.0.0.1:12", true)),
        (ProcessId::new(Service::Order, 1), member("127.0.0.1:3", "127.0.0.1:13", true)),
        (ProcessId::new(Service::Order, 2), member("127.0.0.1:4", "127.0.0.1:14", true)),
    ]);
    let (conf, main) = render(&config(Build::Microservices, vec![]), Path::new("/p"), &members).expect("render");
    assert!(conf.contains("upstream twinshop_order {\n    server 127.0.0.1:3;\n    server 127.0.0.1:4;\n"), "{conf}");
    assert!(conf.contains("upstream twinshop_user {\n    server 127.0.0.1:1;\n"), "{conf}");
    assert!(conf.contains("listen 127.0.0.1:20123;"));
    assert!(main.contains("client_body_temp_path /p/client_body;"), "{main}");
    assert!(!conf.contains("${"), "every variable filled in");
    assert!(conf.contains("alias /repo/web/shop/;"), "the storefront's files:\n{conf}");
    assert!(conf.contains(r#"return 200 '{"jaeger_url":"http://localhost:16686"}';"#), "its settings:\n{conf}");
    assert!(conf.contains("#   127.0.0.1:3;     server 127.0.0.1:4"), "comments stay comments:\n{conf}");
}

#[test]
fn a_replica_out_of_the_edge_is_not_rendered_and_an_empty_upstream_is_down() {
    let members = BTreeMap::from([
        (ProcessId::new(Service::Monolith, 1), member("127.0.0.1:1", "127.0.0.1:11", false)),
        (ProcessId::new(Service::Monolith, 2), member("127.0.0.1:2", "127.0.0.1:12", true)),
    ]);
    let (conf, _) = render(&config(Build::Monolith, vec![]), Path::new("/p"), &members).expect("render");
    assert_eq!(conf.matches("server 127.0.0.1:2;").count(), 3, "every route to the monolith:\n{conf}");
    assert!(!conf.contains("127.0.0.1:1;"));
    assert_eq!(upstream_value(&[]), "127.0.0.1:9 down");
}

#[test]
fn internal_balancers_use_grpc_for_payment_and_http_for_user() {
    let members = BTreeMap::from([
        (ProcessId::new(Service::Payment, 1), member("127.0.0.1:2", "10.88.1.3:12", true)),
        (ProcessId::new(Service::Payment, 2), member("127.0.0.1:4", "10.88.1.4:12", true)),
        (ProcessId::new(Service::User, 1), member("127.0.0.1:1", "10.88.1.2:11", true)),
    ]);
    let internal = vec![
        InternalBalancer { service: Service::Payment, port: 20001 },
        InternalBalancer { service: Service::User, port: 20002 },
    ];
    let config = config(Build::Microservices, internal);
    let (public, _) = render(&config, Path::new("/p"), &members).expect("render");
    assert!(!public.contains("twinshop_internal"), "the edge itself routes public paths only");
    let conf = render_internal(&config, Path::new("/b"), &members);
    assert!(conf.contains("server 10.88.1.3:12;\n        server 10.88.1.4:12;"), "{conf}");
    assert!(conf.contains("pid /b/nginx.pid;") && conf.contains("client_body_temp_path /b/client_body;"));
    assert!(conf.contains("listen 127.0.0.1:20001 http2;"));
    assert!(conf.contains("grpc_pass grpc://twinshop_internal_payment;"));
    assert!(conf.contains("proxy_pass http://twinshop_internal_user;"));
}

#[test]
fn both_nginx_configurations_bound_how_long_an_old_worker_may_drain() {
    let directive = format!("\nworker_shutdown_timeout {}s;\n", crate::nginx::WORKER_SHUTDOWN_TIMEOUT.as_secs());
    let members = BTreeMap::from([(ProcessId::new(Service::Payment, 1), member("127.0.0.1:2", "10.88.1.3:12", true))]);
    let config = config(Build::Microservices, vec![InternalBalancer { service: Service::Payment, port: 20001 }]);
    let (_, main) = render(&config, Path::new("/p"), &members).expect("render");
    assert!(main.contains(&directive), "the edge's main configuration:\n{main}");
    let internal = render_internal(&config, Path::new("/b"), &members);
    assert!(internal.contains(&directive), "the internal balancer's:\n{internal}");
}

#[test]
fn the_storefront_is_served_from_a_world_readable_copy_when_the_workers_are_nobody() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("twinshop-edge-copy-{}", std::process::id()));
    let (shop, prefix) = (dir.join("private/web/shop"), dir.join("prefix"));
    std::fs::create_dir_all(shop.join("img")).expect("shop");
    std::fs::create_dir_all(&prefix).expect("prefix");
    std::fs::write(shop.join("index.html"), "<main></main>").expect("index");
    std::fs::write(shop.join("img/logo.svg"), "<svg/>").expect("logo");
    // A checkout in a private home: only its owner may enter.
    std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let members = BTreeMap::new();
    let files = render_public(&EdgeConfig { shop: shop.clone(), ..config(Build::Monolith, vec![]) }, &prefix, &members)
        .expect("render");
    let conf = &files[0].1;
    if rustix::process::geteuid().is_root() {
        let copy = prefix.join("shop");
        assert!(conf.contains(&format!("alias {}/;", copy.display())), "{conf}");
        assert_eq!(std::fs::read_to_string(copy.join("img/logo.svg")).expect("copied"), "<svg/>");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&copy), mode(&copy.join("img")), mode(&copy.join("index.html"))), (0o755, 0o755, 0o644));
    } else {
        assert!(conf.contains(&format!("alias {}/;", shop.display())), "{conf}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

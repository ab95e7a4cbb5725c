//! The edge's own answers, from the routing template every deployment uses
//! (`deploy/edge/twinshop.conf.template`), with the real nginx in front of a
//! stand-in upstream that answers 200 to anything.
//!
//! nginx refuses TRACE and CONNECT itself, before it chooses a location, so
//! the services never see them: the template has to give the contract's
//! answers (a documented route with an undocumented method is 405
//! `method_not_allowed` with `Allow`; an undocumented route is 404
//! `not_found`). The template lists the documented routes and their methods
//! for that; a test holds the list to `openapi/twinshop.yaml`.
//!
//! Needs nginx installed (CI installs it); without it the test fails with a
//! message saying so.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use twinshop_deploy_tests::repo_root;

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: `sudo scripts/install-services` (or apt-get install nginx) provides it")
}

fn template(name: &str) -> String {
    let path = repo_root().join("deploy/edge").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A stand-in for every service: answers each request with 200 and a JSON
/// body saying which method and path it got.
fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn serve(conn: TcpStream) {
    let mut out = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let json = format!(r#"{{"upstream":true,"method":"{method}","path":"{path}"}}"#);
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", json.len());
        if out.write_all(head.as_bytes()).and_then(|()| out.write_all(json.as_bytes())).is_err() {
            return;
        }
    }
}

/// The Jaeger UI the test edge names to the storefront.
const JAEGER_UI_URL: &str = "http://jaeger.example:16686";

/// nginx from the templates, routing every prefix to `upstream`; stopped on drop.
struct Edge {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Edge {
    fn start(upstream: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let prefix = std::env::temp_dir().join(format!("twinshop-deploy-edge-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&prefix).expect("prefix");
        // As root, nginx's workers run as `nobody`: the prefix must be theirs to read.
        std::fs::set_permissions(&prefix, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        // Where the workers can read it: a checkout in /root is not theirs.
        let checkout = repo_root().join("web/shop");
        let shop =
            twinshop_launcher::edge::readable_copy(&checkout, &prefix).expect("the storefront").unwrap_or(checkout);
        let vars = [
            ("EDGE_PORT", format!("127.0.0.1:{port}")),
            ("USER_UPSTREAM", upstream.to_owned()),
            ("PAYMENT_UPSTREAM", upstream.to_owned()),
            ("ORDER_UPSTREAM", upstream.to_owned()),
            ("EDGE_PREFIX", prefix.display().to_string()),
            ("SHOP_ROOT", shop.display().to_string()),
            ("JAEGER_UI_URL", JAEGER_UI_URL.to_owned()),
        ];
        let render = |text: String| vars.iter().fold(text, |acc, (k, v)| acc.replace(&format!("${{{k}}}"), v));
        std::fs::write(prefix.join("twinshop.conf"), render(template("twinshop.conf.template"))).expect("write");
        std::fs::write(prefix.join("nginx.conf"), render(template("nginx-local.conf.template"))).expect("write");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let edge = Self { child, port, prefix };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the edge did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        edge
    }

    /// Sends one request and returns the whole answer.
    fn send(&self, method: &str, path: &str) -> Answer {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        write!(conn, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut raw = String::new();
        conn.read_to_string(&mut raw).expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let text = body.to_owned();
        let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        Answer { status, headers, body, text }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: serde_json::Value,
    /// The body as sent.
    text: String,
}

impl Answer {
    fn assert_problem(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert_eq!(self.headers.get("content-type").map(String::as_str), Some("application/problem+json"), "{what}");
        assert_eq!(self.body["code"], code, "{what}: {self:?}");
        assert_eq!(self.body["status"], status, "{what}: {self:?}");
    }
}

/// The template's `map $uri $twinshop_allow`: (route regex, methods).
fn allow_map() -> Vec<(String, BTreeSet<String>)> {
    let text = template("twinshop.conf.template");
    let start = text.find("map $uri $twinshop_allow {").expect("the template maps documented routes to Allow");
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "}")
        .filter_map(|l| {
            let (regex, methods) = l.trim().trim_end_matches(';').split_once(char::is_whitespace)?;
            let regex = regex.strip_prefix('~')?;
            let methods = methods.trim().trim_matches('"').split(',').map(str::to_owned).collect();
            Some((regex.to_owned(), methods))
        })
        .collect()
}

/// `/v1/orders/{id}/cancel` → `/v1/orders/x/cancel`: a path the route serves.
fn sample(template: &str) -> String {
    template.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/")
}

/// The document's paths and the methods each serves (GET implies HEAD).
fn documented_routes() -> BTreeMap<String, BTreeSet<String>> {
    let path = repo_root().join("openapi/twinshop.yaml");
    let doc: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&path).expect("read the document")).expect("yaml");
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(route, item)| {
            let mut methods: BTreeSet<String> = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch", "options", "head", "trace"].contains(&k.as_str()))
                .map(|k| k.to_ascii_uppercase())
                .collect();
            if methods.contains("GET") {
                methods.insert("HEAD".to_owned());
            }
            (route.clone(), methods)
        })
        .collect()
}

#[test]
fn the_edges_route_list_is_the_documents() {
    let map = allow_map();
    for (route, methods) in documented_routes() {
        let path = sample(&route);
        let entries: Vec<_> = map.iter().filter(|(regex, _)| matches_anchored(regex, &path)).collect();
        assert_eq!(entries.len(), 1, "{route} ({path}) needs exactly one line in the template's Allow map");
        assert_eq!(entries[0].1, methods, "the Allow methods of {route}");
    }
    assert_eq!(map.len(), documented_routes().len(), "every line of the Allow map is a documented route");
}

/// The map's regexes use only `^`, `$`, literals and `[^/]+`: match them by hand.
fn matches_anchored(regex: &str, path: &str) -> bool {
    let body = regex.strip_prefix('^').and_then(|r| r.strip_suffix('$')).expect("anchored");
    let body = body.replace("[^/]+", "*");
    let pattern: Vec<&str> = body.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    pattern.len() == segments.len()
        && pattern.iter().zip(&segments).all(|(p, s)| if *p == "*" { !s.is_empty() } else { p == s })
}

#[test]
fn methods_nginx_refuses_itself_are_405_on_documented_routes_and_404_elsewhere() {
    let edge = Edge::start(&upstream());
    for (route, methods) in documented_routes() {
        let path = sample(&route);
        for method in ["TRACE", "CONNECT"] {
            let answer = edge.send(method, &path);
            answer.assert_problem(405, "method_not_allowed", &format!("{method} {path}"));
            let allow: BTreeSet<String> =
                answer.headers.get("allow").expect("Allow on a 405").split(',').map(|m| m.trim().to_owned()).collect();
            assert_eq!(allow, methods, "Allow of {method} {path}");
        }
        // Everything else on a routed path reaches the service.
        let answer = edge.send("GET", &path);
        assert_eq!((answer.status, &answer.body["upstream"]), (200, &serde_json::json!(true)), "GET {path}");
    }
    // Undocumented routes: 404, whether nginx refuses the method itself or
    // nothing routes the path (a routed prefix's unknown paths are the
    // service's to answer).
    for path in ["/", "/v1/unknown", "/v1/usersX", "/readyz", "/v1/users/me/x", "/v1/orders/x/cancel/y"] {
        for method in ["TRACE", "CONNECT"] {
            edge.send(method, path).assert_problem(404, "not_found", &format!("{method} {path}"));
        }
    }
    for path in ["/", "/v1/unknown", "/v1/usersX", "/readyz"] {
        edge.send("GET", path).assert_problem(404, "not_found", &format!("GET {path}"));
    }
}

#[test]
fn the_edge_serves_the_storefront_under_shop_and_nothing_at_the_root() {
    let edge = Edge::start(&upstream());
    let page = edge.send("GET", "/shop/");
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.headers.get("content-type").map(String::as_str), Some("text/html; charset=utf-8"));
    assert!(page.text.contains(r#"<script type="module" src="app.js">"#), "the storefront's page: {}", page.text);
    let csp = page.headers.get("content-security-policy").expect("a Content-Security-Policy");
    assert!(csp.contains("default-src 'self'"), "nothing from another origin: {csp}");
    assert_eq!(page.headers.get("x-content-type-options").map(String::as_str), Some("nosniff"));

    // Module scripts must be JavaScript, or the browser refuses them.
    for file in ["app.js", "api.js", "ui.js"] {
        let script = edge.send("GET", &format!("/shop/{file}"));
        assert_eq!(script.status, 200, "{file}");
        assert_eq!(
            script.headers.get("content-type").map(String::as_str),
            Some("text/javascript; charset=utf-8"),
            "{file}"
        );
    }
    let css = edge.send("GET", "/shop/style.css");
    assert_eq!(css.headers.get("content-type").map(String::as_str), Some("text/css; charset=utf-8"));

    let config = edge.send("GET", "/shop/config.json");
    assert_eq!(config.status, 200);
    assert_eq!(config.body, serde_json::json!({"jaeger_url": JAEGER_UI_URL}), "the edge's JAEGER_UI_URL");

    let bare = edge.send("GET", "/shop");
    assert_eq!((bare.status, bare.headers.get("location").map(String::as_str)), (301, Some("/shop/")), "{bare:?}");

    // What is not a file of the storefront is the edge's 404, as anywhere.
    // A file extension gives no media type to the edge's own answers.
    for path in [
        "/shop/missing.js",
        "/shop/..data/app.js",
        "/shop/.hidden",
        "/shop/../Cargo.toml",
        "/",
        "/index.html",
        "/favicon.ico",
    ] {
        edge.send("GET", path).assert_problem(404, "not_found", &format!("GET {path}"));
    }
    // Static files take GET and HEAD only; anything else finds no route.
    edge.send("POST", "/shop/").assert_problem(404, "not_found", "POST /shop/");
}

//! The real nginx edge, rendered from `deploy/edge` (the template every
//! deployment uses) in front of whatever upstreams a test gives it.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use twinshop_testkit::{eventually, unique_name};

fn template(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/edge").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `${VAR}` → value, as envsubst does.
fn render(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(text.to_owned(), |acc, (k, v)| acc.replace(&format!("${{{k}}}"), v))
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: `sudo scripts/install-services` (or apt-get install nginx) provides it")
}

/// A running edge; stopped (gracefully, so its workers go too) on drop.
#[derive(Debug)]
pub struct Edge {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Edge {
    /// Starts nginx routing users/sessions → `user`, wallet/payments →
    /// `payment`, products/orders → `order` (each `host:port`), and waits
    /// until it answers.
    pub async fn start(user: &str, payment: &str, order: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name("edge"));
        std::fs::create_dir_all(&dir).expect("edge dir");
        let port = crate::free_port();
        let vars = [
            ("EDGE_PORT", format!("127.0.0.1:{port}")),
            ("USER_UPSTREAM", user.to_owned()),
            ("PAYMENT_UPSTREAM", payment.to_owned()),
            ("ORDER_UPSTREAM", order.to_owned()),
            ("EDGE_PREFIX", dir.display().to_string()),
        ];
        std::fs::write(dir.join("twinshop.conf"), render(&template("twinshop.conf.template"), &vars)).expect("write");
        std::fs::write(dir.join("nginx.conf"), render(&template("nginx-local.conf.template"), &vars)).expect("write");
        let child = Command::new(nginx_binary())
            .args([
                "-p",
                &dir.display().to_string(),
                "-c",
                &dir.join("nginx.conf").display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let edge = Self { child, port, dir };
        let client = reqwest::Client::new();
        let url = format!("{}/v1/nothing", edge.url());
        eventually("the edge answers", Duration::from_secs(10), || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.ok().map(|_| ()) }
        })
        .await;
        edge
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

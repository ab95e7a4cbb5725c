//! Every panel of the committed Grafana dashboard shows data, for each
//! build. Grafana cannot run here, but its queries can: each build is
//! started by the launcher, Debian's Prometheus scrapes it with the
//! committed `deploy/prometheus/local.yml` (as `scripts/prometheus` does),
//! a little traffic runs (registrations, top-ups, orders placed and
//! cancelled, a few 4xx answers), and every PromQL target of every panel of
//! `deploy/grafana/dashboards/twinshop.json` is sent to Prometheus with the
//! template variables put in as Grafana would. A target with no finite
//! value fails the test, naming the panel. The build and service
//! variables must list the build and its services.
//!
//! So that the check can fail, each run also sends a canary panel whose
//! metric no process exports and asserts it is reported empty.
//!
//! Each run writes what every panel showed to `target/dashboards/<build>/`
//! (`report.md`, `report.html`, one SVG chart per time-series panel, drawn
//! from the same queries by `loadtest::report::svg`); `docs/dashboards/`
//! holds a committed run.
//!
//! Needs the debug binaries (see the crate docs) and Debian's `prometheus`
//! (`scripts/prometheus --install`).

#[path = "dashboards/panels.rs"]
mod panels;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use panels::{Seen, report};
use twinshop_client::{Address, Client, NewUser, OrderItem};
use twinshop_e2e::{
    Shop,
    dashboard::{Dashboard, Panel, Target, expand},
    plan,
    prometheus::Prometheus,
};
use twinshop_launcher::{Build, plan::workspace_root};
use twinshop_testkit::unique_name;

fn dashboard() -> Dashboard {
    Dashboard::load(&workspace_root().join("deploy/grafana/dashboards/twinshop.json")).expect("the committed dashboard")
}

/// Grafana's values for `build` with every other variable on "All", and
/// its built-in intervals: `$__rate_interval` is four scrape intervals
/// (what Grafana uses with the data source's `timeInterval` of 5 s),
/// `$__range` the time Prometheus has been scraping.
fn values(
    d: &Dashboard,
    build: Build,
    scrape: Duration,
    range: Duration,
) -> std::collections::BTreeMap<String, String> {
    let rate = format!("{}s", 4 * scrape.as_secs());
    let range = format!("{}s", range.as_secs().max(1));
    d.values(&[
        ("build", build.name()),
        ("__rate_interval", &rate),
        ("__interval", &format!("{}s", scrape.as_secs())),
        ("__range", &range),
    ])
}

#[test]
fn every_query_of_the_dashboard_names_only_known_variables() {
    let d = dashboard();
    assert!(d.panels.len() >= 15, "{} panels", d.panels.len());
    for build in [Build::Microservices, Build::Monolith] {
        let values = values(&d, build, Duration::from_secs(5), Duration::from_secs(60));
        for panel in &d.panels {
            for target in &panel.targets {
                let expr = expand(&target.expr, &values).unwrap_or_else(|e| panic!("{}: {e}", panel.title));
                assert!(expr.contains(r#"job="twinshop""#), "{}: every query is of our processes: {expr}", panel.title);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_of_the_dashboard_shows_data_for_the_microservices() {
    run(Build::Microservices).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_of_the_dashboard_shows_data_for_the_monolith() {
    run(Build::Monolith).await;
}

async fn run(build: Build) {
    let d = dashboard();
    let scrape = Prometheus::scrape_interval().expect("local.yml's scrape interval");
    let shop = Shop::start(plan(build, &format!("dashboards-{}", build.name()))).await;
    let processes = shop.system().processes().len();
    let prometheus = Prometheus::start(shop.system(), build.name()).await.expect("prometheus");
    let started = (Instant::now(), SystemTime::now());
    prometheus.wait_for_targets("twinshop", processes, Duration::from_secs(30)).await.expect("every process scraped");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let traffic = tokio::spawn(drive(shop.client().clone(), stop.clone(), sent.clone()));

    // Every panel, until all show data or a minute has passed (rates need
    // their window full of samples, gauges are refreshed every few seconds,
    // a first event may still be on its way).
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let values = values(&d, build, scrape, started.0.elapsed());
        let seen = panels::evaluate(&prometheus, &d.panels, &values).await;
        if seen.iter().all(Seen::has_data) || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(scrape).await;
    };
    let values = values(&d, build, scrape, started.0.elapsed());
    let variables = panels::variables(&prometheus, &d, &values, build).await;
    let canary = Panel {
        title: "canary: a metric no process exports".into(),
        row: String::new(),
        kind: "timeseries".into(),
        unit: String::new(),
        targets: vec![Target {
            ref_id: "A".into(),
            expr: r#"sum(rate(twinshop_no_such_metric_total{job="twinshop", build="$build"}[$__rate_interval]))"#
                .into(),
            legend: "__auto".into(),
            instant: false,
        }],
    };
    let canary_seen = panels::evaluate(&prometheus, std::slice::from_ref(&canary), &values).await;

    let files =
        report(&prometheus, &d, &seen, &variables, build, &values, started.1, scrape, sent.load(Ordering::Relaxed))
            .await
            .expect("the report");
    stop.store(true, Ordering::Relaxed);
    let requests = traffic.await.expect("the traffic task");
    eprintln!("dashboards ({}): {requests} requests; report in {}", build.name(), files.display());

    let empty: Vec<String> = seen.iter().filter(|s| !s.has_data()).map(Seen::describe).collect();
    assert!(empty.is_empty(), "{} panel target(s) without data:\n{}", empty.len(), empty.join("\n"));
    assert!(variables.iter().all(|v| v.ok), "variables: {variables:#?}");
    assert!(
        canary_seen.len() == 1 && !canary_seen[0].has_data(),
        "the check must report a panel without data: {canary_seen:?}"
    );
    prometheus.stop().await;
    shop.stop().await;
}

/// A little of everything the dashboard shows, until `stop`: a new user
/// (registration, login), a top-up, the catalog, an order placed and
/// cancelled (events to relay and consume), one the wallet cannot pay,
/// one of an unknown product and a wrong password (4xx), the profile,
/// wallet, ledger and orders. Returns how many requests it sent.
async fn drive(client: Client, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> u64 {
    let count = |n: u64| sent.fetch_add(n, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        let new = NewUser {
            email: format!("{}@example.com", unique_name("dash")),
            password: "correct horse battery".into(),
            name: "Dashboard Buyer".into(),
            address: Some(Address {
                line1: "1 Test St".into(),
                city: "Testville".into(),
                postal_code: "12345".into(),
                country: "DE".into(),
            }),
        };
        let Ok((_, user)) = client.sign_up(&new).await else {
            count(2);
            continue;
        };
        count(2);
        let _ = user.top_up(5_000, Some(&unique_name("top-up"))).await;
        let _ = client.products().await;
        let _ = client.login(&new.email, "not the password").await;
        count(3);
        for _ in 0..3 {
            let coffee = [OrderItem { product_id: "sku-coffee".into(), quantity: 1 }];
            if let Ok(order) = user.place_order(&coffee, Some(&unique_name("order"))).await {
                let _ = user.cancel(order.value.id).await;
                count(1);
            }
            let too_much = [OrderItem { product_id: "sku-coffee".into(), quantity: 100 }];
            let _ = user.place_order(&too_much, Some(&unique_name("order"))).await;
            let unknown = [OrderItem { product_id: "sku-none".into(), quantity: 1 }];
            let _ = user.place_order(&unknown, Some(&unique_name("order"))).await;
            let _ = user.me().await;
            let _ = user.wallet().await;
            let _ = user.payments(None, None).await;
            let _ = user.orders(None, None).await;
            count(7);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    sent.load(Ordering::Relaxed)
}

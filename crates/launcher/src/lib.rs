//! The one way to start twinshop as local processes: `make run`, the
//! end-to-end tests, `loadtest compare` and the labs all go through here,
//! so a lab that kills, pauses, partitions or limits a process uses the same
//! mechanism a developer's `make run` does.
//!
//! A [`Plan`] says what to run (which build, how many replicas of each
//! service, which binaries, which backing services, extra environment,
//! namespaces, cgroup limits, restart policy, where logs go);
//! [`System::start`] turns it into running processes behind a real nginx
//! edge and hands back a [`System`] to control them at run time: signals,
//! graceful stops, restarts, replacement by another binary, taking a replica
//! out of the edge and putting it back, rolling replacement, and network
//! partitions between processes. Everything it creates (databases, broker
//! queues, namespaces, iptables rules, cgroups, nginx) is removed by
//! [`System::stop`], and leftovers of a crashed run by the next start.
//!
//! # A lab's use
//!
//! ```no_run
//! use std::time::Duration;
//! use twinshop_launcher::{Limits, Plan, ProcessId, RestartPolicy, Service, System};
//!
//! # async fn lab() -> anyhow::Result<()> {
//! let plan = Plan::microservices()
//!     .replicas(Service::Order, 2)
//!     .replicas(Service::Payment, 2)
//!     .namespaces(true)
//!     .limits(Service::Order, Limits::cpu(0.25))
//!     .restart(RestartPolicy::on_exit())
//!     .env(Service::Order, "ORDER_CONSISTENCY_MODE", "available");
//! let system = System::start(plan).await?;
//! let base_url = system.url().expect("the plan has an edge"); // drive the workload here
//! let mut events = system.events().subscribe(); // started, ready, exited, OOM-killed, restarts...
//!
//! let order1 = ProcessId::new(Service::Order, 1);
//! system.kill(order1).await?; // SIGKILL; the restart policy brings it back
//! system.supervisor(order1)?.wait_ready(Duration::from_secs(30)).await?;
//!
//! system.partition_services(Service::Order, Service::Payment).await?; // connections hang
//! tokio::time::sleep(Duration::from_secs(10)).await;
//! system.heal_services(Service::Order, Service::Payment).await?;
//!
//! let rollout = system.rolling_replace(Service::Payment, None).await?; // 0 failed requests
//! println!("{base_url}: payment rolled in {:?}", rollout.took);
//! let report = system.stop().await?; // drains; drops databases, queues, namespaces, cgroups
//! # let _ = (report, events.try_recv());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`plan`]: what to run; pure data with a builder.
//! - [`ports`]: free ports below the ephemeral range, checked free.
//! - [`databases`]: creating, migrating and dropping each service's database.
//! - [`broker`]: deleting a run's RabbitMQ namespace at the end.
//! - [`events`]: what happened to which process, when (for labs' charts).
//! - [`logs`]: interleaved, prefixed logs on stdout or one file per process.
//! - [`processes`]: spawning one process (in its namespace and cgroup), signals, `/proc` figures.
//! - [`supervisor`]: one task per process: restart policy, exit reasons, control.
//! - [`cgroups`]: memory and CPU limits, cgroup v1 or v2, OOM detection.
//! - [`netns`]: a bridge, one network namespace per process, cuts between two.
//! - [`edge`]: the edge's routes and upstreams with replicas, and the internal balancer's.
//! - [`nginx`]: one nginx instance: prefix, reloads that wait for in-flight requests, kill.
//! - [`readiness`]: waiting for `/readyz` and for the edge.
//! - [`prometheus`]: the processes as Prometheus's file-based service discovery.
//! - [`prereq`]: finding (and, for the binary, installing) nginx and iptables.
//! - [`system`]: the running system and its run-time control.
//!
//! It depends on the contracts crate only for the broker topology's names;
//! it never links a service: it starts their binaries, as a user would.

pub mod broker;
pub mod cgroups;
pub mod databases;
pub mod edge;
pub mod events;
pub mod logs;
pub mod netns;
pub mod nginx;
pub mod plan;
pub mod ports;
pub mod prereq;
pub mod processes;
pub mod prometheus;
pub mod readiness;
pub mod supervisor;
pub mod system;

pub use cgroups::Limits;
pub use events::{Event, EventKind, Events, ExitInfo};
pub use logs::LogTarget;
pub use plan::{Build, DatabaseMode, Plan, PortChoice, ProcessId, Service};
pub use supervisor::{Backoff, Phase, ProcessStatus, Respawn, RestartPolicy};
pub use system::{ProcessInfo, RolloutReport, StopReport, System};

//! twinshop's labs: each concept of cloud-native architecture that the
//! project teaches (docs/concepts/README.md), shown by an experiment whose
//! output proves it, or that fails (exit 1) when the demonstration does not
//! happen.
//!
//! Every lab has the same shape (docs/design.md §8): it starts what it needs
//! itself through the one launcher (`twinshop-launcher`: fresh databases,
//! free ports, replicas, namespaces, cgroups, faults), drives a workload
//! through the one client (`twinshop-client`), asserts the outcome the
//! concept predicts, and writes a report (Markdown + HTML with SVG charts,
//! through the load tester's report pipeline). `--quick` is the CI variant;
//! a full run's report is committed under `docs/labs/NAME/`.
//!
//! # Layout
//! - [`catalog`]: the labs, by name, with the seed section each shows;
//! - [`common`]: what every lab uses: its arguments, its checks, its report;
//! - [`backing`]: the lab's own PostgreSQL, Redis and RabbitMQ, so killing
//!   them disturbs nothing else on the machine;
//! - [`proxy`]: a TCP proxy that can add latency to a link (this kernel has
//!   no `netem`);
//! - [`manifests`]: the limits the Kubernetes manifests give each process;
//! - [`identity`]: a binary's and a running process's release identity
//!   and config fingerprint;
//! - [`probe`]: steady requests per endpoint group, availability and p99;
//! - one module per lab: [`faults`], [`isolation`], [`cap`], [`scaling`],
//!   [`rollout`], [`twelve_factor`], [`discovery`].

pub mod backing;
pub mod cap;
pub mod catalog;
pub mod common;
pub mod discovery;
pub mod faults;
pub mod identity;
pub mod isolation;
pub mod manifests;
pub mod probe;
pub mod proxy;
pub mod rollout;
pub mod scaling;
pub mod twelve_factor;

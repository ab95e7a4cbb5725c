//! Kubernetes is CP because etcd is: a three-member etcd cluster (Debian's
//! `etcd-server`), each member in its own network namespace, cut apart with
//! iptables DROP as the fault lab cuts links.
//!
//! Two experiments: the leader cut off alone, then a follower cut off
//! alone. Each time the side with two members has (or elects) a leader and
//! keeps accepting writes; the member alone refuses writes and
//! linearizable reads, but still serves serializable (possibly stale)
//! reads; after the heal it catches up. Measured: the election time and
//! how long writes were refused on the majority side.
//!
//! The write sent to the member alone is not acknowledged, but that does
//! not make it refused: a follower forwards it to its leader and keeps it
//! queued, so after the heal it can still commit (and overwrite what the
//! majority wrote meanwhile); an old leader's own uncommitted entry is
//! discarded when it rejoins. A client that timed out does not know which,
//! exactly like the shop's `pending` order: the lab records what became of
//! it.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use serde::Serialize;
use tokio::{process::Child, time::Instant};
use twinshop_launcher::netns::{Namespace, Network};

/// One member: its namespace and process.
#[derive(Debug)]
struct Member {
    ns: Namespace,
    child: Child,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://{}:2379", self.ns.address)
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<Member>,
}

/// What one experiment showed.
#[derive(Debug, Clone, Serialize)]
pub struct Partitioned {
    /// `leader` or `follower`: who was cut off alone.
    pub isolated: &'static str,
    /// The isolated member was the leader: seconds until the other two had a new one.
    pub election_s: Option<f64>,
    /// Seconds from the cut until a write through the majority succeeded.
    pub writes_refused_s: f64,
    pub majority_write: bool,
    /// The member alone: its write not acknowledged (and etcdctl's error),
    /// linearizable read refused, and what its serializable read returned
    /// (the value before the cut).
    pub minority_write_refused: bool,
    pub minority_write_error: String,
    pub minority_linearizable_refused: bool,
    pub minority_serializable: Option<String>,
    /// What the majority held before the heal.
    pub majority_value: String,
    /// Seconds after the heal until all three members' serializable reads
    /// agreed with a linearizable read, and the value they agreed on.
    pub converged_s: Option<f64>,
    pub final_value: Option<String>,
    /// The unacknowledged write to the member alone committed after the heal.
    pub unacknowledged_write_committed: bool,
}

/// `etcdctl` against `endpoints`; `Err` with its message when it fails.
async fn etcdctl(endpoints: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--dial-timeout=1s", "--command-timeout=2s"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running etcdctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// `(member id, leader id)` as `endpoint` sees them.
async fn status(endpoint: &str) -> Option<(u64, u64)> {
    let json = etcdctl(endpoint, &["endpoint", "status", "-w", "json"]).await.ok()?;
    let v: serde_json::Value = serde_json::from_str(&json).ok()?;
    let s = &v[0]["Status"];
    Some((s["header"]["member_id"].as_u64()?, s["leader"].as_u64()?))
}

async fn put(endpoint: &str, key: &str, value: &str) -> bool {
    etcdctl(endpoint, &["put", key, value]).await.is_ok()
}

/// The first line of etcdctl's error: the reason, not its retry log.
fn reason(error: &str) -> String {
    let last = error.lines().last().unwrap_or_default();
    last.strip_prefix("Error: ").unwrap_or(last).to_owned()
}

async fn get(endpoint: &str, key: &str, linearizable: bool) -> Result<Option<String>, String> {
    let consistency = if linearizable { "--consistency=l" } else { "--consistency=s" };
    let out = etcdctl(endpoint, &["get", key, consistency, "--print-value-only"]).await?;
    Ok((!out.is_empty()).then_some(out))
}

impl Cluster {
    /// Three members in new namespaces of `network`, data under `dir`.
    pub async fn start(network: &mut Network, dir: &Path) -> Result<Self> {
        twinshop_launcher::prereq::ensure("etcd", "etcd-server")?;
        twinshop_launcher::prereq::ensure("etcdctl", "etcd-client")?;
        let mut spaces = Vec::new();
        for i in 1..=3 {
            spaces.push(network.add(&format!("etcd{i}")).await?);
        }
        let initial: Vec<String> =
            spaces.iter().enumerate().map(|(i, ns)| format!("m{}=http://{}:2380", i + 1, ns.address)).collect();
        let mut members = Vec::new();
        for (i, ns) in spaces.into_iter().enumerate() {
            let name = format!("m{}", i + 1);
            let data = dir.join(&name);
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            let a = ns.address;
            let child = tokio::process::Command::new("ip")
                .args(["netns", "exec", &ns.name, "etcd", "--name", &name, "--data-dir"])
                .arg(&data)
                .args(["--listen-client-urls", &format!("http://{a}:2379")])
                .args(["--advertise-client-urls", &format!("http://{a}:2379")])
                .args(["--listen-peer-urls", &format!("http://{a}:2380")])
                .args(["--initial-advertise-peer-urls", &format!("http://{a}:2380")])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-token", "twinshop-lab", "--initial-cluster-state", "new"])
                // Pre-vote (etcd 3.5's default, which Kubernetes runs): a member
                // cut off alone does not raise its term, so it rejoins quietly.
                .arg("--pre-vote")
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .context("starting etcd")?;
            members.push(Member { ns, child });
        }
        let cluster = Self { members };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !put(&cluster.all(), "lab/ready", "yes").await {
            ensure!(Instant::now() < deadline, "the etcd cluster did not form within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }

    fn all(&self) -> String {
        self.members.iter().map(Member::endpoint).collect::<Vec<_>>().join(",")
    }

    /// The index of the current leader.
    async fn leader(&self) -> Result<usize> {
        for m in &self.members {
            if let Some((_, leader)) = status(&m.endpoint()).await {
                for (i, other) in self.members.iter().enumerate() {
                    if status(&other.endpoint()).await.is_some_and(|(id, _)| id == leader) {
                        return Ok(i);
                    }
                }
            }
        }
        bail!("no member knows a leader")
    }

    /// Cuts member `alone` from the other two, measures, heals, waits for
    /// it to catch up.
    pub async fn isolate(&self, network: &Network, leader: bool, round: u32) -> Result<Partitioned> {
        let key = format!("lab/value{round}");
        ensure!(put(&self.all(), &key, "before").await, "the initial write failed");
        let leader_i = self.leader().await?;
        let alone = if leader { leader_i } else { (leader_i + 1) % 3 };
        let others: Vec<usize> = (0..3).filter(|i| *i != alone).collect();
        let majority = others.iter().map(|i| self.members[*i].endpoint()).collect::<Vec<_>>().join(",");
        let lonely = self.members[alone].endpoint();
        let old_leader_id = status(&self.members[leader_i].endpoint()).await.map(|s| s.0);
        for i in &others {
            network.cut(&self.members[alone].ns, &self.members[*i].ns).await?;
        }
        let cut = Instant::now();
        // The majority side: a write as soon as it is accepted.
        let mut election_s = None;
        let mut majority_write = false;
        while cut.elapsed() < Duration::from_secs(20) {
            if leader && election_s.is_none() {
                for i in &others {
                    if let Some((_, l)) = status(&self.members[*i].endpoint()).await
                        && l != 0
                        && Some(l) != old_leader_id
                    {
                        election_s = Some(cut.elapsed().as_secs_f64());
                    }
                }
            }
            if put(&majority, &key, "after").await {
                majority_write = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let writes_refused_s = cut.elapsed().as_secs_f64();
        if leader && election_s.is_none() {
            election_s = Some(writes_refused_s);
        }
        // The member alone.
        let minority_write = etcdctl(&lonely, &["put", &key, "lonely"]).await;
        let minority_write_refused = minority_write.is_err();
        let minority_write_error = minority_write.err().map(|e| reason(&e)).unwrap_or_default();
        let minority_linearizable_refused = get(&lonely, &key, true).await.is_err();
        let minority_serializable = get(&lonely, &key, false).await.ok().flatten();
        let majority_value = get(&majority, &key, true).await.ok().flatten().unwrap_or_default();
        for i in &others {
            network.heal(&self.members[alone].ns, &self.members[*i].ns).await?;
        }
        let healed = Instant::now();
        let (mut converged_s, mut final_value) = (None, None);
        while healed.elapsed() < Duration::from_secs(60) {
            if let Some(value) = self.agreed(&key).await {
                converged_s = Some(healed.elapsed().as_secs_f64());
                final_value = Some(value);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let unacknowledged_write_committed = final_value.as_deref() == Some("lonely");
        Ok(Partitioned {
            isolated: if leader { "leader" } else { "follower" },
            election_s: if leader { election_s } else { None },
            writes_refused_s,
            majority_write,
            minority_write_refused,
            minority_write_error,
            minority_linearizable_refused,
            minority_serializable,
            majority_value,
            converged_s,
            final_value,
            unacknowledged_write_committed,
        })
    }

    /// The value of `key` when a linearizable read and every member's
    /// serializable read return the same one.
    async fn agreed(&self, key: &str) -> Option<String> {
        let value = get(&self.all(), key, true).await.ok().flatten()?;
        for m in &self.members {
            if get(&m.endpoint(), key, false).await.ok().flatten().as_deref() != Some(value.as_str()) {
                return None;
            }
        }
        Some(value)
    }

    /// Stops every member.
    pub async fn stop(mut self) {
        for m in &mut self.members {
            let _ = m.child.kill().await;
        }
    }
}

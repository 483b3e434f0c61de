//! Write availability across leader kills (issue 8): a steady writer and a kill loop.
//!
//! * [`Writer`] writes one small config change after another through the admin API (in-process
//!   gRPC, the cluster's CA and admin token), each with a deadline, moving to the next endpoint
//!   when a write fails — what an operator's client does. Every attempt is recorded.
//! * [`kill_leaders`] kills the leader `kills` times (`kill -9`), measuring for each kill the time
//!   until a write *started after the kill* succeeded (write unavailability), then restarts the
//!   killed node and measures the time until its `/readyz` answers 200.
//! * [`elections_during`] counts Raft terms started while the writer runs steadily.
//!
//! Used by `tests/tests/failover.rs` (a few kills, a generous bound) and by the
//! `failover-bench` binary (`scripts/bench-failover.sh`: 20 kills, p50/p99/max).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::ApplyRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::{wait_until, Cluster, SecureCreds};

/// How long one write may take before the writer gives up on it and tries the next endpoint.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// One write attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
}

/// A steady single-client writer (see the module docs).
pub struct Writer {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn channel(url: &str, ca_pem: Option<&str>) -> Result<Channel, String> {
    let mut e = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    if let Some(pem) = ca_pem {
        e = e
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| e.to_string())?;
    }
    e.connect().await.map_err(|e| e.to_string())
}

impl Writer {
    /// Starts writing through `endpoints` (URLs as [`Cluster::endpoints`] gives them), with the
    /// cluster's credentials when it is secure.
    pub fn start(endpoints: &str, creds: Option<&SecureCreds>) -> Writer {
        let eps: Vec<String> = endpoints.split(',').map(str::to_string).collect();
        let ca = creds.map(|c| std::fs::read_to_string(&c.ca).expect("reading the cluster CA"));
        let token = creds.map(|c| format!("Bearer {}", c.token));
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, attempts) = (stop.clone(), attempts.clone());
            crate::backends::runtime().spawn(async move {
                let mut at = 0usize;
                let mut client: Option<AdminClient<Channel>> = None;
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let start = Instant::now();
                    let ok = async {
                        if client.is_none() {
                            let ch = channel(&eps[at % eps.len()], ca.as_deref()).await?;
                            client = Some(AdminClient::new(ch));
                        }
                        let c = client.as_mut().ok_or("no client")?;
                        let mut req = tonic::Request::new(ApplyRequest {
                            document: format!(
                                "http:\n  routers:\n    avail:\n      rule: \"Host(`w{seq}.avail.test`)\"\n      service: avail\n  services:\n    avail:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n"
                            ),
                            prune: false,
                            dry_run: false,
                            rollout: None,
                        });
                        req.set_timeout(WRITE_DEADLINE);
                        if let Some(t) = &token {
                            req.metadata_mut()
                                .insert("authorization", t.parse().map_err(|_| "token")?);
                        }
                        match tokio::time::timeout(WRITE_DEADLINE, c.apply(req)).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(s)) => Err(s.message().to_string()),
                            Err(_) => Err("deadline".to_string()),
                        }
                    }
                    .await
                    .is_ok();
                    lock(&attempts).push(Attempt {
                        start,
                        end: Instant::now(),
                        ok,
                    });
                    if !ok {
                        // The next endpoint, on a fresh connection; a short pause so a dead
                        // cluster is not spun on.
                        client = None;
                        at += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        };
        Writer {
            stop,
            attempts,
            task: Some(task),
        }
    }

    /// The end of the first successful write that started at or after `t`.
    pub fn first_ok_from(&self, t: Instant) -> Option<Instant> {
        lock(&self.attempts)
            .iter()
            .find(|a| a.ok && a.start >= t)
            .map(|a| a.end)
    }

    /// Waits (up to `timeout`) for a successful write started at or after `t`; returns how long
    /// after `t` it completed.
    pub fn wait_ok_from(&self, t: Instant, timeout: Duration) -> Duration {
        wait_until(timeout, "a successful write", || {
            self.first_ok_from(t)
                .map(|end| end.duration_since(t))
                .ok_or_else(|| {
                    let a = lock(&self.attempts);
                    format!(
                        "{} attempts so far, {} failed",
                        a.len(),
                        a.iter().filter(|a| !a.ok).count()
                    )
                })
        })
    }

    /// (successful, failed) attempts so far.
    pub fn counts(&self) -> (usize, usize) {
        let a = lock(&self.attempts);
        let ok = a.iter().filter(|a| a.ok).count();
        (ok, a.len() - ok)
    }

    /// Stops the writer and returns every attempt.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = crate::backends::block_on(t);
        }
        lock(&self.attempts).clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one leader kill cost.
#[derive(Debug, Clone, Copy)]
pub struct KillOutcome {
    /// The node killed (the leader).
    pub leader: u64,
    /// From the kill to the first successful write started after it.
    pub unavailable: Duration,
    /// From restarting the killed node to its `/readyz` answering 200.
    pub ready_after_restart: Duration,
}

/// Kills the leader `kills` times while `writer` runs (see the module docs). Between kills, the
/// killed node is restarted and the cluster waits until every node is ready again.
pub fn kill_leaders(c: &mut Cluster, writer: &Writer, kills: usize) -> Vec<KillOutcome> {
    let mut out = Vec::with_capacity(kills);
    for k in 0..kills {
        // Writes flow before each kill.
        writer.wait_ok_from(Instant::now(), Duration::from_secs(60));
        let leader = c.wait_for_leader(Duration::from_secs(60));
        let killed = Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        c.node_mut(leader).kill();
        let unavailable = writer.wait_ok_from(killed, Duration::from_secs(60));
        let restarted = Instant::now();
        c.node_mut(leader).respawn();
        let node = c.node(leader);
        let ready_after_restart = wait_until(
            Duration::from_secs(120),
            &format!("node {leader} ready after its restart"),
            || match node.readyz() {
                Ok(200) => Ok(restarted.elapsed()),
                other => Err(format!("{other:?}")),
            },
        );
        eprintln!(
            "kill {}/{kills} at unix {wall:.3}: leader {leader}; writes resumed after {unavailable:.2?}; restarted node ready after {ready_after_restart:.2?}",
            k + 1
        );
        out.push(KillOutcome {
            leader,
            unavailable,
            ready_after_restart,
        });
    }
    out
}

/// Commits `n` writes that each add one router (`grow-I`, rule ``Host(`gI.test`)``) through the
/// admin API at `endpoint`, from `clients` concurrent clients.
pub fn grow(endpoint: &str, creds: Option<&SecureCreds>, n: usize, clients: usize) {
    write_all(endpoint, creds, n, clients, |i| {
        format!(
            "http:\n  routers:\n    grow-{i}:\n      rule: \"Host(`g{i}.test`)\"\n      service: grow\n  services:\n    grow:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:9\"\n"
        )
    });
}

/// Commits the `n` documents `doc(0..n)` through the admin API at `endpoint` (upserts, no
/// prune), from `clients` concurrent clients (client `c` writes `c, c + clients, ...` in order),
/// retrying each through elections.
pub fn write_all(
    endpoint: &str,
    creds: Option<&SecureCreds>,
    n: usize,
    clients: usize,
    doc: impl Fn(usize) -> String + Send + Sync + 'static,
) {
    let ca = creds.map(|c| std::fs::read_to_string(&c.ca).expect("reading the cluster CA"));
    let token = creds.map(|c| format!("Bearer {}", c.token));
    let doc = Arc::new(doc);
    crate::backends::block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (ep, ca, token, doc) =
                (endpoint.to_string(), ca.clone(), token.clone(), doc.clone());
            tasks.push(tokio::spawn(async move {
                let ch = channel(&ep, ca.as_deref()).await?;
                let mut client = AdminClient::new(ch);
                for i in (c..n).step_by(clients) {
                    let document = doc(i);
                    // An upsert is idempotent: retry through elections (a loaded machine).
                    let mut attempt = 0;
                    loop {
                        let mut req = tonic::Request::new(ApplyRequest {
                            document: document.clone(),
                            prune: false,
                            dry_run: false,
                            rollout: None,
                        });
                        if let Some(t) = &token {
                            req.metadata_mut()
                                .insert("authorization", t.parse().map_err(|_| "token")?);
                        }
                        match client.apply(req).await {
                            Ok(_) => break,
                            Err(s) if attempt < 30 => {
                                attempt += 1;
                                eprintln!("write {i} failed ({}); retrying", s.message());
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(s) => return Err(s.to_string()),
                        }
                    }
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await
                .expect("writer task")
                .unwrap_or_else(|e| panic!("write failed: {e}"));
        }
    });
}

/// The highest Raft term among the running nodes.
pub fn max_term(c: &Cluster) -> u64 {
    c.leader_views().iter().map(|v| v.term).max().unwrap_or(0)
}

/// The number of terms started (elections) among the running nodes during `period` of steady
/// writes, and the writes that succeeded and failed meanwhile.
pub fn elections_during(c: &Cluster, writer: &Writer, period: Duration) -> (u64, usize, usize) {
    let before = max_term(c);
    let (ok0, failed0) = writer.counts();
    let end = Instant::now() + period;
    while Instant::now() < end {
        // The measuring period itself (not a synchronisation).
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok1, failed1) = writer.counts();
    (max_term(c) - before, ok1 - ok0, failed1 - failed0)
}

/// p-th percentile (nearest rank) of `v` (sorted here).
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

//! # The chaos suite
//!
//! Concurrent clients write and read a map of registers through the admin gRPC API of different
//! control nodes ([`workload`]), while a nemesis ([`nemesis`]) kills, restarts and partitions
//! the nodes of a three-node secure cluster whose Raft links run through TCP relays
//! ([`relays`]). Every operation is recorded with its invocation and completion ([`history`]).
//! At the end of a round the links are healed and every node started, and the round checks:
//!
//! 1. **Linearizable**: the history, including a final consistent read of every register on
//!    every node, is linearizable for the register model ([`checker`]: Porcupine's algorithm,
//!    partitioned per register).
//! 2. **Nothing acknowledged lost**: every write answered `ok` left its marker router in the
//!    final config; no write answered `fail` did.
//! 3. **Converged**: every node serves the same config version and the same config.
//!
//! [`run`] runs rounds of at most [`ChaosConfig::round`] on a fresh cluster each (the config
//! grows by one router per write, so a long run is a sequence of rounds) until the duration is
//! spent; it panics on the first violation, naming the round's history file (JSON lines, kept
//! on failure, with `faults.jsonl` beside it: each fault's start and end on the history's
//! clock). The CI test (`tests/tests/chaos.rs`) runs one short round;
//! `scripts/chaos.sh --minutes N` runs the long one.

pub mod checker;
pub mod history;
pub mod identify;
pub mod nemesis;
pub mod relays;
pub mod workload;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use switchyard_proto::admin::GetConfigRequest;

use crate::{wait_until, Cluster, NodeAddrs};
use history::{History, Op, Outcome};
use nemesis::{Fault, FaultRecord, Nemesis};
use relays::Relays;
use workload::{Access, Workload, WorkloadConfig};

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Total time under faults.
    pub duration: Duration,
    /// Longest round (one cluster).
    pub round: Duration,
    /// Client processes.
    pub clients: usize,
    /// Registers.
    pub keys: usize,
    /// Seed of the nemesis and the clients.
    pub seed: u64,
    /// The faults to choose from.
    pub faults: Vec<Fault>,
}

impl ChaosConfig {
    /// The configuration from the environment: `SWITCHYARD_CHAOS_SECS` (default
    /// `default_secs`), `SWITCHYARD_CHAOS_ROUND_SECS` (default 300), `SWITCHYARD_CHAOS_CLIENTS`
    /// (5), `SWITCHYARD_CHAOS_KEYS` (3), `SWITCHYARD_CHAOS_SEED` (from the clock),
    /// `SWITCHYARD_CHAOS_FAULTS` (comma-separated [`Fault`] names; default all).
    pub fn from_env(default_secs: u64) -> ChaosConfig {
        let num = |name: &str, default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .map(|v| {
                    v.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}={v:?}: not a number"))
                })
                .unwrap_or(default)
        };
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let duration = Duration::from_secs(num("SWITCHYARD_CHAOS_SECS", default_secs));
        ChaosConfig {
            duration,
            round: Duration::from_secs(num("SWITCHYARD_CHAOS_ROUND_SECS", 300)).min(duration),
            clients: num("SWITCHYARD_CHAOS_CLIENTS", 5) as usize,
            keys: num("SWITCHYARD_CHAOS_KEYS", 3) as usize,
            seed: num("SWITCHYARD_CHAOS_SEED", clock),
            faults: match std::env::var("SWITCHYARD_CHAOS_FAULTS") {
                Ok(list) => list
                    .split(',')
                    .map(|f| {
                        Fault::ALL
                            .into_iter()
                            .find(|k| k.to_string() == f.trim())
                            .unwrap_or_else(|| {
                                panic!(
                                    "SWITCHYARD_CHAOS_FAULTS: unknown fault {f:?}; one of {:?}",
                                    Fault::ALL
                                )
                            })
                    })
                    .collect(),
                Err(_) => Fault::ALL.to_vec(),
            },
        }
    }
}

/// What one round did.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// Time under faults.
    pub chaos: Duration,
    /// The faults.
    pub faults: Vec<FaultRecord>,
    /// Operation counts.
    pub summary: history::Summary,
    /// Writes acknowledged and found in the final config.
    pub acknowledged: usize,
    /// The converged config version.
    pub final_version: u64,
    /// Time the linearizability check took.
    pub check: Duration,
}

impl std::fmt::Display for RoundReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0?} under {} faults; {}; {} acknowledged writes all present; converged at version {}; linearizable (checked in {:.1?})",
            self.chaos,
            self.faults.len(),
            self.summary,
            self.acknowledged,
            self.final_version,
            self.check
        )
    }
}

/// Runs rounds until `cfg.duration` is spent; panics on the first violation.
pub fn run(cfg: &ChaosConfig) -> Vec<RoundReport> {
    eprintln!(
        "chaos: {:?} in rounds of at most {:?}, {} clients, {} registers, seed {} (SWITCHYARD_CHAOS_SEED)",
        cfg.duration, cfg.round, cfg.clients, cfg.keys, cfg.seed
    );
    let mut reports: Vec<RoundReport> = Vec::new();
    let mut spent = Duration::ZERO;
    let mut round = 0u64;
    while spent < cfg.duration {
        round += 1;
        let length = cfg
            .round
            .min(cfg.duration - spent)
            .max(Duration::from_secs(10));
        let report = run_round(cfg, cfg.seed.wrapping_add(round), length)
            .unwrap_or_else(|violation| panic!("chaos round {round}: {violation}"));
        eprintln!("chaos: round {round}: {report}");
        spent += report.chaos;
        reports.push(report);
    }
    eprintln!(
        "chaos: {:.1} minutes under faults without a violation ({} rounds, {} faults)",
        spent.as_secs_f64() / 60.0,
        reports.len(),
        reports.iter().map(|r| r.faults.len()).sum::<usize>()
    );
    reports
}

/// How long the final checks may wait for the cluster (loaded CI machine).
const SETTLE: Duration = Duration::from_secs(60);

/// A secure three-node cluster whose Raft links run through [`Relays`] (pids registered), the
/// workload's service created, and the credentials for the admin API. Small snapshot thresholds:
/// restarted and cut-off nodes catch up by snapshot, too.
pub fn relayed_cluster() -> (Cluster, Relays, Access) {
    let ids: Vec<u64> = vec![1, 2, 3];
    let addrs: Vec<NodeAddrs> = ids.iter().map(|_| NodeAddrs::allocate()).collect();
    let relays = Relays::start(
        &ids.iter()
            .zip(&addrs)
            .map(|(id, a)| (*id, a.peer.clone()))
            .collect::<Vec<_>>(),
    );
    let peers: Vec<String> = ids.iter().map(|id| relays.addr(*id)).collect();
    let per_node: Vec<Vec<String>> = peers
        .iter()
        .map(|p| vec!["--advertise-peer-addr".to_string(), p.clone()])
        .collect();
    let cluster = Cluster::start_each_on(
        addrs,
        &peers,
        &["--snapshot-threshold", "200", "--snapshot-keep-logs", "50"],
        &per_node,
    );
    for n in &cluster.nodes {
        relays.set_pid(n.pid().expect("a started node has a process"), n.id);
    }
    let creds = cluster.creds();
    let access = Access {
        ca_pem: std::fs::read_to_string(&creds.ca).expect("reading the cluster CA"),
        token: creds.token.clone(),
    };
    crate::apply_yaml(&cluster.endpoints(), &workload::service_doc())
        .expect("creating the workload's service");
    (cluster, relays, access)
}

/// One round on a fresh cluster: faults for `length`, then the checks. A violation is an
/// error (naming the history file, which is then kept); a harness failure panics.
pub fn run_round(cfg: &ChaosConfig, seed: u64, length: Duration) -> Result<RoundReport, String> {
    let (mut cluster, relays, access) = relayed_cluster();
    let nodes: Vec<(u64, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.addrs.api.clone()))
        .collect();
    let op_timeout = Duration::from_secs(10);

    let dir = tempfile::Builder::new()
        .prefix("switchyard-chaos-")
        .tempdir()
        .expect("a directory for the history");
    let history_path: PathBuf = dir.path().join("history.jsonl");
    let history = Arc::new(History::new());
    let guard = KeepOnPanic {
        keep: false,
        dir: Some(dir),
        history: Arc::clone(&history),
        path: history_path.clone(),
    };

    let workload = Workload::start(
        WorkloadConfig {
            clients: cfg.clients,
            keys: cfg.keys,
            nodes: nodes.clone(),
            access: access.clone(),
            op_timeout,
            pause: Duration::from_millis(20),
            write_ratio: 0.5,
            seed,
        },
        Arc::clone(&history),
    );
    let started = Instant::now();
    let faults = {
        let mut nemesis = Nemesis::new(
            &mut cluster,
            &relays,
            rand::rngs::StdRng::seed_from_u64(seed),
        );
        nemesis.clock = Some(Arc::clone(&history));
        nemesis.run_until(started + length, &cfg.faults, (1000, 3000));
        nemesis.heal_all();
        nemesis.log.clone()
    };
    let chaos = started.elapsed();
    workload.stop();
    let (accepted, unknown) = relays.stats();
    eprintln!("chaos: relays accepted {accepted} connections, {unknown} live ones from unidentified sources (closed)");

    // Final reads: every register on every node, recorded like any other operation.
    let final_process = cfg.clients + 1000;
    crate::backends::block_on(async {
        for (i, (node, api)) in nodes.iter().enumerate() {
            for k in 0..cfg.keys {
                let op = Op::Read {
                    key: format!("reg-{k}"),
                };
                let process = final_process + i;
                let deadline = Instant::now() + SETTLE;
                loop {
                    let mut client = match access.connect(api, Duration::from_secs(2)).await {
                        Ok(c) => c,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("chaos: final read on node {node}: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        Err(e) => panic!("final read on node {node}: {e}"),
                    };
                    history.invoke(process, *node, &op);
                    let (outcome, version) =
                        workload::read_versioned(&mut client, op.key(), false, op_timeout).await;
                    let done = matches!(outcome, Outcome::Ok(_));
                    history.complete_versioned(process, *node, &op, outcome.clone(), version);
                    if done {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "final read of {} on node {node} kept failing: {outcome:?}",
                        op.key()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });

    // Convergence: the same version and config on every node (local reads).
    let (final_version, config) = wait_until(SETTLE, "every node serving the same config", || {
        crate::backends::block_on(async {
            let mut seen: Vec<(u64, u64, String)> = Vec::new();
            for (node, api) in &nodes {
                let mut c = access
                    .connect(api, Duration::from_secs(2))
                    .await
                    .map_err(|e| format!("node {node}: {e}"))?;
                let r = c
                    .get_config(GetConfigRequest { consistent: false })
                    .await
                    .map_err(|e| format!("node {node}: {e}"))?
                    .into_inner();
                seen.push((*node, r.version, r.json));
            }
            let first = &seen[0];
            if seen.iter().all(|s| s.1 == first.1 && s.2 == first.2) {
                Ok((first.1, first.2.clone()))
            } else {
                Err(format!(
                    "versions {:?}",
                    seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>()
                ))
            }
        })
    });
    let doc: serde_json::Value = serde_json::from_str(&config).expect("config is JSON");
    let routers: BTreeSet<String> = doc["http"]["routers"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();

    history
        .write_jsonl(&history_path)
        .expect("writing the history");
    let faults_path = history_path.with_file_name("faults.jsonl");
    let faults_text: String = faults
        .iter()
        .map(|f| {
            format!(
                "{}\n",
                serde_json::json!({"fault": f.fault.to_string(), "nodes": f.nodes,
                    "started": f.started, "ended": f.ended,
                    "recovered_ms": f.recovered_in.as_millis() as u64})
            )
        })
        .collect();
    std::fs::write(&faults_path, faults_text).expect("writing the faults");
    let summary = history.summary();
    eprintln!("chaos: history {}: {summary}", history_path.display());
    let mut refusals: std::collections::BTreeMap<String, usize> = Default::default();
    for op in history.operations() {
        if let (Op::Write { .. }, Outcome::Fail(e)) = (&op.op, &op.outcome) {
            *refusals.entry(e.chars().take(160).collect()).or_default() += 1;
        }
    }
    for (e, n) in &refusals {
        eprintln!("chaos: {n} writes refused: {e}");
    }
    assert!(
        summary.writes.ok >= 10 && summary.reads.ok >= 10,
        "the workload made too little progress to prove anything: {summary}"
    );
    let mut guard = guard;
    let (lost, phantom) = history.lost_writes(&routers);
    if !lost.is_empty() {
        guard.keep = true;
        return Err(format!(
            "{} acknowledged writes are missing from the final config: {lost:?} (history: {})",
            lost.len(),
            history_path.display()
        ));
    }
    if !phantom.is_empty() {
        guard.keep = true;
        return Err(format!(
            "{} writes answered as failed took effect: {phantom:?} (history: {})",
            phantom.len(),
            history_path.display()
        ));
    }
    let check_started = Instant::now();
    if let Err(e) = history.check_linearizable(Duration::from_secs(300)) {
        guard.keep = true;
        return Err(format!("{e}\n(history: {})", history_path.display()));
    }
    let check = check_started.elapsed();
    drop(guard);
    Ok(RoundReport {
        chaos,
        faults,
        summary,
        acknowledged: summary.writes.ok as usize,
        final_version,
        check,
    })
}

/// Keeps the round's history (written on the way out) when the round panics.
struct KeepOnPanic {
    /// Keep it anyway (the round found a violation).
    keep: bool,
    dir: Option<tempfile::TempDir>,
    history: Arc<History>,
    path: PathBuf,
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if self.keep
            || std::thread::panicking()
            || std::env::var_os("SWITCHYARD_E2E_KEEP").is_some()
        {
            let _ = self.history.write_jsonl(&self.path);
            if let Some(d) = self.dir.take() {
                let kept = d.keep();
                eprintln!(
                    "chaos: history kept in {}",
                    kept.join("history.jsonl").display()
                );
            }
        }
    }
}

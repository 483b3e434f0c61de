//! The history of a chaos run: every operation's invocation and completion (`ok`, `fail`,
//! `info`) with timestamps, as Jepsen records it, and what the checks make of it.
//!
//! The workload is a map of registers: each key is a router (`reg-N`) whose rule carries the
//! value last written. Every write also creates a marker router named after its value (`m-V`)
//! in the same `apply`, so the final config shows which writes took effect: every acknowledged
//! write's marker must be there ([`History::lost_writes`]), no failed write's marker may be.
//!
//! Completions mean what Jepsen's do:
//! * `ok`: the operation took effect (a write committed; a read saw the value).
//! * `fail`: it certainly did not take effect (refused before it reached the log).
//! * `info`: unknown (timed out, connection broken): a write may take effect at any time after
//!   its invocation, or never. It is checked as an operation that never returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

use super::checker::{self, CheckResult, Model, Operation, INFINITY};

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set register `key` to `value`.
    Write { key: String, value: String },
    /// Read register `key` (a consistent read).
    Read { key: String },
}

impl Op {
    /// The register.
    pub fn key(&self) -> &str {
        match self {
            Op::Write { key, .. } | Op::Read { key } => key,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect; a read's value (`None`: the register does not exist).
    Ok(Option<String>),
    /// Certainly did not take effect.
    Fail(String),
    /// Unknown.
    Info(String),
}

/// One line of the history.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Nanoseconds since the history started.
    pub time: u64,
    /// The client process.
    pub process: usize,
    /// The control node it talked to.
    pub node: u64,
    /// The operation.
    pub op: Op,
    /// `None` for the invocation, else the completion.
    pub outcome: Option<Outcome>,
    /// The config version the answer named (an `ok` write: the version it committed; an `ok`
    /// read: the version it reflects), for diagnosis.
    pub version: Option<u64>,
}

impl Entry {
    /// The entry as one JSON object (Jepsen's field names).
    pub fn to_json(&self) -> Value {
        let (ty, value, error) = match &self.outcome {
            None => ("invoke", None, None),
            Some(Outcome::Ok(v)) => ("ok", v.clone(), None),
            Some(Outcome::Fail(e)) => ("fail", None, Some(e.clone())),
            Some(Outcome::Info(e)) => ("info", None, Some(e.clone())),
        };
        let (f, value) = match &self.op {
            Op::Write { value: v, .. } => ("write", Some(v.clone())),
            Op::Read { .. } => ("read", value),
        };
        json!({
            "time": self.time,
            "process": self.process,
            "node": self.node,
            "type": ty,
            "f": f,
            "key": self.op.key(),
            "value": value,
            "error": error,
            "version": self.version,
        })
    }
}

/// A history shared by concurrent clients.
pub struct History {
    start: Instant,
    entries: Mutex<Vec<Entry>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    /// An empty history; its clock starts now.
    pub fn new() -> History {
        History::default()
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn push(
        &self,
        process: usize,
        node: u64,
        op: &Op,
        outcome: Option<Outcome>,
        version: Option<u64>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Time is read under the lock, so the entries are in time order.
        let time = self.now();
        entries.push(Entry {
            time,
            process,
            node,
            op: op.clone(),
            outcome,
            version,
        });
    }

    /// Records an invocation (right before the request is sent).
    pub fn invoke(&self, process: usize, node: u64, op: &Op) {
        self.push(process, node, op, None, None);
    }

    /// Records a completion (right after the answer arrived).
    pub fn complete(&self, process: usize, node: u64, op: &Op, outcome: Outcome) {
        self.push(process, node, op, Some(outcome), None);
    }

    /// [`History::complete`] with the config version the answer named.
    pub fn complete_versioned(
        &self,
        process: usize,
        node: u64,
        op: &Op,
        outcome: Outcome,
        version: Option<u64>,
    ) {
        self.push(process, node, op, Some(outcome), version);
    }

    /// Nanoseconds since the history started (for events outside it, e.g. faults).
    pub fn clock(&self) -> u64 {
        self.now()
    }

    /// A copy of the entries, in time order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes the history as JSON lines.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut out = String::new();
        for e in self.entries() {
            out.push_str(&e.to_json().to_string());
            out.push('\n');
        }
        std::fs::write(path, out)
    }

    /// Reads a history written by [`History::write_jsonl`] (to re-check a kept one).
    pub fn read_jsonl(path: &Path) -> Result<History, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
            let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
            let s = |k: &str| v[k].as_str().map(str::to_string);
            let n = |k: &str| v[k].as_u64().ok_or_else(|| bad(k));
            let key = s("key").ok_or_else(|| bad("key"))?;
            let op = match v["f"].as_str() {
                Some("write") => Op::Write {
                    key,
                    value: s("value").ok_or_else(|| bad("value"))?,
                },
                Some("read") => Op::Read { key },
                _ => return Err(bad("f")),
            };
            let error = s("error").unwrap_or_default();
            let outcome = match v["type"].as_str() {
                Some("invoke") => None,
                Some("ok") => Some(Outcome::Ok(match op {
                    Op::Read { .. } => s("value"),
                    Op::Write { .. } => None,
                })),
                Some("fail") => Some(Outcome::Fail(error)),
                Some("info") => Some(Outcome::Info(error)),
                _ => return Err(bad("type")),
            };
            entries.push(Entry {
                time: n("time")?,
                process: n("process")? as usize,
                node: n("node")?,
                op,
                outcome,
                version: v["version"].as_u64(),
            });
        }
        Ok(History {
            start: Instant::now(),
            entries: Mutex::new(entries),
        })
    }

    /// The operations: each invocation paired with its process's next completion.
    pub fn operations(&self) -> Vec<Completed> {
        pair(&self.entries())
    }

    /// Counts by kind: (invocations, ok, fail, info) for writes and for reads.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for op in self.operations() {
            let c = match op.op {
                Op::Write { .. } => &mut s.writes,
                Op::Read { .. } => &mut s.reads,
            };
            match op.outcome {
                Outcome::Ok(_) => c.ok += 1,
                Outcome::Fail(_) => c.fail += 1,
                Outcome::Info(_) => c.info += 1,
            }
        }
        s
    }

    /// Acknowledged writes whose marker is missing from `routers` (the final config's router
    /// names), and failed writes whose marker is there: both must be empty.
    pub fn lost_writes(&self, routers: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
        let mut lost = Vec::new();
        let mut phantom = Vec::new();
        for op in self.operations() {
            if let Op::Write { value, .. } = &op.op {
                let present = routers.contains(&marker(value));
                match op.outcome {
                    Outcome::Ok(_) if !present => lost.push(value.clone()),
                    Outcome::Fail(_) if present => phantom.push(value.clone()),
                    _ => {}
                }
            }
        }
        (lost, phantom)
    }

    /// Checks the history for linearizability, one register at a time.
    pub fn check_linearizable(&self, timeout: std::time::Duration) -> Result<(), String> {
        let ops = to_checker_operations(&self.operations());
        let parts = checker::partition_by(ops, |o| o.input.key().to_string());
        let slices: Vec<&[Operation<Op, Option<String>>]> =
            parts.iter().map(|(_, p)| p.as_slice()).collect();
        match checker::check_partitions(&Registers, &slices, Some(timeout)) {
            CheckResult::Ok => Ok(()),
            CheckResult::Unknown => Err(format!(
                "the checker could not decide within {timeout:?} ({} operations)",
                parts.iter().map(|(_, p)| p.len()).sum::<usize>()
            )),
            CheckResult::Illegal(v) => {
                let (key, ops) = &parts[v.partition];
                Err(format!(
                    "register {key} is not linearizable:\n{}",
                    checker::describe_violation(&Registers, ops, &v)
                ))
            }
        }
    }
}

/// The name of the marker router a write of `value` creates.
pub fn marker(value: &str) -> String {
    format!("m-{value}")
}

/// An invocation with its completion.
#[derive(Debug, Clone)]
pub struct Completed {
    pub process: usize,
    pub node: u64,
    pub op: Op,
    pub call: u64,
    /// `None` when the operation never completed (the run ended first): like `info`.
    pub ret: Option<u64>,
    pub outcome: Outcome,
}

/// Pairs invocations with completions (a process runs one operation at a time).
pub fn pair(entries: &[Entry]) -> Vec<Completed> {
    let mut open: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out: Vec<Completed> = Vec::new();
    for e in entries {
        match &e.outcome {
            None => {
                open.insert(e.process, out.len());
                out.push(Completed {
                    process: e.process,
                    node: e.node,
                    op: e.op.clone(),
                    call: e.time,
                    ret: None,
                    outcome: Outcome::Info("never completed".into()),
                });
            }
            Some(outcome) => {
                if let Some(i) = open.remove(&e.process) {
                    out[i].ret = Some(e.time);
                    out[i].outcome = outcome.clone();
                }
            }
        }
    }
    out
}

/// What the checker sees: ok operations, and writes with unknown outcome. Failed operations
/// and reads without an answer have no effect and are left out.
///
/// A write with unknown outcome may take effect any time after its call, or never. Checked as
/// an operation that never returns, each one pending in a register multiplies the search (every
/// subset of them is a candidate before every read), so, as values are unique:
/// * one whose value no read returned is left out: it is equivalent to it taking effect last
///   (or never), which nothing observes;
/// * one whose value a read returned must have taken effect before that read returned, so it
///   returns at the earliest such read's return (every valid linearization is kept).
pub fn to_checker_operations(ops: &[Completed]) -> Vec<Operation<Op, Option<String>>> {
    // (key, value) → earliest return of an ok read that returned it.
    let mut seen: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in ops {
        if let (Op::Read { key }, Outcome::Ok(Some(v)), Some(ret)) = (&c.op, &c.outcome, c.ret) {
            let e = seen.entry((key.as_str(), v.as_str())).or_insert(ret);
            *e = (*e).min(ret);
        }
    }
    ops.iter()
        .filter_map(|c| {
            let (ret, output) = match (&c.op, &c.outcome) {
                (_, Outcome::Fail(_)) => return None,
                (Op::Read { .. }, Outcome::Info(_)) => return None,
                (Op::Write { key, value }, Outcome::Info(_)) => {
                    match seen.get(&(key.as_str(), value.as_str())) {
                        None => return None,
                        // A read that returned it before it was called: leave the checker to
                        // report that.
                        Some(&read) if read < c.call => (INFINITY, None),
                        Some(&read) => (read, None),
                    }
                }
                (_, Outcome::Ok(v)) => (c.ret.unwrap_or(INFINITY), v.clone()),
            };
            Some(Operation {
                client: c.process,
                input: c.op.clone(),
                call: c.call,
                output,
                ret,
            })
        })
        .collect()
}

/// A register per key (the history is partitioned by key): `None` until written.
pub struct Registers;

impl Model for Registers {
    type State = Option<String>;
    type Input = Op;
    type Output = Option<String>;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &Op,
        output: &Option<String>,
    ) -> Option<Self::State> {
        match input {
            Op::Write { value, .. } => Some(Some(value.clone())),
            Op::Read { .. } => (output == state).then(|| state.clone()),
        }
    }

    fn describe(&self, input: &Op, output: &Option<String>) -> String {
        match input {
            Op::Write { key, value } => format!("write {key} := {value}"),
            Op::Read { key } => {
                format!("read {key} -> {}", output.as_deref().unwrap_or("(absent)"))
            }
        }
    }
}

/// Counts of one kind of operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// Counts of a history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub writes: Counts,
    pub reads: Counts,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writes {} ok / {} fail / {} info, reads {} ok / {} fail / {} info",
            self.writes.ok,
            self.writes.fail,
            self.writes.info,
            self.reads.ok,
            self.reads.fail,
            self.reads.info
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn w(key: &str, value: &str) -> Op {
        Op::Write {
            key: key.into(),
            value: value.into(),
        }
    }

    fn r(key: &str) -> Op {
        Op::Read { key: key.into() }
    }

    fn ok(v: Option<&str>) -> Outcome {
        Outcome::Ok(v.map(str::to_string))
    }

    #[test]
    fn a_clean_history_passes_every_check() {
        let h = History::new();
        h.invoke(0, 1, &w("reg-0", "c0-1"));
        h.invoke(1, 2, &r("reg-0"));
        h.complete(1, 2, &r("reg-0"), ok(None));
        h.complete(0, 1, &w("reg-0", "c0-1"), ok(None));
        h.invoke(1, 2, &r("reg-0"));
        h.complete(1, 2, &r("reg-0"), ok(Some("c0-1")));
        // A write that timed out, seen by nobody, and a refused one.
        h.invoke(2, 3, &w("reg-0", "c2-1"));
        h.complete(2, 3, &w("reg-0", "c2-1"), Outcome::Info("timeout".into()));
        h.invoke(3, 3, &w("reg-1", "c3-1"));
        h.complete(3, 3, &w("reg-1", "c3-1"), Outcome::Fail("invalid".into()));
        h.invoke(1, 2, &r("reg-0"));
        h.complete(1, 2, &r("reg-0"), ok(Some("c0-1")));
        assert_eq!(h.check_linearizable(Duration::from_secs(5)), Ok(()));
        let routers: BTreeSet<String> = ["reg-0", "m-c0-1"].map(String::from).into();
        assert_eq!(h.lost_writes(&routers), (vec![], vec![]));
        let s = h.summary();
        assert_eq!((s.writes.ok, s.writes.fail, s.writes.info), (1, 1, 1));
        assert_eq!(s.reads.ok, 3);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        h.write_jsonl(file.path()).expect("write");
        let back = History::read_jsonl(file.path()).expect("read back");
        assert_eq!(
            format!("{:?}", back.entries()),
            format!("{:?}", h.entries())
        );
        let line = h.entries()[0].to_json();
        assert_eq!(line["type"], "invoke");
        assert_eq!(line["f"], "write");
        assert_eq!(line["value"], "c0-1");
    }

    #[test]
    fn a_stale_read_is_caught() {
        let h = History::new();
        h.invoke(0, 1, &w("reg-0", "c0-1"));
        h.complete(0, 1, &w("reg-0", "c0-1"), ok(None));
        // Read on another node after the write was acknowledged: must see it.
        h.invoke(1, 2, &r("reg-0"));
        h.complete(1, 2, &r("reg-0"), ok(None));
        let err = h.check_linearizable(Duration::from_secs(5)).unwrap_err();
        assert!(err.contains("register reg-0 is not linearizable"), "{err}");
        assert!(err.contains("read reg-0 -> (absent)"), "{err}");
    }

    #[test]
    fn lost_and_phantom_writes_are_caught() {
        let h = History::new();
        h.invoke(0, 1, &w("reg-0", "c0-1"));
        h.complete(0, 1, &w("reg-0", "c0-1"), ok(None));
        h.invoke(0, 1, &w("reg-0", "c0-2"));
        h.complete(0, 1, &w("reg-0", "c0-2"), Outcome::Fail("refused".into()));
        let routers: BTreeSet<String> = ["reg-0", "m-c0-2"].map(String::from).into();
        assert_eq!(
            h.lost_writes(&routers),
            (vec!["c0-1".to_string()], vec!["c0-2".to_string()])
        );
    }

    #[test]
    fn an_unfinished_operation_counts_as_unknown() {
        let h = History::new();
        h.invoke(0, 1, &w("reg-0", "c0-1"));
        let ops = h.operations();
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0].outcome, Outcome::Info(_)));
        // Nobody read its value: it is left out.
        assert!(to_checker_operations(&ops).is_empty());
        h.invoke(1, 1, &r("reg-0"));
        h.complete(1, 1, &r("reg-0"), ok(Some("c0-1")));
        let ops = to_checker_operations(&h.operations());
        // Read back: it returns when that read returned.
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].ret, ops[1].ret);
        assert_eq!(h.check_linearizable(Duration::from_secs(5)), Ok(()));
    }

    /// Many writes with unknown outcome pending in one register, interleaved with reads: the
    /// search stays small (without the reduction it is exponential in their number).
    #[test]
    fn many_unknown_writes_stay_cheap() {
        let h = History::new();
        for i in 0..60 {
            let v = format!("c{i}-1");
            h.invoke(100 + i, 1, &w("reg-0", &v));
            h.complete(100 + i, 1, &w("reg-0", &v), Outcome::Info("timeout".into()));
        }
        for i in 0..200 {
            let v = format!("c0-{}", i + 2);
            h.invoke(0, 1, &w("reg-0", &v));
            h.complete(0, 1, &w("reg-0", &v), ok(None));
            h.invoke(1, 2, &r("reg-0"));
            h.complete(1, 2, &r("reg-0"), ok(Some(&v)));
        }
        // One of the unknown writes is observed at the very end.
        h.invoke(2, 1, &w("reg-0", "c2-1"));
        h.complete(2, 1, &w("reg-0", "c2-1"), ok(None));
        h.invoke(1, 2, &r("reg-0"));
        h.complete(1, 2, &r("reg-0"), ok(Some("c5-1")));
        let started = std::time::Instant::now();
        assert_eq!(h.check_linearizable(Duration::from_secs(20)), Ok(()));
        assert!(started.elapsed() < Duration::from_secs(5));
        // But a read of an unknown write's value before anything could have written it is not.
        h.invoke(3, 1, &r("reg-1"));
        h.complete(3, 1, &r("reg-1"), ok(Some("c9-9")));
        h.invoke(9, 1, &w("reg-1", "c9-9"));
        h.complete(9, 1, &w("reg-1", "c9-9"), Outcome::Info("timeout".into()));
        assert!(h.check_linearizable(Duration::from_secs(20)).is_err());
    }
}

#[cfg(test)]
mod recheck {
    /// A tool, not a test: re-checks a kept history, `SWITCHYARD_CHAOS_HISTORY=/abs/path cargo
    /// test -p switchyard-e2e --lib recheck -- --ignored --nocapture`.
    #[test]
    #[ignore = "tool: re-checks the history named by SWITCHYARD_CHAOS_HISTORY"]
    fn recheck_a_kept_history() {
        let path = std::env::var_os("SWITCHYARD_CHAOS_HISTORY")
            .expect("SWITCHYARD_CHAOS_HISTORY names the history to re-check");
        let h = super::History::read_jsonl(std::path::Path::new(&path)).expect("history");
        eprintln!("{}", h.summary());
        let started = std::time::Instant::now();
        let r = h.check_linearizable(std::time::Duration::from_secs(600));
        eprintln!("checked in {:?}: {r:?}", started.elapsed());
        assert_eq!(r, Ok(()));
    }
}

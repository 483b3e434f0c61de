//! A linearizability checker: Porcupine's algorithm, ported.
//!
//! [Porcupine](https://github.com/anishathalye/porcupine) (MIT) checks a concurrent history
//! against a sequential model with the Wing & Gong / Lowe depth-first search: walk the history's
//! call and return entries in time order, linearize any call whose operation the model accepts
//! in the current state, backtrack when a return is reached whose call could not be linearized,
//! and memoise `(set of linearized operations, model state)` so that no configuration is
//! explored twice. P-compositionality (Horn & Kroening) splits a history into independent
//! partitions (here: one register per key) that are checked separately; a history is
//! linearizable iff every partition is.
//!
//! Why a port rather than a crate: the Rust crates found do other jobs. `lincheck` tests
//! in-process data structures under `loom`; `stateright`'s `LinearizabilityTester` serves its
//! model checker, searching every interleaving of small in-model histories without
//! memoisation or partitioning; `todc-utils` is a single 0.1 release without partitioning. A
//! history of a few thousand operations with crashed (`info`) writes needs Porcupine's cache
//! and partitioning; the algorithm is ~150 lines, and the unit tests below run Porcupine's own
//! test cases (its register examples, Jepsen etcd logs and key-value logs, in `testdata/`).
//!
//! Operations whose outcome is unknown (a write that timed out or whose connection broke) are
//! given a return time after everything else ([`INFINITY`]): they may take effect at any point
//! after their call, or never (a write that never took effect is linearized at the very end,
//! where nothing observes it).

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Return time of an operation whose outcome is unknown: after every other entry.
pub const INFINITY: u64 = u64::MAX;

/// A sequential specification.
pub trait Model {
    /// The model's state (hashed and compared for the memoisation cache).
    type State: Clone + Eq + Hash;
    /// What an operation asks for.
    type Input;
    /// What an operation answered.
    type Output;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// The state after `input` answered `output` in `state`, or `None` when that answer is
    /// impossible in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;
    /// One line describing an operation, for violation reports.
    fn describe(&self, input: &Self::Input, output: &Self::Output) -> String;
}

/// One operation of a history: called at `call`, returned at `ret` (same clock; [`INFINITY`]
/// when it never returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process) that ran it.
    pub client: usize,
    /// What it asked.
    pub input: I,
    /// Call time.
    pub call: u64,
    /// What it answered (for an unknown outcome, anything the model accepts).
    pub output: O,
    /// Return time.
    pub ret: u64,
}

/// One entry of a history given as a sequence of events (Porcupine's `Event`): the position in
/// the sequence is the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<I, O> {
    /// Operation `id` was called.
    Call { client: usize, id: usize, input: I },
    /// Operation `id` returned.
    Return { client: usize, id: usize, output: O },
}

/// Turns an event sequence into operations (time = position). Calls without a return are
/// dropped; use [`INFINITY`] operations for unknown outcomes instead.
pub fn events_to_operations<I, O>(events: Vec<Event<I, O>>) -> Vec<Operation<I, O>> {
    let mut calls: std::collections::HashMap<usize, (usize, I, u64)> = Default::default();
    let mut ops = Vec::new();
    for (t, e) in events.into_iter().enumerate() {
        match e {
            Event::Call { client, id, input } => {
                calls.insert(id, (client, input, t as u64));
            }
            Event::Return { id, output, .. } => {
                if let Some((client, input, call)) = calls.remove(&id) {
                    ops.push(Operation {
                        client,
                        input,
                        call,
                        output,
                        ret: t as u64,
                    });
                }
            }
        }
    }
    ops
}

/// Splits `ops` into partitions by `key` (P-compositionality), in key order.
pub fn partition_by<I, O, K: Ord>(
    ops: Vec<Operation<I, O>>,
    key: impl Fn(&Operation<I, O>) -> K,
) -> Vec<(K, Vec<Operation<I, O>>)> {
    let mut map: std::collections::BTreeMap<K, Vec<Operation<I, O>>> = Default::default();
    for op in ops {
        map.entry(key(&op)).or_default().push(op);
    }
    map.into_iter().collect()
}

/// Why a partition is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index of the partition.
    pub partition: usize,
    /// The longest linearizable prefix found (indices into the partition's operations), in
    /// linearization order.
    pub longest_prefix: Vec<usize>,
    /// The operation (index) that could not be linearized after that prefix: of the
    /// operations outside the prefix, the one that returned first.
    pub blocked: usize,
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Linearizable.
    Ok,
    /// Not linearizable.
    Illegal(Violation),
    /// The time budget ran out before a verdict.
    Unknown,
}

impl CheckResult {
    /// Whether the verdict is [`CheckResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }
}

/// Checks one partition-less history.
pub fn check_operations<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    timeout: Option<Duration>,
) -> CheckResult {
    check_partitions(model, &[ops], timeout)
}

/// Checks every partition (each an independent history of the model); the first illegal
/// partition decides.
pub fn check_partitions<M: Model>(
    model: &M,
    partitions: &[&[Operation<M::Input, M::Output>]],
    timeout: Option<Duration>,
) -> CheckResult {
    let deadline = timeout.map(|t| Instant::now() + t);
    for (i, ops) in partitions.iter().enumerate() {
        match check_single(model, ops, deadline) {
            Single::Ok => {}
            Single::Unknown => return CheckResult::Unknown,
            Single::Illegal {
                longest_prefix,
                blocked,
            } => {
                return CheckResult::Illegal(Violation {
                    partition: i,
                    longest_prefix,
                    blocked,
                })
            }
        }
    }
    CheckResult::Ok
}

/// A readable account of a violation: the end of the longest linearizable prefix, the state it
/// leaves, and the operations concurrent with the one that could not be linearized.
pub fn describe_violation<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    v: &Violation,
) -> String
where
    M::State: std::fmt::Debug,
{
    let line = |i: usize| {
        let o = &ops[i];
        let ret = if o.ret == INFINITY {
            "never (unknown outcome)".to_string()
        } else {
            o.ret.to_string()
        };
        format!(
            "  #{i} client {} [{} .. {ret}] {}",
            o.client,
            o.call,
            model.describe(&o.input, &o.output)
        )
    };
    let mut state = model.init();
    for &i in &v.longest_prefix {
        if let Some(s) = model.step(&state, &ops[i].input, &ops[i].output) {
            state = s;
        }
    }
    let mut out = format!(
        "longest linearizable prefix: {} of {} operations; its last ones:\n",
        v.longest_prefix.len(),
        ops.len()
    );
    let from = v.longest_prefix.len().saturating_sub(8);
    for &i in &v.longest_prefix[from..] {
        out.push_str(&line(i));
        out.push('\n');
    }
    out.push_str(&format!("state after the prefix: {state:?}\n"));
    out.push_str("cannot be linearized next:\n");
    out.push_str(&line(v.blocked));
    out.push('\n');
    let b = &ops[v.blocked];
    let in_prefix: HashSet<usize> = v.longest_prefix.iter().copied().collect();
    let concurrent: Vec<usize> = (0..ops.len())
        .filter(|&i| i != v.blocked && !in_prefix.contains(&i))
        .filter(|&i| ops[i].call <= b.ret && ops[i].ret >= b.call)
        .take(12)
        .collect();
    if !concurrent.is_empty() {
        out.push_str("other pending operations overlapping it:\n");
        for i in concurrent {
            out.push_str(&line(i));
            out.push('\n');
        }
    }
    out
}

enum Single {
    Ok,
    Illegal {
        longest_prefix: Vec<usize>,
        blocked: usize,
    },
    Unknown,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The history as Porcupine's doubly linked list of entries: node 0 is the head sentinel,
/// nodes `1..=2n` are the call and return entries in time order.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For a call node: its return node; for a return node: `NIL`.
    matching: Vec<usize>,
    /// The operation of each node.
    op: Vec<usize>,
}

impl Entries {
    fn new<I, O>(ops: &[Operation<I, O>]) -> Entries {
        // (time, is_return, op): calls sort before returns at the same time.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            order.push((o.call, false, i));
            order.push((o.ret, true, i));
        }
        order.sort();
        let n = order.len() + 1;
        let mut e = Entries {
            next: (1..=n).map(|i| if i == n { NIL } else { i }).collect(),
            prev: (0..n).map(|i| if i == 0 { NIL } else { i - 1 }).collect(),
            matching: vec![NIL; n],
            op: vec![NIL; n],
        };
        let mut ret_node = vec![NIL; ops.len()];
        for (pos, &(_, is_ret, op)) in order.iter().enumerate() {
            e.op[pos + 1] = op;
            if is_ret {
                ret_node[op] = pos + 1;
            }
        }
        for (pos, &(_, is_ret, op)) in order.iter().enumerate() {
            if !is_ret {
                e.matching[pos + 1] = ret_node[op];
            }
        }
        e
    }

    fn is_call(&self, node: usize) -> bool {
        self.matching[node] != NIL
    }

    /// Removes a call and its return from the list.
    fn lift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = n;
        self.prev[n] = p;
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Puts back what [`Entries::lift`] removed (in reverse order).
    fn unlift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = ret;
        if n != NIL {
            self.prev[n] = ret;
        }
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = call;
        self.prev[n] = call;
    }
}

/// A set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset(vec![0; bits.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

fn check_single<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    deadline: Option<Instant>,
) -> Single {
    let mut list = Entries::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(Bitset, M::State)> = HashSet::new();
    // The linearized calls, with the state before each.
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut state = model.init();
    let mut entry = list.next[HEAD];
    let mut steps: u64 = 0;
    while list.next[HEAD] != NIL {
        steps += 1;
        if steps.is_multiple_of(4096) && deadline.is_some_and(|d| Instant::now() >= d) {
            return Single::Unknown;
        }
        if list.is_call(entry) {
            let op = list.op[entry];
            match model.step(&state, &ops[op].input, &ops[op].output) {
                Some(next) => {
                    linearized.set(op);
                    if cache.insert((linearized.clone(), next.clone())) {
                        calls.push((entry, std::mem::replace(&mut state, next)));
                        list.lift(entry);
                        entry = list.next[HEAD];
                    } else {
                        linearized.clear(op);
                        entry = list.next[entry];
                    }
                }
                None => entry = list.next[entry],
            }
        } else {
            // A return whose call is not linearized: backtrack.
            if calls.len() > longest.len() {
                longest = calls.iter().map(|(e, _)| list.op[*e]).collect();
            }
            let Some((call, before)) = calls.pop() else {
                let done: HashSet<usize> = longest.iter().copied().collect();
                let blocked = (0..ops.len())
                    .filter(|i| !done.contains(i))
                    .min_by_key(|&i| (ops[i].ret, ops[i].call))
                    .unwrap_or(0);
                return Single::Illegal {
                    longest_prefix: longest,
                    blocked,
                };
            };
            state = before;
            linearized.clear(list.op[call]);
            list.unlift(call);
            entry = list.next[call];
        }
    }
    Single::Ok
}

#[cfg(test)]
mod tests {
    //! Porcupine's test cases (porcupine_test.go), ported: the register examples, the Jepsen
    //! etcd logs 000–010 and the key-value logs c01/c10 (files in `testdata/porcupine/`, MIT).

    use super::*;

    // ----- the register model (porcupine_test.go: registerModel) -----

    struct Register;

    #[derive(Clone, Copy, Debug)]
    enum RegIn {
        Put(i64),
        Get,
    }

    impl Model for Register {
        type State = i64;
        type Input = RegIn;
        type Output = i64;
        fn init(&self) -> i64 {
            0
        }
        fn step(&self, s: &i64, i: &RegIn, o: &i64) -> Option<i64> {
            match i {
                RegIn::Put(v) => Some(*v),
                RegIn::Get => (o == s).then_some(*s),
            }
        }
        fn describe(&self, i: &RegIn, o: &i64) -> String {
            match i {
                RegIn::Put(v) => format!("put({v})"),
                RegIn::Get => format!("get() -> {o}"),
            }
        }
    }

    fn op(client: usize, input: RegIn, call: u64, output: i64, ret: u64) -> Operation<RegIn, i64> {
        Operation {
            client,
            input,
            call,
            output,
            ret,
        }
    }

    #[test]
    fn register_model() {
        // 6.824 2017 quiz 2, section VII.
        let ok = [
            op(0, RegIn::Put(100), 0, 0, 100),
            op(1, RegIn::Get, 25, 100, 75),
            op(2, RegIn::Get, 30, 0, 60),
        ];
        assert_eq!(check_operations(&Register, &ok, None), CheckResult::Ok);
        let events = vec![
            Event::Call {
                client: 0,
                id: 0,
                input: RegIn::Put(100),
            },
            Event::Call {
                client: 1,
                id: 1,
                input: RegIn::Get,
            },
            Event::Call {
                client: 2,
                id: 2,
                input: RegIn::Get,
            },
            Event::Return {
                client: 2,
                id: 2,
                output: 0,
            },
            Event::Return {
                client: 1,
                id: 1,
                output: 100,
            },
            Event::Return {
                client: 0,
                id: 0,
                output: 0,
            },
        ];
        let ops = events_to_operations(events);
        assert_eq!(check_operations(&Register, &ops, None), CheckResult::Ok);

        let bad = [
            op(0, RegIn::Put(200), 0, 0, 100),
            op(1, RegIn::Get, 10, 200, 30),
            op(2, RegIn::Get, 40, 0, 90),
        ];
        let r = check_operations(&Register, &bad, None);
        let CheckResult::Illegal(v) = r else {
            panic!("expected illegal, got {r:?}")
        };
        // The read of 0 after 200 was read cannot be placed.
        assert_eq!(v.blocked, 2, "{v:?}");
        let text = describe_violation(&Register, &bad, &v);
        assert!(text.contains("get() -> 0"), "{text}");
    }

    #[test]
    fn zero_duration() {
        let ok = [
            op(0, RegIn::Put(100), 0, 0, 100),
            op(1, RegIn::Get, 25, 100, 75),
            op(2, RegIn::Get, 30, 0, 30),
            op(3, RegIn::Get, 30, 0, 30),
        ];
        assert!(check_operations(&Register, &ok, None).is_ok());
        let bad = [
            op(0, RegIn::Put(200), 0, 0, 100),
            op(1, RegIn::Get, 10, 200, 10),
            op(2, RegIn::Get, 10, 200, 10),
            op(3, RegIn::Get, 40, 0, 90),
        ];
        assert!(matches!(
            check_operations(&Register, &bad, None),
            CheckResult::Illegal(_)
        ));
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_take_effect() {
        // A write that never returned may be seen…
        let seen = [
            op(0, RegIn::Put(7), 0, 0, INFINITY),
            op(1, RegIn::Get, 10, 7, 20),
        ];
        assert!(check_operations(&Register, &seen, None).is_ok());
        // …or not at all…
        let unseen = [
            op(0, RegIn::Put(7), 0, 0, INFINITY),
            op(1, RegIn::Get, 10, 0, 20),
        ];
        assert!(check_operations(&Register, &unseen, None).is_ok());
        // …but not undone once seen.
        let flicker = [
            op(0, RegIn::Put(7), 0, 0, INFINITY),
            op(1, RegIn::Get, 10, 7, 20),
            op(1, RegIn::Get, 30, 0, 40),
        ];
        assert!(!check_operations(&Register, &flicker, None).is_ok());
        // An acknowledged write read back as the old value afterwards is a lost write.
        let lost = [op(0, RegIn::Put(7), 0, 0, 5), op(1, RegIn::Get, 10, 0, 20)];
        assert!(!check_operations(&Register, &lost, None).is_ok());
    }

    #[test]
    fn partitions_are_checked_independently() {
        let a = [op(0, RegIn::Put(1), 0, 0, 10), op(1, RegIn::Get, 20, 1, 30)];
        let b = [op(0, RegIn::Put(2), 0, 0, 10), op(1, RegIn::Get, 20, 0, 30)];
        let r = check_partitions(&Register, &[&a, &b], None);
        assert!(
            matches!(r, CheckResult::Illegal(Violation { partition: 1, .. })),
            "{r:?}"
        );
    }

    #[test]
    fn timeout_gives_unknown() {
        // Many concurrent writes and reads of values never written: exponential search.
        let mut ops = Vec::new();
        for i in 0..40 {
            ops.push(op(i, RegIn::Put(i as i64 + 1), 0, 0, 1000));
        }
        ops.push(op(99, RegIn::Get, 0, -1, 1000));
        let r = check_operations(&Register, &ops, Some(Duration::from_millis(50)));
        assert_eq!(r, CheckResult::Unknown);
    }

    // ----- the etcd model and Jepsen logs (porcupine_test.go: etcdModel, parseJepsenLog) -----

    struct Etcd;

    #[derive(Clone, Copy, Debug)]
    enum EtcdIn {
        Read,
        Write(i64),
        Cas(i64, i64),
    }

    #[derive(Clone, Copy, Debug, Default)]
    struct EtcdOut {
        ok: bool,
        exists: bool,
        value: i64,
        unknown: bool,
    }

    const NIL_VALUE: i64 = -1_000_000;

    impl Model for Etcd {
        type State = i64;
        type Input = EtcdIn;
        type Output = EtcdOut;
        fn init(&self) -> i64 {
            NIL_VALUE
        }
        fn step(&self, s: &i64, i: &EtcdIn, o: &EtcdOut) -> Option<i64> {
            match *i {
                EtcdIn::Read => {
                    ((!o.exists && *s == NIL_VALUE) || (o.exists && *s == o.value) || o.unknown)
                        .then_some(*s)
                }
                EtcdIn::Write(v) => Some(v),
                EtcdIn::Cas(from, to) => {
                    let legal = (from == *s && o.ok) || (from != *s && !o.ok) || o.unknown;
                    legal.then_some(if from == *s { to } else { *s })
                }
            }
        }
        fn describe(&self, i: &EtcdIn, o: &EtcdOut) -> String {
            format!("{i:?} -> {o:?}")
        }
    }

    fn testdata(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/chaos/testdata/porcupine")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn parse_jepsen(text: &str) -> Vec<Event<EtcdIn, EtcdOut>> {
        let num = |s: &str| -> Option<i64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let mut events = Vec::new();
        let mut open: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut next_id = 0;
        for line in text.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.len() < 6 || t[0] != "INFO" || t[1] != "jepsen.util" || t[2] != "-" {
                continue;
            }
            let Some(proc) = num(t[3]).map(|p| p as usize) else {
                continue;
            };
            let rest = &t[4..];
            let cas = |a: &str, b: &str| -> Option<(i64, i64)> {
                Some((num(a.strip_prefix('[')?)?, num(b.strip_suffix(']')?)?))
            };
            let call = match rest {
                [":invoke", ":read", "nil"] => Some(EtcdIn::Read),
                [":invoke", ":write", v] => num(v).map(EtcdIn::Write),
                [":invoke", ":cas", a, b] => cas(a, b).map(|(a, b)| EtcdIn::Cas(a, b)),
                _ => None,
            };
            if let Some(input) = call {
                events.push(Event::Call {
                    client: proc,
                    id: next_id,
                    input,
                });
                open.insert(proc, next_id);
                next_id += 1;
                continue;
            }
            let ret = match rest {
                [":ok", ":read", "nil"] => Some(EtcdOut::default()),
                [":ok", ":read", v] => num(v).map(|value| EtcdOut {
                    exists: true,
                    value,
                    ..Default::default()
                }),
                [":ok", ":write", v] => num(v).map(|_| EtcdOut::default()),
                [kind @ (":ok" | ":fail"), ":cas", a, b] => cas(a, b).map(|_| EtcdOut {
                    ok: *kind == ":ok",
                    ..Default::default()
                }),
                [":fail", ":read", ":timed-out"] => Some(EtcdOut {
                    unknown: true,
                    ..Default::default()
                }),
                _ => None,
            };
            if let Some(output) = ret {
                let id = open.remove(&proc).expect("a return without a call");
                events.push(Event::Return {
                    client: proc,
                    id,
                    output,
                });
            }
        }
        for (proc, id) in open {
            events.push(Event::Return {
                client: proc,
                id,
                output: EtcdOut {
                    unknown: true,
                    ..Default::default()
                },
            });
        }
        events
    }

    #[test]
    fn etcd_jepsen_logs() {
        // Expected verdicts from porcupine_test.go (TestEtcdJepsen000 … 010).
        let expected = [
            false, false, true, false, false, true, false, true, false, false, false,
        ];
        for (n, want) in expected.into_iter().enumerate() {
            let events = parse_jepsen(&testdata(&format!("etcd_{n:03}.log")));
            assert!(
                events.len() > 100,
                "etcd_{n:03}: parsed only {}",
                events.len()
            );
            let ops = events_to_operations(events);
            let r = check_operations(&Etcd, &ops, Some(Duration::from_secs(60)));
            assert_ne!(r, CheckResult::Unknown, "etcd_{n:03}: timed out");
            assert_eq!(r.is_ok(), want, "etcd_{n:03}: {r:?}");
        }
    }

    // ----- the key-value model and logs (porcupine_test.go: kvModel, parseKvLog) -----

    struct Kv;

    #[derive(Clone, Debug)]
    enum KvIn {
        Get(String),
        Put(String, String),
        Append(String, String),
    }

    impl KvIn {
        fn key(&self) -> &str {
            match self {
                KvIn::Get(k) | KvIn::Put(k, _) | KvIn::Append(k, _) => k,
            }
        }
    }

    impl Model for Kv {
        // One key's value: the history is partitioned by key.
        type State = String;
        type Input = KvIn;
        type Output = String;
        fn init(&self) -> String {
            String::new()
        }
        fn step(&self, s: &String, i: &KvIn, o: &String) -> Option<String> {
            match i {
                KvIn::Get(_) => (o == s).then(|| s.clone()),
                KvIn::Put(_, v) => Some(v.clone()),
                KvIn::Append(_, v) => Some(format!("{s}{v}")),
            }
        }
        fn describe(&self, i: &KvIn, o: &String) -> String {
            format!("{i:?} -> {o:?}")
        }
    }

    fn parse_kv(text: &str) -> Vec<Event<KvIn, String>> {
        let mut events = Vec::new();
        let mut open: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut next_id = 0;
        for line in text.lines() {
            let Some(body) = line
                .trim()
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
            else {
                continue;
            };
            let mut field = std::collections::HashMap::new();
            for part in body.split(", :") {
                let part = part.trim_start_matches(':');
                if let Some((k, v)) = part.split_once(' ') {
                    field.insert(k, v);
                }
            }
            let unquote = |v: &str| v.trim_matches('"').to_string();
            let (Some(proc), Some(ty), Some(f), Some(key), Some(value)) = (
                field.get("process").and_then(|p| p.parse::<usize>().ok()),
                field.get("type").copied(),
                field.get("f").copied(),
                field.get("key").map(|k| unquote(k)),
                field.get("value").copied(),
            ) else {
                continue;
            };
            match ty {
                ":invoke" => {
                    let input = match f {
                        ":get" => KvIn::Get(key),
                        ":put" => KvIn::Put(key, unquote(value)),
                        ":append" => KvIn::Append(key, unquote(value)),
                        _ => continue,
                    };
                    events.push(Event::Call {
                        client: proc,
                        id: next_id,
                        input,
                    });
                    open.insert(proc, next_id);
                    next_id += 1;
                }
                ":ok" => {
                    let output = if f == ":get" {
                        unquote(value)
                    } else {
                        String::new()
                    };
                    let id = open.remove(&proc).expect("a return without a call");
                    events.push(Event::Return {
                        client: proc,
                        id,
                        output,
                    });
                }
                _ => {}
            }
        }
        for (proc, id) in open {
            events.push(Event::Return {
                client: proc,
                id,
                output: String::new(),
            });
        }
        events
    }

    fn check_kv(name: &str) -> CheckResult {
        let events = parse_kv(&testdata(name));
        assert!(events.len() > 50, "{name}: parsed only {}", events.len());
        let parts = partition_by(events_to_operations(events), |o| o.input.key().to_string());
        assert!(parts.len() > 1, "{name}: one key only");
        let slices: Vec<&[Operation<KvIn, String>]> =
            parts.iter().map(|(_, p)| p.as_slice()).collect();
        check_partitions(&Kv, &slices, Some(Duration::from_secs(60)))
    }

    #[test]
    fn kv_logs() {
        assert!(check_kv("kv_c01-ok.txt").is_ok());
        assert!(matches!(
            check_kv("kv_c01-bad.txt"),
            CheckResult::Illegal(_)
        ));
        assert!(check_kv("kv_c10-ok.txt").is_ok());
        assert!(matches!(
            check_kv("kv_c10-bad.txt"),
            CheckResult::Illegal(_)
        ));
    }
}

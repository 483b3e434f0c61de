//! Replays every seed (`fuzz/corpus/TARGET/*`) and every input a fuzzer ever crashed on
//! (`fuzz/regressions/TARGET/*`) through the targets, then a short deterministic mutation
//! run from the seeds (no instrumentation: a smoke test that keeps CI fast; the
//! coverage-guided runs are `scripts/fuzz.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target)
}

fn files(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let d = dir(kind, target);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

fn run_one(target: &str, path: &Path, data: &[u8]) {
    let t = switchyard_fuzz::target(target).unwrap();
    if std::panic::catch_unwind(|| t(data)).is_err() {
        panic!(
            "target {target} panics on {} ({} bytes): {:?}",
            path.display(),
            data.len(),
            String::from_utf8_lossy(&data[..data.len().min(300)])
        );
    }
}

#[test]
fn corpus_and_regressions_replay_without_panics() {
    for (target, _) in switchyard_fuzz::TARGETS {
        let seeds = files("corpus", target);
        assert!(
            seeds.len() >= 20,
            "fuzz/corpus/{target} has {} seeds (expected at least 20)",
            seeds.len()
        );
        for (p, d) in seeds.iter().chain(files("regressions", target).iter()) {
            run_one(target, p, d);
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers.
const INTERESTING: &[&[u8]] = &[
    b"/", b"..", b".", b"%2e", b"%2F", b"%", b"%%", b"`", b"\"", b"(", b")", b"&&", b"||", b"!",
    b"\n", b"\r\n", b":", b"{", b"}", b"[", b"]", b"- ", b"\\", b"\0", b"\xff", b"*", b"?", b"#",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(5) {
            0 if !d.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(d.len());
                d.drain(at.min(d.len())..end.max(at.min(d.len())));
            }
            1 => {
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(at..at, tok.iter().copied());
            }
            2 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            3 if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + 1 + rng.below(32)).min(other.len());
                d.splice(at..at, other[s..e].iter().copied());
            }
            _ => {
                if !d.is_empty() {
                    let s = rng.below(d.len());
                    let e = (s + 1 + rng.below(16)).min(d.len());
                    let chunk = d[s..e].to_vec();
                    d.splice(at..at, chunk);
                }
            }
        }
    }
    d
}

#[test]
fn short_mutation_run_from_the_seeds() {
    const PER_TARGET: usize = 3_000;
    for (target, _) in switchyard_fuzz::TARGETS {
        let seeds = files("corpus", target);
        let mut rng = Rng(0x5EED_0000 + target.len() as u64);
        for i in 0..PER_TARGET {
            let (p, a) = &seeds[rng.below(seeds.len())];
            let (_, b) = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, a, b);
            let t = switchyard_fuzz::target(target).unwrap();
            if std::panic::catch_unwind(|| t(&input)).is_err() {
                panic!(
                    "target {target} panics on mutation {i} of {}: {:?} (add it to fuzz/regressions/{target}/)",
                    p.display(),
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}

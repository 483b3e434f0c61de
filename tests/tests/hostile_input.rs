//! Parse before you trust: hostile documents sent to `apply` on a 3-node cluster are refused
//! with errors naming the resource and field, nothing is proposed, and the leader keeps leading
//! and answering while it refuses them.
//!
//! Measured while the documents are refused: the leader's `/healthz` probe latency, small writes
//! through the CLI, and the followers' `switchyard_raft_append_interval_seconds` (time between
//! heartbeats/AppendEntries from the leader; 100 ms heartbeat interval in the harness). The
//! figures are printed (`--nocapture`). A 60,000-deep document used to stall the leader's runtime
//! for seconds and cause an election.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use switchyard_e2e::{cli, get_config, http_get, Cluster, LeaderView, INSECURE};
use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::ApplyRequest;

const HISTOGRAM: &str = "switchyard_raft_append_interval_seconds";

/// `(le, cumulative count)` of every bucket of the append-interval histogram.
fn interval_buckets(metrics: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{HISTOGRAM}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = rest.trim_start_matches('}').trim().parse::<f64>().ok()? as u64;
            Some((le, count))
        })
        .collect()
}

/// Observations in `(le_prev, le]` between two readings, per bucket.
fn bucket_deltas(before: &[(f64, u64)], after: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut prev = 0u64;
    after
        .iter()
        .map(|&(le, count)| {
            let was = before
                .iter()
                .find(|(l, _)| *l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            let cumulative = count - was;
            let delta = cumulative - prev;
            prev = cumulative;
            (le, delta)
        })
        .collect()
}

fn leadership(views: &[LeaderView]) -> Vec<(u64, u64, u64)> {
    views.iter().map(|v| (v.id, v.term, v.leader_id)).collect()
}

/// A hostile document and what its refusal must say.
struct Hostile {
    what: &'static str,
    doc: String,
    expect: &'static [&'static str],
}

fn hostile_documents() -> Vec<Hostile> {
    let n = 60_000;
    let mut million = String::from("{\"http\":{\"middlewares\":{");
    for i in 0..1_000_000 {
        if i > 0 {
            million.push(',');
        }
        million.push_str(&format!("\"m{i}\":{{}}"));
    }
    million.push_str("}}}");
    let mut million_yaml = String::from("http:\n  routers:\n");
    for i in 0..1_000_000 {
        million_yaml.push_str(&format!("    r{i}: {{}}\n"));
    }
    vec![
        Hostile {
            what: "JSON nested 60,000 levels",
            doc: format!(
                "{{\"http\":{{\"routers\":{{\"deep\":{{\"rule\":{}{}}}}}}}}}",
                "[".repeat(n),
                "]".repeat(n)
            ),
            expect: &["router \"deep\": rule[0]", "nested deeper than 64 levels"],
        },
        Hostile {
            what: "YAML nested 60,000 levels (flow)",
            doc: format!(
                "http:\n  routers:\n    deep-yaml:\n      rule: {}{}\n",
                "{a: ".repeat(n),
                "}".repeat(n)
            ),
            expect: &["router \"deep-yaml\": rule.a.a.a", "nested deeper than 64 levels"],
        },
        Hostile {
            what: "1,000,000 resources (JSON)",
            doc: million,
            expect: &[
                "http.middlewares: the document defines more than 100000 resources",
            ],
        },
        Hostile {
            what: "1,000,000 resources (YAML)",
            doc: million_yaml,
            expect: &["http.routers: the document defines more than 100000 resources"],
        },
        Hostile {
            what: "JSON router defined twice",
            doc: r#"{"http":{"routers":{"dup":{"rule":"Path(`/a`)","service":"s"},"dup":{"rule":"Path(`/b`)","service":"s"}}}}"#.into(),
            expect: &["router \"dup\": defined twice (duplicate key \"dup\")"],
        },
        Hostile {
            what: "JSON field given twice",
            doc: r#"{"http":{"routers":{"twice":{"rule":"Path(`/a`)","rule":"Path(`/b`)"}}}}"#.into(),
            expect: &["router \"twice\": rule: duplicate key \"rule\""],
        },
        Hostile {
            what: "YAML router defined twice",
            doc: "http:\n  routers:\n    dup-yaml: {rule: \"Path(`/a`)\", service: s}\n    dup-yaml: {rule: \"Path(`/b`)\", service: s}\n".into(),
            expect: &["router \"dup-yaml\": defined twice (duplicate key \"dup-yaml\")"],
        },
        Hostile {
            what: "JSON trailing comma",
            doc: r#"{"http":{"routers":{"comma":{"rule":"Path(`/`)","service":"s",}}}}"#.into(),
            expect: &["router \"comma\": invalid JSON: trailing comma at line 1 column"],
        },
    ]
}

#[test]
fn hostile_documents_are_refused_without_an_election_or_a_stalled_leader() {
    let cluster = Cluster::start_with(3, &[INSECURE]);
    let endpoints = cluster.endpoints();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let leader_node = cluster.node(leader);
    let leader_api = leader_node.endpoint();
    let leader_http = leader_node.addrs.http.clone();
    let before_views = leadership(&cluster.leader_views());
    let (version_before, _) = get_config(&leader_api).unwrap();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let intervals_before: Vec<Vec<(f64, u64)>> = followers
        .iter()
        .map(|&f| interval_buckets(&cluster.node(f).metrics().unwrap()))
        .collect();
    assert!(
        intervals_before.iter().all(|b| !b.is_empty()),
        "{HISTOGRAM} missing on a follower"
    );

    let dir = tempfile::tempdir().unwrap();
    let docs = hostile_documents();

    // Probes of the leader while it refuses: /healthz, and small writes through the CLI.
    let stop = Arc::new(AtomicBool::new(false));
    let probe_max = Arc::new(Mutex::new((Duration::ZERO, 0u32)));
    let probe = {
        let (stop, probe_max, http) = (stop.clone(), probe_max.clone(), leader_http.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = http_get(&http, "/healthz");
                let took = t.elapsed();
                assert!(r.is_ok_and(|r| r.status == 200), "leader /healthz failed");
                let mut m = probe_max.lock().unwrap();
                m.0 = m.0.max(took);
                m.1 += 1;
                drop(m);
                // Pacing, not synchronisation: about 50 probes a second.
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let writes = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let writer = {
        let (stop, writes, endpoints) = (stop.clone(), writes.clone(), endpoints.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let doc = format!(
                    "http:\n  routers:\n    probe-{i}:\n      rule: \"Path(`/probe/{i}`)\"\n      service: probe\n  services:\n    probe:\n      loadBalancer:\n        servers: [{{url: \"http://127.0.0.1:9\"}}]\n"
                );
                let t = Instant::now();
                let out = switchyard_e2e::cli_stdin(&endpoints, &["apply", "-f", "-"], &doc);
                let took = t.elapsed();
                assert!(
                    out.success(),
                    "a small write during the hostile applies: {out}"
                );
                writes.lock().unwrap().push(took);
                i += 1;
            }
        })
    };

    let started = Instant::now();
    for (i, h) in docs.iter().enumerate() {
        let path = dir.path().join(format!("hostile-{i}.txt"));
        std::fs::write(&path, &h.doc).unwrap();
        let t = Instant::now();
        let out = cli(&leader_api, &["apply", "-f", path.to_str().unwrap()]).expect_failure();
        let took = t.elapsed();
        let line = out.stderr.trim();
        for e in h.expect {
            assert!(line.contains(e), "{}: expected {e:?} in: {out}", h.what);
        }
        assert!(
            line.ends_with("(code: INVALID_ARGUMENT)"),
            "{}: refused by the API: {out}",
            h.what
        );
        assert_eq!(line.lines().count(), 1, "{}: one line: {out}", h.what);
        eprintln!(
            "{} ({} bytes): refused in {took:.2?}: {}",
            h.what,
            h.doc.len(),
            line.chars().take(160).collect::<String>()
        );
    }

    // 50 MB: the CLI refuses it before sending; sent raw over gRPC, the node refuses it from
    // the message's length prefix; a 17 MB document (under the gRPC cap) by the size check.
    let big = format!("# {}\nhttp: {{}}\n", "x".repeat(50 * 1024 * 1024));
    let path = dir.path().join("fifty-megabytes.yaml");
    std::fs::write(&path, &big).unwrap();
    let out = cli(&leader_api, &["apply", "-f", path.to_str().unwrap()]).expect_failure();
    assert!(
        out.stderr
            .contains("larger than the limit of 16777216 bytes (16 MiB)"),
        "{out}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = |document: String| {
        rt.block_on(async {
            let mut c = AdminClient::connect(leader_api.clone())
                .await
                .unwrap()
                .max_encoding_message_size(64 * 1024 * 1024);
            let t = Instant::now();
            let r = c
                .apply(ApplyRequest {
                    document,
                    prune: false,
                    dry_run: false,
                    rollout: None,
                })
                .await;
            (r, t.elapsed())
        })
    };
    let (r, took) = raw(big.clone());
    let status = r.expect_err("a 50 MB apply must be refused");
    eprintln!(
        "50 MB over raw gRPC: refused in {took:.2?}: {:?} {}",
        status.code(),
        status.message()
    );
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    assert!(status.message().contains("too large"), "{status:?}");
    let seventeen = format!("# {}\nhttp: {{}}\n", "x".repeat(17 * 1024 * 1024 - 100));
    let (r, took) = raw(seventeen);
    let status = r.expect_err("a 17 MB apply must be refused");
    eprintln!(
        "17 MB over raw gRPC: refused in {took:.2?}: {:?} {}",
        status.code(),
        status.message()
    );
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("larger than the limit of 16777216 bytes"),
        "{status:?}"
    );
    let hostile_time = started.elapsed();

    // At least one small write finished after the hostile documents (the writer is not stuck).
    let writes_at_end = writes.lock().unwrap().len();
    switchyard_e2e::wait_until(
        Duration::from_secs(30),
        "a small write after the hostile documents",
        || writes.lock().unwrap().len() > writes_at_end,
    );
    stop.store(true, Ordering::SeqCst);
    probe.join().expect("probe thread");
    writer.join().expect("writer thread");

    // No election: same leader and term everywhere.
    let after_views = leadership(&cluster.leader_views());
    assert_eq!(before_views, after_views, "leadership changed");

    // Nothing hostile was proposed: none of its resources exist.
    let (version_after, config) = get_config(&leader_api).unwrap();
    let routers = config["http"]["routers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for name in ["deep", "deep-yaml", "dup", "twice", "dup-yaml", "comma"] {
        assert!(!routers.contains_key(name), "router {name} exists");
    }
    assert!(config["http"]["middlewares"].get("m0").is_none());
    assert!(
        version_after > version_before,
        "the small writes went through"
    );

    // Measured figures.
    let (probe_worst, probes) = *probe_max.lock().unwrap();
    let writes = writes.lock().unwrap().clone();
    let write_worst = writes.iter().max().copied().unwrap_or_default();
    let mut worst_interval = 0.0f64;
    let mut over_200ms = 0u64;
    let mut total = 0u64;
    for (f, before) in followers.iter().zip(&intervals_before) {
        let after = interval_buckets(&cluster.node(*f).metrics().unwrap());
        let deltas = bucket_deltas(before, &after);
        eprintln!("node {f}: append intervals per bucket (le, count): {deltas:?}");
        for (le, d) in deltas {
            total += d;
            if d > 0 {
                worst_interval = worst_interval.max(le);
            }
            if le > 0.2 {
                over_200ms += d;
            }
        }
    }
    eprintln!(
        "hostile phase {hostile_time:.1?}: {probes} /healthz probes of the leader, slowest {probe_worst:.1?}; \
         {} small writes, slowest {write_worst:.1?}; {total} append intervals on followers, \
         {over_200ms} above 200 ms, worst bucket le={worst_interval}s",
        writes.len()
    );
    // Generous bounds for a loaded 2-core machine that still rule out a stalled leader (the
    // 60,000-deep document stalled it for 7 s; the election timeout is 800 ms here). Measured on
    // a busy 2-core machine: every interval under 200 ms (heartbeat delay under 100 ms), /healthz
    // under 100 ms, small writes under 150 ms.
    assert!(
        worst_interval <= 0.5,
        "a follower waited more than 500 ms for the leader's heartbeat (interval 100 ms)"
    );
    assert!(
        probe_worst < Duration::from_secs(1),
        "leader /healthz took {probe_worst:?}"
    );
    assert!(
        write_worst < Duration::from_secs(10),
        "a small write took {write_worst:?}"
    );
}

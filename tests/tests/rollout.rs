//! Issue 11, must-show 4, 5 and 6: progressive rollout with automatic rollback, through the real
//! binaries. Three control nodes; proxies in zone-a, zone-b and zone-c; a route `app.test` whose
//! backend a rollout changes; traffic through every proxy for the whole test (the proxies report
//! per-version counters, the leader judges each stage on them).
//!
//! - A good change goes zone-a, then zone-b, then everywhere: at each stage the proxies it
//!   reached serve the new backend and the others the old one (requests and `get proxies`,
//!   checked with the rollout paused), and a config write during the rollout is refused.
//! - A bad change (the new backend answers 500) breaches at stage 1: every proxy is back on the
//!   previous config within bake + 5 s, `rollout status` says why, and the proxies of the
//!   untouched stages never served the bad backend. The time from the breach (the rollback's
//!   commit) to every proxy serving the previous config again is printed (BENCHMARKS.md).
//! - The leader is killed mid-stage; the new leader resumes and the rollout completes.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_e2e::backends::{HttpBackend, Mode};
use switchyard_e2e::client::{fetch, get, Req};
use switchyard_e2e::proxy::{
    applied_version, apply_wait, get_proxies, proxy_entry, Proxy, ProxySpec,
};
use switchyard_e2e::{cli, cli_stdin, wait_until, CliOutput, Cluster, PROXY_SETTLE};

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const STAGES: &str = "zone=zone-a,zone=zone-b,*";

fn app(backend: &HttpBackend) -> String {
    format!(
        r#"http:
  routers:
    app:
      rule: "Host(`app.test`)"
      service: app-svc
  services:
    app-svc:
      loadBalancer:
        servers:
          - url: "{}"
"#,
        backend.url()
    )
}

/// A cluster, one proxy per zone, and `app.test` on the `old` backend at every proxy.
struct Setup {
    c: Cluster,
    proxies: Vec<Proxy>,
    old: HttpBackend,
    /// The version every proxy held before the rollout.
    v_old: u64,
}

fn setup() -> Setup {
    let c = Cluster::start(3);
    let ep = c.endpoints();
    let proxies: Vec<Proxy> = ZONES
        .iter()
        .map(|z| Proxy::start(ProxySpec::new(&format!("p-{z}"), &ep).zone("r1", z)))
        .collect();
    for p in &proxies {
        switchyard_e2e::proxy::wait_attached(&ep, &p.id, PROXY_SETTLE);
    }
    let old = HttpBackend::start("old");
    let out = apply_wait(&ep, &app(&old), "60s", None);
    assert!(out.success(), "apply --wait: {}", out.stderr);
    let v_old = applied_version(&out).unwrap();
    Setup {
        c,
        proxies,
        old,
        v_old,
    }
}

/// One response seen through a proxy: (proxy index, status, backend name).
type Seen = (usize, u16, String);

/// Requests to `app.test` through every proxy, round after round, until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(proxies: &[Proxy]) -> Traffic {
        let addrs: Vec<String> = proxies.iter().map(|p| p.web().to_string()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let task = std::thread::spawn(move || {
            // Bounded: at most 10 minutes of rounds.
            let end = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                for (i, a) in addrs.iter().enumerate() {
                    if let Ok(r) = get(a, "app.test", "/") {
                        v.lock()
                            .unwrap()
                            .push((i, r.status, r.backend().unwrap_or_default()));
                    }
                }
                // Pacing (about 60 requests a second per proxy), not synchronisation.
                std::thread::sleep(Duration::from_millis(15));
            }
        });
        Traffic {
            stop,
            seen,
            task: Some(task),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            t.join().unwrap();
        }
        self.seen()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_rollout(ep: &str, doc: &str, bake: &str) -> u64 {
    let out = cli_stdin(
        ep,
        &[
            "apply",
            "-f",
            "-",
            "--rollout",
            STAGES,
            "--bake",
            bake,
            "--max-error-rate",
            "1%",
            "--max-p99",
            "5s",
        ],
        doc,
    );
    assert!(out.success(), "apply --rollout: {}", out.stderr);
    out.stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("rollout started: config version ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no version in {:?}", out.stdout))
}

fn status(ep: &str) -> Result<Value, String> {
    let out = cli(ep, &["-o", "json", "rollout", "status"]);
    if out.success() {
        Ok(out.json())
    } else {
        Err(out.stderr)
    }
}

/// The version `get proxies` says each proxy holds, in zone order.
fn versions(ep: &str, proxies: &[Proxy]) -> Result<Vec<u64>, String> {
    let doc = get_proxies(ep).map_err(|e| e.to_string())?;
    proxies
        .iter()
        .map(|p| {
            proxy_entry(&doc, &p.id)
                .and_then(|e| e["appliedVersion"].as_u64())
                .ok_or_else(|| format!("{} not listed: {doc}", p.id))
        })
        .collect()
}

fn backend_of(p: &Proxy) -> Result<(u16, String), String> {
    let r = get(p.web(), "app.test", "/")?;
    Ok((r.status, r.backend().unwrap_or_default()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ok(out: CliOutput, what: &str) -> CliOutput {
    assert!(out.success(), "{what}: {}", out.stderr);
    out
}

#[test]
fn a_good_change_is_promoted_stage_by_stage() {
    let s = setup();
    let ep = s.c.endpoints();
    let new = HttpBackend::start("new");
    let traffic = Traffic::start(&s.proxies);
    // A bake long enough for the pause below to land within the stage on a loaded machine.
    let v_new = start_rollout(&ep, &app(&new), "5s");
    assert!(v_new > s.v_old);

    // Stages 1 and 2: once the stage's proxies serve the new version, pause (so the check is not
    // racing the next promotion), check every proxy by request and by `get proxies`, resume.
    for stage in 1..=2usize {
        let reached = &s.proxies[..stage];
        for p in reached {
            p.wait_version(v_new, PROXY_SETTLE);
        }
        let st = ok(cli(&ep, &["rollout", "pause"]), "rollout pause");
        assert!(
            st.stdout.contains("paused") && st.stdout.contains(&format!("(stage {stage}/3)")),
            "paused at stage {stage}: {}",
            st.stdout
        );
        let want: Vec<u64> = (0..3)
            .map(|i| if i < stage { v_new } else { s.v_old })
            .collect();
        wait_until(PROXY_SETTLE, "get proxies to show the stage", || {
            let got = versions(&ep, &s.proxies)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("versions {got:?}, want {want:?}"))
            }
        });
        for (i, p) in s.proxies.iter().enumerate() {
            let want = if i < stage { "new" } else { "old" };
            assert_eq!(backend_of(p).unwrap(), (200, want.to_string()), "{}", p.id);
        }
        // A config write during the rollout is refused, naming the rollout.
        let out = cli_stdin(&ep, &["apply", "-f", "-"], &app(&s.old));
        assert!(!out.success(), "a write during a rollout was accepted");
        assert!(
            out.stderr
                .contains(&format!("a rollout of config version {v_new} is paused")),
            "{}",
            out.stderr
        );
        ok(cli(&ep, &["rollout", "resume"]), "rollout resume");
    }

    let done = wait_until(Duration::from_secs(60), "the rollout to complete", || {
        let st = status(&ep)?;
        if st["status"] == "completed" {
            Ok(st)
        } else {
            Err(format!("{st}"))
        }
    });
    let notes = done["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 3, "one verdict per stage: {done}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("stage 1/3 (zone=zone-a): promoted"),
        "{done}"
    );
    for p in &s.proxies {
        p.wait_version(v_new, PROXY_SETTLE);
        assert_eq!(backend_of(p).unwrap(), (200, "new".to_string()));
    }
    // The proxies reported their counters: the new version served requests.
    let doc = get_proxies(&ep).unwrap();
    let e = proxy_entry(&doc, "p-zone-a").unwrap();
    assert!(
        e["versionCounters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["version"] == v_new && c["requests"].as_u64() > Some(0)),
        "{e}"
    );
    // Each proxy moved from old to new once and never went back.
    let seen = traffic.finish();
    for (i, p) in s.proxies.iter().enumerate() {
        let names: Vec<&str> = seen
            .iter()
            .filter(|(j, ..)| *j == i)
            .map(|(_, _, b)| b.as_str())
            .collect();
        let first_new = names.iter().position(|b| *b == "new").unwrap();
        assert!(
            names[first_new..].iter().all(|b| *b == "new"),
            "{} went back to the old backend",
            p.id
        );
        assert!(seen.iter().all(|(_, status, _)| *status == 200));
    }
    let out = cli(&ep, &["rollout", "pause"]);
    assert!(
        !out.success() && out.stderr.contains("no rollout is in progress"),
        "{}",
        out.stderr
    );

    // `rollout abort` sends every proxy the previous config again, as a new version.
    // A stage that selects no attached proxy is warned about.
    let out = ok(
        cli_stdin(
            &ep,
            &[
                "apply",
                "-f",
                "-",
                "--rollout",
                "zone=zone-a,zone=nowhere,*",
                "--bake",
                "60s",
            ],
            &app(&s.old),
        ),
        "apply --rollout",
    );
    assert!(
        out.stderr
            .contains("warning: stage zone=nowhere selects none of the 3 attached proxies")
            && !out.stderr.contains("stage zone=zone-a"),
        "{}",
        out.stderr
    );
    let v_next = status(&ep).unwrap()["targetVersion"].as_u64().unwrap();
    s.proxies[0].wait_version(v_next, PROXY_SETTLE);
    assert_eq!(backend_of(&s.proxies[0]).unwrap(), (200, "old".to_string()));
    let out = ok(cli(&ep, &["rollout", "abort"]), "rollout abort");
    assert!(out.stdout.contains(": aborted"), "{}", out.stdout);
    let back = status(&ep).unwrap()["rollbackVersion"].as_u64().unwrap();
    for p in &s.proxies {
        p.wait_version(back, PROXY_SETTLE);
        assert_eq!(backend_of(p).unwrap(), (200, "new".to_string()), "{}", p.id);
    }
    // Writes are accepted again.
    ok(cli_stdin(&ep, &["apply", "-f", "-"], &app(&s.old)), "apply");
}

#[test]
fn a_bad_change_breaches_at_stage_one_and_every_proxy_rolls_back() {
    let s = setup();
    let ep = s.c.endpoints();
    let bad = HttpBackend::start("bad");
    bad.set_mode(Mode::Status(500));
    let traffic = Traffic::start(&s.proxies);
    let bake = Duration::from_secs(3);
    let v_new = start_rollout(&ep, &app(&bad), "3s");
    // The first stage starts when the rollout commits, just before `apply` returns.
    let started = Instant::now();

    // Rolled back, and every proxy serves the previous config again (as the rollback's
    // version), within bake + 5 s of the start.
    let st = wait_until(bake + Duration::from_secs(30), "the rollback", || {
        let st = status(&ep)?;
        if st["status"] == "rolled-back" {
            Ok(st)
        } else {
            Err(format!("{st}"))
        }
    });
    let v_back = st["rollbackVersion"].as_u64().unwrap();
    assert!(v_back > v_new, "{st}");
    let mut all_back_ms = 0;
    wait_until(bake + Duration::from_secs(30), "every proxy back", || {
        for p in &s.proxies {
            let v = p.config_version()?;
            if v < v_back {
                return Err(format!("{} at {v}", p.id));
            }
        }
        all_back_ms = now_ms();
        Ok(())
    });
    let elapsed = started.elapsed();
    let breach_to_back = all_back_ms.saturating_sub(st["endedAtUnixMs"].as_u64().unwrap());
    println!(
        "rollout: breach (rollback committed) to every proxy on the previous config: {breach_to_back} ms; rollout start to every proxy back: {} ms (bake {} ms)",
        elapsed.as_millis(),
        bake.as_millis()
    );
    assert!(
        elapsed < bake + Duration::from_secs(5),
        "every proxy back {elapsed:?} after the rollout started (bake {bake:?} + 5 s allowed)"
    );
    for p in &s.proxies {
        assert_eq!(backend_of(p).unwrap(), (200, "old".to_string()), "{}", p.id);
    }

    // `rollout status` says why, in words.
    let out = ok(cli(&ep, &["rollout", "status"]), "rollout status");
    assert!(out.stdout.contains(": rolled-back"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "reason: stage 1/3 (zone=zone-a): error rate 100.00% on the new version is above the allowed 1.00%"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("previous config back as version {v_back}")),
        "{}",
        out.stdout
    );

    // The dashboard's status API carries it too (the dashboard shows it above every page).
    let mut req = Req::get("dashboard", "/api/switchyard/status");
    req.headers.push((
        "authorization".into(),
        format!("Bearer {}", s.c.creds().token),
    ));
    let r = fetch(&s.c.nodes[0].addrs.http, &req).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let body: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(body["rollout"]["status"], "rolled-back", "{body}");
    assert_eq!(body["rollout"]["rollbackVersion"], v_back, "{body}");
    assert!(
        body["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("error rate 100.00%"),
        "{body}"
    );

    // Zone-a served the bad backend (the test can fail); zone-b and zone-c never did.
    let seen = traffic.finish();
    assert!(
        seen.iter().any(|(i, status, _)| *i == 0 && *status == 500),
        "zone-a never saw the bad version"
    );
    for (i, status, backend) in &seen {
        if *i > 0 {
            assert_eq!(
                (*status, backend.as_str()),
                (200, "old"),
                "{} saw the bad version",
                s.proxies[*i].id
            );
        }
    }
    assert!(bad.hits() > 0);
    // Plain writes work again.
    ok(cli_stdin(&ep, &["apply", "-f", "-"], &app(&s.old)), "apply");
}

#[test]
fn a_rollout_survives_the_leader_being_killed_mid_stage() {
    let mut s = setup();
    let ep = s.c.endpoints();
    let new = HttpBackend::start("new");
    let traffic = Traffic::start(&s.proxies);
    let v_new = start_rollout(&ep, &app(&new), "3s");
    // Mid stage 1: zone-a serves the new version; kill the leader.
    s.proxies[0].wait_version(v_new, PROXY_SETTLE);
    let st = status(&ep).unwrap();
    assert_eq!(st["status"], "running", "{st}");
    let leader = s.c.wait_for_leader(Duration::from_secs(30));
    s.c.node_mut(leader).kill();
    let ep = s.c.running_endpoints();

    let done = wait_until(Duration::from_secs(90), "the rollout to complete", || {
        let st = status(&ep)?;
        match st["status"].as_str() {
            Some("completed") => Ok(st),
            Some("running") | Some("paused") => Err(format!("{st}")),
            _ => panic!("the rollout did not complete: {st}"),
        }
    });
    assert_eq!(done["notes"].as_array().unwrap().len(), 3, "{done}");
    for p in &s.proxies {
        p.wait_version(v_new, PROXY_SETTLE);
        assert_eq!(backend_of(p).unwrap(), (200, "new".to_string()), "{}", p.id);
    }
    let seen = traffic.finish();
    assert!(seen.iter().any(|(i, _, b)| *i == 2 && b == "new"));
    let _ = s.old;
}

//! Issue 3, must-show 3: every control node is stopped. Both proxies keep serving; a proxy
//! restarted with `--cache-dir` while no node is reachable serves its cached config (and says so
//! in `/readyz`); when the nodes return, both proxies catch up with a change made after that.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{get, LoadLoop, Req};
use switchyard_e2e::{
    applied_version, apply_wait, apply_yaml, assert_holds_for, host_route, proxy_status,
    wait_attached, wait_until, Cluster, Proxy, ProxySpec, PROXY_SETTLE,
};

fn serves(p: &Proxy, host: &str) -> Result<(), String> {
    let r = get(p.web(), host, "/")?;
    if r.status == 200 && r.backend().as_deref() == Some("b1") {
        Ok(())
    } else {
        Err(format!("proxy {}: {r}", p.id))
    }
}

#[test]
fn proxies_serve_through_a_control_plane_outage_and_from_cache_after_a_restart() {
    let mut c = Cluster::start_each(
        &[],
        &[
            vec!["--region", "r1", "--zone", "a"],
            vec!["--region", "r1", "--zone", "b"],
            vec!["--region", "r2", "--zone", "c"],
        ],
    );
    let backend = HttpBackend::start("b1");
    let mut pa = Proxy::start(
        ProxySpec::new("p-a", &c.endpoints())
            .zone("r1", "a")
            .with_cache(),
    );
    let pb = Proxy::start(ProxySpec::new("p-b", &c.endpoints()).zone("r1", "b"));
    wait_attached(&c.endpoints(), "p-a", PROXY_SETTLE);
    wait_attached(&c.endpoints(), "p-b", PROXY_SETTLE);
    let out =
        apply_wait(&c.endpoints(), &host_route("before", &backend), "30s", None).expect_success();
    let v1 = applied_version(&out).unwrap();
    serves(&pa, "before.test").unwrap();
    serves(&pb, "before.test").unwrap();
    // The cache is written after the ACK, asynchronously.
    wait_until(PROXY_SETTLE, "p-a's cache file", || {
        std::fs::read_dir(pa.cache_dir()).is_ok_and(|mut d| d.next().is_some())
    });

    // Client loops on both proxies across the whole outage.
    let pace = Duration::from_millis(3);
    let la = LoadLoop::start("p-a", pa.web(), Req::get("before.test", "/"), pace);
    let lb = LoadLoop::start("p-b", pb.web(), Req::get("before.test", "/"), pace);
    la.wait_for_more(20, PROXY_SETTLE);
    lb.wait_for_more(20, PROXY_SETTLE);

    for n in &mut c.nodes {
        n.stop();
    }
    for p in [&pa, &pb] {
        let body = wait_until(
            PROXY_SETTLE,
            &format!(
                "proxy {} /readyz to report that no control node is reachable",
                p.id
            ),
            || match p.readyz() {
                Ok((200, b)) if b.contains("no control node reachable") => Ok(b),
                other => Err(format!("{other:?}")),
            },
        );
        assert!(body.contains(&format!("v{v1}")), "{body}");
    }
    // Serving goes on (the loops run meanwhile; fresh connections work too).
    assert_holds_for(Duration::from_secs(2), "both proxies serving", || {
        serves(&pa, "before.test").and_then(|_| serves(&pb, "before.test"))
    });
    la.wait_for_more(50, PROXY_SETTLE);
    lb.wait_for_more(50, PROXY_SETTLE);
    for l in [la, lb] {
        let (samples, _) = l.stop();
        assert!(
            samples.iter().all(|s| s.outcome.is_ok()),
            "a client loop failed during the outage: {}",
            LoadLoop::summary(&samples)
        );
    }

    // p-a restarts while no control node is reachable: it serves its cached config.
    pa.restart();
    let body = pa.wait_ready(PROXY_SETTLE);
    assert!(
        body.contains("cached") && body.contains(&format!("v{v1}")),
        "/readyz must say it serves the cached config v{v1}: {body:?}"
    );
    serves(&pa, "before.test").unwrap();
    assert!(
        pa.log_text().contains("cached"),
        "the log mentions the cached config:\n{}",
        pa.log_tail(30)
    );
    // p-b never stopped: still serving.
    serves(&pb, "before.test").unwrap();

    // The control plane returns; a change made now reaches both proxies.
    for n in &mut c.nodes {
        n.restart();
    }
    c.wait_for_leader(PROXY_SETTLE);
    let v2 = wait_until(PROXY_SETTLE, "a write after the restart", || {
        apply_yaml(&c.endpoints(), &host_route("after", &backend))
    });
    assert!(v2 > v1);
    for p in [&pa, &pb] {
        p.wait_version(v2, PROXY_SETTLE);
        serves(p, "after.test").unwrap();
        serves(p, "before.test").unwrap();
        let st = wait_until(PROXY_SETTLE, "get proxies to show the catch-up", || {
            let e = proxy_status(&c.endpoints(), &p.id)?;
            if e["appliedVersion"].as_u64().unwrap_or(0) >= v2 {
                Ok(e)
            } else {
                Err(e.to_string())
            }
        });
        eprintln!("proxy {} caught up: {st}", p.id);
        let (code, body) = p.readyz().unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("attached to"), "{body}");
    }
}

//! Issue 3, must-show 2: the control node a proxy is attached to is killed (`kill -9`). The proxy
//! re-attaches to another node within 2 s, keeps serving throughout (a client loop on a
//! keep-alive connection sees no failure), and applies changes made afterwards. A second test
//! checks that on failover the proxy prefers a node of its own region.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{get, LoadLoop, Req};
use switchyard_e2e::{
    apply_yaml, assert_holds_for, host_route, proxy_status, wait_attached, wait_until,
    zoned_cluster, Cluster, Proxy, ProxySpec, PROXY_SETTLE,
};

/// The bound the issue sets for re-attaching.
const REATTACH: Duration = Duration::from_secs(2);

/// Endpoints of every node but `except`.
fn others(c: &Cluster, except: u64) -> String {
    c.nodes
        .iter()
        .filter(|n| n.id != except)
        .map(|n| n.endpoint())
        .collect::<Vec<_>>()
        .join(",")
}

/// Kills the node `proxy` is attached to; returns (old node, new node, time to re-attach as
/// seen by `get proxies` on the survivors).
fn kill_attached_node(c: &mut Cluster, proxy: &str) -> (u64, u64, Duration) {
    let old = wait_attached(&c.endpoints(), proxy, PROXY_SETTLE)["node"]
        .as_u64()
        .unwrap();
    assert!(old >= 1, "attached to node {old}");
    let survivors = others(c, old);
    c.node_mut(old).kill();
    let killed = Instant::now();
    let (new, took) = wait_until(
        PROXY_SETTLE,
        &format!("proxy {proxy} to re-attach to a node other than {old}"),
        || {
            let e = proxy_status(&survivors, proxy)?;
            match e["node"].as_u64() {
                Some(n) if n != old && n != 0 => Ok((n, killed.elapsed())),
                other => Err(format!("node {other:?}: {e}")),
            }
        },
    );
    eprintln!("proxy {proxy}: node {old} killed; re-attached to node {new} after {took:.0?}");
    (old, new, took)
}

#[test]
fn proxy_reattaches_within_2s_when_its_control_node_is_killed_and_keeps_serving() {
    let mut c = zoned_cluster();
    let backend = HttpBackend::start("b1");
    let proxy = Proxy::start(ProxySpec::new("p1", &c.endpoints()).zone("r1", "a"));
    let v = apply_yaml(&c.endpoints(), &host_route("live", &backend)).unwrap();
    proxy.wait_version(v, PROXY_SETTLE);

    let load = LoadLoop::start(
        "live",
        proxy.web(),
        Req::get("live.test", "/"),
        Duration::from_millis(2),
    );
    load.wait_for_more(50, PROXY_SETTLE);

    let (old, new, took) = kill_attached_node(&mut c, "p1");
    assert!(
        took <= REATTACH,
        "proxy re-attached to node {new} {took:.2?} after node {old} was killed (bound: {REATTACH:?})"
    );
    // Serving goes on through the whole re-attach bound (and a possible election).
    assert_holds_for(REATTACH, "a client loop without failures", || {
        let f = load.failures();
        if f.is_empty() {
            Ok(())
        } else {
            Err(format!("{f:?}"))
        }
    });
    let ready = proxy.readyz().expect("readyz");
    assert_eq!(ready.0, 200, "{ready:?}");
    assert!(
        ready.1.contains(&c.node(new).addrs.api),
        "/readyz names the node it is attached to ({}): {ready:?}",
        c.node(new).addrs.api
    );

    // A later change, made through the survivors (the killed node may have been the leader, so
    // retry until a new one is elected), reaches the proxy.
    let survivors = others(&c, old);
    let v2 = wait_until(PROXY_SETTLE, "a write through the surviving nodes", || {
        apply_yaml(&survivors, &host_route("later", &backend))
    });
    proxy.wait_version(v2, PROXY_SETTLE);
    let r = get(proxy.web(), "later.test", "/").expect("request");
    assert_eq!(r.status, 200, "{r}");
    let e = proxy_status(&survivors, "p1").unwrap();
    assert!(e["appliedVersion"].as_u64().unwrap() >= v2, "{e}");

    load.wait_for_more(50, PROXY_SETTLE);
    let (samples, connects) = load.stop();
    let failures = samples.iter().filter(|s| s.outcome.is_err()).count();
    assert_eq!(
        failures,
        0,
        "the client loop saw failures: {}",
        LoadLoop::summary(&samples)
    );
    assert_eq!(connects, 1, "the keep-alive connection survived");
    eprintln!("client loop: {}", LoadLoop::summary(&samples));
}

#[test]
fn on_failover_a_proxy_prefers_a_control_node_of_its_own_region() {
    let mut c = zoned_cluster();
    let backend = HttpBackend::start("b1");
    // Operator order: own zone, other region, own region. After node 1 dies the proxy must
    // pick node 2 (same region r1), not node 3 (listed earlier, region r2).
    let control = [1u64, 3, 2]
        .iter()
        .map(|id| c.node(*id).endpoint())
        .collect::<Vec<_>>()
        .join(",");
    let proxy = Proxy::start(ProxySpec::new("p1", &control).zone("r1", "a"));
    let v = apply_yaml(&c.endpoints(), &host_route("live", &backend)).unwrap();
    proxy.wait_version(v, PROXY_SETTLE);
    let first = wait_attached(&c.endpoints(), "p1", PROXY_SETTLE)["node"]
        .as_u64()
        .unwrap();
    assert_eq!(first, 1, "attached to its own zone's node first");
    let (_, new, _) = kill_attached_node(&mut c, "p1");
    assert_eq!(
        new, 2,
        "after node 1 died the proxy (region r1) must prefer node 2 (r1) over node 3 (r2)"
    );
}

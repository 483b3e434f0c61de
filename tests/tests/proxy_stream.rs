//! Issue 3, must-show 1: three control nodes and two proxies in different zones. A route applied
//! through any node serves traffic on both proxies, and `apply --wait` returns only once both
//! proxies ACKed the new version (and fails, naming the proxy, when one cannot).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::get;
use switchyard_e2e::{
    applied_version, apply_wait, get_proxies, host_route, proxy_entry, wait_attached, wait_until,
    zoned_cluster, Proxy, ProxySpec, PROXY_SETTLE,
};

fn signal(p: &Proxy, sig: &str) {
    let pid = p.pid().expect("proxy runs").to_string();
    let st = Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("running kill");
    assert!(st.success(), "kill {sig} {pid}");
}

#[test]
fn route_applied_through_any_node_serves_on_both_proxies_and_apply_wait_waits_for_both() {
    let c = zoned_cluster();
    let backend = HttpBackend::start("b1");
    let pa = Proxy::start(
        ProxySpec::new("p-a", &c.endpoints())
            .zone("r1", "a")
            .label("tier", "edge"),
    );
    let pb = Proxy::start(ProxySpec::new("p-b", &c.endpoints()).zone("r1", "b"));
    wait_attached(&c.endpoints(), "p-a", PROXY_SETTLE);
    wait_attached(&c.endpoints(), "p-b", PROXY_SETTLE);

    // Every node lists both proxies, cluster-wide, with what they said about themselves.
    for n in &c.nodes {
        let doc = wait_until(
            PROXY_SETTLE,
            &format!("node {} to list both proxies", n.id),
            || {
                let doc = get_proxies(&n.endpoint()).map_err(|e| e.to_string())?;
                if proxy_entry(&doc, "p-a").is_some() && proxy_entry(&doc, "p-b").is_some() {
                    Ok(doc)
                } else {
                    Err(doc.to_string())
                }
            },
        );
        assert_eq!(
            doc["unreachableNodes"].as_array().map(Vec::len),
            Some(0),
            "{doc:#}"
        );
        let a = proxy_entry(&doc, "p-a").unwrap();
        assert_eq!(a["region"], "r1", "{doc:#}");
        assert_eq!(a["zone"], "a", "{doc:#}");
        assert_eq!(a["labels"]["tier"], "edge", "{doc:#}");
        assert!(
            a["entrypoints"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x == "web")),
            "{doc:#}"
        );
        let b = proxy_entry(&doc, "p-b").unwrap();
        assert_eq!(b["zone"], "b", "{doc:#}");
        assert!(b["node"].as_u64().is_some_and(|id| id >= 1), "{doc:#}");
    }

    for n in &c.nodes {
        let name = format!("via-node{}", n.id);
        let out =
            apply_wait(&n.endpoint(), &host_route(&name, &backend), "30s", None).expect_success();
        let v = applied_version(&out).unwrap_or_else(|| panic!("no version in {out}"));
        assert!(
            out.stdout
                .contains(&format!("2 proxies at config version {v} or later")),
            "apply --wait must report both proxies: {out}"
        );
        eprintln!(
            "apply --wait through node {} took {:.0?}",
            n.id, out.elapsed
        );

        // When apply --wait returned, both proxies had ACKed: no waiting from here on.
        let doc = get_proxies(&n.endpoint()).expect("get proxies");
        for id in ["p-a", "p-b"] {
            let e = proxy_entry(&doc, id).unwrap_or_else(|| panic!("{id} missing: {doc:#}"));
            let applied = e["appliedVersion"].as_u64().unwrap_or(0);
            assert!(
                applied >= v,
                "{id} at v{applied} < v{v} after apply --wait returned: {doc:#}"
            );
        }
        for p in [&pa, &pb] {
            let have = p.config_version().expect("proxy metrics");
            assert!(have >= v, "proxy {} serves v{have} < v{v}", p.id);
            let r = get(p.web(), &format!("{name}.test"), "/hello?x=1")
                .unwrap_or_else(|e| panic!("proxy {}: {e}", p.id));
            assert_eq!(r.status, 200, "proxy {}: {r}", p.id);
            let echo = r.json();
            assert_eq!(echo["name"], "b1", "{r}");
            assert_eq!(echo["pathAndQuery"], "/hello?x=1", "{r}");
        }
    }

    // Unknown hosts are 404 on both.
    for p in [&pa, &pb] {
        let r = get(p.web(), "nobody.test", "/").expect("request");
        assert_eq!(r.status, 404, "proxy {}: {r}", p.id);
    }

    // --wait-selector waits for the matching proxies only.
    let out = apply_wait(
        &c.nodes[0].endpoint(),
        &host_route("selected", &backend),
        "30s",
        Some("zone=b"),
    )
    .expect_success();
    let v = applied_version(&out).unwrap();
    assert!(
        out.stdout
            .contains(&format!("1 proxy at config version {v} or later")),
        "{out}"
    );
    assert!(pb.config_version().unwrap() >= v);

    // A proxy that cannot ACK (frozen with SIGSTOP: still connected, its TCP connection open)
    // makes apply --wait fail once its timeout passes, naming that proxy.
    signal(&pb, "-STOP");
    let out = apply_wait(
        &c.nodes[1].endpoint(),
        &host_route("frozen", &backend),
        "2s",
        None,
    );
    signal(&pb, "-CONT");
    assert!(
        !out.success(),
        "apply --wait must not succeed while p-b cannot ACK: {out}"
    );
    assert!(out.stderr.contains("p-b"), "the error names p-b: {out}");
    assert!(!out.stderr.contains("p-a"), "p-a did ACK: {out}");
    let v = applied_version(&out).unwrap_or_else(|| panic!("the write itself committed: {out}"));
    // Once thawed, it catches up.
    pb.wait_version(v, PROXY_SETTLE);
    let r = get(pb.web(), "frozen.test", "/").expect("request");
    assert_eq!(r.status, 200, "{r}");
}

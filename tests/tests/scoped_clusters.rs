//! Issue 11, must-show 3: scoped proxy clusters. Proxies of `edge-eu` and `edge-us`
//! (`switchyard-proxy --cluster`) get only their routers: a request for the other cluster's
//! host is a 404 and its config is absent from the proxy's `--cache-dir` file; an unscoped
//! router reaches both (and a proxy of the default cluster gets only unscoped routers). Moving a
//! router between clusters reaches both sides (a delta adds it on one, removes it on the other);
//! `get proxies` shows each proxy's cluster and `apply --wait --wait-selector cluster=…` waits on
//! one cluster.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::get;
use switchyard_e2e::proxy::{
    applied_version, apply_wait, get_proxies, proxy_entry, Proxy, ProxySpec,
};
use switchyard_e2e::{wait_until, Cluster, PROXY_SETTLE};

fn doc(eu: &HttpBackend, us: &HttpBackend, all: &HttpBackend, us_clusters: &str) -> String {
    format!(
        r#"http:
  routers:
    eu-app:
      rule: "Host(`eu.test`)"
      service: eu-svc
      middlewares: [eu-headers]
      clusters: [edge-eu]
    us-app:
      rule: "Host(`us.test`)"
      service: us-svc
      clusters: {us_clusters}
    global:
      rule: "Host(`all.test`)"
      service: all-svc
  middlewares:
    eu-headers:
      headers:
        customResponseHeaders:
          X-Cluster: edge-eu
  services:
    eu-svc:
      loadBalancer:
        servers: [{{url: "{}"}}]
    us-svc:
      loadBalancer:
        servers: [{{url: "{}"}}]
    all-svc:
      loadBalancer:
        servers: [{{url: "{}"}}]
"#,
        eu.url(),
        us.url(),
        all.url()
    )
}

/// The status and backend name of `GET http://host/` through `proxy`.
fn hit(proxy: &Proxy, host: &str) -> (u16, String) {
    let r = get(proxy.web(), host, "/").unwrap_or_else(|e| panic!("{host} via {}: {e}", proxy.id));
    (r.status, r.backend().unwrap_or_default())
}

fn cache_text(proxy: &Proxy, file: &str) -> String {
    let path = proxy.cache_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn each_cluster_gets_its_routers_and_the_unscoped_ones() {
    let c = Cluster::start(1);
    let ep = c.endpoints();
    let (eu, us, all) = (
        HttpBackend::start("eu"),
        HttpBackend::start("us"),
        HttpBackend::start("all"),
    );
    let p_eu = Proxy::start(
        ProxySpec::new("edge-eu-1", &ep)
            .zone("eu", "eu-1")
            .with_cache()
            .args(&["--cluster", "edge-eu"]),
    );
    let p_us = Proxy::start(
        ProxySpec::new("edge-us-1", &ep)
            .zone("us", "us-1")
            .with_cache()
            .args(&["--cluster", "edge-us"]),
    );
    let p_default = Proxy::start(ProxySpec::new("plain-1", &ep).with_cache());
    for id in ["edge-eu-1", "edge-us-1", "plain-1"] {
        switchyard_e2e::proxy::wait_attached(&ep, id, PROXY_SETTLE);
    }

    // `apply --wait`: every proxy ACKs the version, whatever part of it its cluster serves.
    let out = apply_wait(&ep, &doc(&eu, &us, &all, "[edge-us]"), "60s", None);
    assert!(out.success(), "apply --wait: {}", out.stderr);
    let v1 = applied_version(&out).unwrap();
    for p in [&p_eu, &p_us, &p_default] {
        p.wait_version(v1, PROXY_SETTLE);
    }

    assert_eq!(hit(&p_eu, "eu.test"), (200, "eu".into()));
    assert_eq!(
        hit(&p_eu, "us.test").0,
        404,
        "edge-eu serves an edge-us router"
    );
    assert_eq!(hit(&p_eu, "all.test"), (200, "all".into()));
    assert_eq!(hit(&p_us, "us.test"), (200, "us".into()));
    assert_eq!(
        hit(&p_us, "eu.test").0,
        404,
        "edge-us serves an edge-eu router"
    );
    assert_eq!(hit(&p_us, "all.test"), (200, "all".into()));
    assert_eq!(hit(&p_default, "all.test"), (200, "all".into()));
    assert_eq!(hit(&p_default, "eu.test").0, 404);
    assert_eq!(hit(&p_default, "us.test").0, 404);
    let r = get(p_eu.web(), "eu.test", "/").unwrap();
    assert_eq!(r.header("x-cluster").as_deref(), Some("edge-eu"));

    // `explain --cluster` answers as that cluster's proxies route.
    let explain = |cluster: &str, url: &str| {
        let out = switchyard_e2e::cli(
            &ep,
            &["-o", "json", "explain", "--cluster", cluster, "GET", url],
        );
        // Exit status 1 when no router matches (the proxy would answer 404); JSON either way.
        let winner = out.json()["winner"]["name"].as_str().map(str::to_string);
        assert_eq!(
            out.success(),
            winner.is_some(),
            "explain --cluster {cluster} {url}: {out}"
        );
        winner
    };
    assert_eq!(
        explain("edge-eu", "http://eu.test/").as_deref(),
        Some("eu-app")
    );
    assert_eq!(explain("edge-us", "http://eu.test/"), None);
    assert_eq!(
        explain("edge-us", "http://all.test/").as_deref(),
        Some("global")
    );
    let bad = switchyard_e2e::cli(
        &ep,
        &[
            "explain",
            "--cluster",
            "Bad Name!",
            "GET",
            "http://eu.test/",
        ],
    );
    assert!(!bad.success() && bad.stderr.contains("--cluster"), "{bad}");

    // The other cluster's config never reached the proxy: not its router, service, middleware
    // or backend address.
    let eu_cache = cache_text(&p_eu, "config-edge-eu.json");
    assert!(
        eu_cache.contains("eu.test") && eu_cache.contains("all.test"),
        "{eu_cache}"
    );
    for absent in ["us.test", "us-svc", &us.url()] {
        assert!(
            !eu_cache.contains(absent),
            "edge-eu cache holds {absent:?}: {eu_cache}"
        );
    }
    let us_cache = cache_text(&p_us, "config-edge-us.json");
    assert!(
        us_cache.contains("us.test") && us_cache.contains("all.test"),
        "{us_cache}"
    );
    for absent in ["eu.test", "eu-svc", "eu-headers", &eu.url()] {
        assert!(
            !us_cache.contains(absent),
            "edge-us cache holds {absent:?}: {us_cache}"
        );
    }
    let plain_cache = cache_text(&p_default, "config.json");
    assert!(plain_cache.contains("all.test"));
    assert!(!plain_cache.contains("eu.test") && !plain_cache.contains("us.test"));

    // `get proxies` names each proxy's cluster.
    let proxies = get_proxies(&ep).unwrap();
    for (id, cluster) in [
        ("edge-eu-1", "edge-eu"),
        ("edge-us-1", "edge-us"),
        ("plain-1", "default"),
    ] {
        let e = proxy_entry(&proxies, id).unwrap_or_else(|| panic!("{id}: {proxies}"));
        assert_eq!(e["cluster"], cluster, "{e}");
    }

    // Move `us-app` to edge-eu: a delta adds it there and removes it from edge-us. The wait is
    // on edge-eu's proxies only.
    let out = apply_wait(
        &ep,
        &doc(&eu, &us, &all, "[edge-eu]"),
        "60s",
        Some("cluster=edge-eu"),
    );
    assert!(out.success(), "apply --wait: {}", out.stderr);
    assert!(
        out.stdout.contains("1 proxy at config version"),
        "the selector keeps edge-eu's one proxy: {}",
        out.stdout
    );
    let v2 = applied_version(&out).unwrap();
    p_us.wait_version(v2, PROXY_SETTLE);
    assert_eq!(hit(&p_eu, "us.test"), (200, "us".into()));
    assert_eq!(hit(&p_us, "us.test").0, 404, "moved away from edge-us");
    wait_until(
        Duration::from_secs(30),
        "edge-us's cache without us-app",
        || {
            let t = cache_text(&p_us, "config-edge-us.json");
            if t.contains("us.test") {
                Err("us.test still cached".to_string())
            } else {
                Ok(())
            }
        },
    );

    // A bad cluster name is refused, naming the router and field, and changes nothing.
    let bad = doc(&eu, &us, &all, "[\"edge us\"]");
    let out = switchyard_e2e::cli_stdin(&ep, &["apply", "-f", "-"], &bad);
    assert!(!out.success());
    assert!(
        out.stderr.contains("router \"us-app\"") && out.stderr.contains("clusters[0]"),
        "{}",
        out.stderr
    );
    assert_eq!(switchyard_e2e::config_version(&ep), v2);
}

//! Allocation and memory checks with a counting global allocator. One test function only, so
//! no other test thread allocates while a region is measured.

use std::alloc::System;
use std::hint::black_box;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use switchyard_config::rules::{self, RequestView};
use switchyard_config::{DynamicConfig, Router};
use switchyard_router::compile;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn config(n: usize) -> DynamicConfig {
    let mut cfg = DynamicConfig::default();
    for i in 0..n {
        cfg.http.routers.insert(
            format!("svc{i}"),
            Router {
                rule: format!("Host(`svc{i}.example.com`) && PathPrefix(`/api`)").into(),
                service: format!("svc{i}@file").into(),
                ..Router::default()
            },
        );
    }
    cfg.http.routers.insert(
        "wild".to_string(),
        Router {
            rule: "Host(`*.wild.example.com`)".into(),
            service: "wild@file".into(),
            ..Router::default()
        },
    );
    cfg
}

fn req(host: &str) -> RequestView<'_> {
    RequestView {
        method: "GET",
        host,
        path: "/api/x",
        query: None,
        headers: &[],
        client_ip: None,
    }
}

#[test]
fn index_does_not_allocate_and_memory_per_route_is_bounded() {
    const N: usize = 10_000;
    let cfg = config(N);
    let eps = vec!["web".to_string(), "websecure".to_string()];

    let region = Region::new(GLOBAL);
    let table = compile(&cfg, Some(&eps)).expect("compiles");
    let s = region.change();
    let live = s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated;
    let per_route = live as usize / table.len();
    println!("{N} routes: {live} bytes live after compile, {per_route} bytes/route");
    assert!(per_route < 2048, "{per_route} bytes per route");

    // Lookups with no candidate (unknown host, any case, with a port, unknown entry point)
    // never allocate: the index is probed with a borrowed or stack-lowercased key.
    let hosts = [
        "unknown.example.com",
        "UNKNOWN.Example.com:8080",
        "a.b.c.wild.example.com",
        "",
        "[::1]:80",
    ];
    let region = Region::new(GLOBAL);
    for h in hosts {
        assert!(black_box(table.lookup("web", &req(h))).is_none());
        assert!(black_box(table.lookup("nope", &req(h))).is_none());
    }
    let s = region.change();
    assert_eq!(s.allocations + s.reallocations, 0, "{s:?}");

    // A hit evaluates exactly one rule; whatever that rule's evaluation allocates is the only
    // allocation: the canonical host inside switchyard_config's evaluator, lowercased into a
    // new string only when the request host has uppercase (or non-ASCII) letters.
    let region = Region::new(GLOBAL);
    let hit = table
        .lookup("web", &req("SVC42.example.com:443"))
        .map(|r| &*r.name);
    let s = region.change();
    assert_eq!(hit, Some("svc42"));
    println!(
        "allocations for one hit (uppercase host): {}",
        s.allocations
    );
    assert!(s.allocations <= 1, "{s:?}");

    // An already canonical host is borrowed: a hit does not allocate at all.
    let region = Region::new(GLOBAL);
    for h in [
        "svc42.example.com",
        "svc7.example.com:443",
        "a.wild.example.com.",
    ] {
        assert!(black_box(table.lookup("web", &req(h))).is_some(), "{h}");
    }
    let s = region.change();
    assert_eq!(s.allocations + s.reallocations, 0, "{s:?}");

    // Evaluating Host(`a.example`) against the host "a.example" does not allocate.
    let rule = rules::compile("Host(`a.example`)").expect("compiles");
    let region = Region::new(GLOBAL);
    assert!(black_box(&rule).matches(black_box(&req("a.example"))));
    assert!(!black_box(&rule).matches(black_box(&req("b.example:80"))));
    let s = region.change();
    assert_eq!(s.allocations + s.reallocations, 0, "{s:?}");
}

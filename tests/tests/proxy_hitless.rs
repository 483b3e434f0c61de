//! Issue 3, must-show 4: under steady load (client loops on keep-alive connections), 100 config
//! changes in a row — applied through the CLI, each waited for with `apply --wait` so every one
//! is compiled and swapped in while requests flow — cause zero failed requests. Half the changes
//! add routers, half change a header middleware on the very router under load.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{get, LoadLoop, Req, Resp};
use switchyard_e2e::{applied_version, apply_wait, single_node_stack, wait_attached, PROXY_SETTLE};

const CHANGES: usize = 100;

fn base(backend: &HttpBackend) -> String {
    format!(
        r#"http:
  routers:
    hot:
      rule: "Host(`hot.test`)"
      service: hot
      middlewares: [tag]
  middlewares:
    tag:
      headers:
        customResponseHeaders:
          X-Tag: "v-initial"
  services:
    hot:
      loadBalancer:
        servers:
          - url: "{}"
"#,
        backend.url()
    )
}

fn change(i: usize) -> String {
    if i & 1 == 0 {
        format!(
            r#"http:
  routers:
    extra-{i}:
      rule: "Host(`extra-{i}.test`) && PathPrefix(`/e{i}`)"
      service: hot
"#
        )
    } else {
        format!(
            r#"http:
  middlewares:
    tag:
      headers:
        customResponseHeaders:
          X-Tag: "v-{i}"
"#
        )
    }
}

#[test]
fn a_hundred_config_changes_under_load_fail_no_request() {
    let backend = HttpBackend::start("hot");
    let (c, proxy) = single_node_stack(&base(&backend), |s| s);
    wait_attached(&c.endpoints(), "p1", PROXY_SETTLE);

    let check = Arc::new(|r: &Resp| {
        if r.status != 200 || r.backend().as_deref() != Some("hot") {
            return Err(format!("status {}: {}", r.status, r.text().trim()));
        }
        r.header("x-tag")
            .ok_or_else(|| "no X-Tag header".to_string())
    });
    let pace = Duration::from_millis(1);
    let loops: Vec<LoadLoop> = (0..2)
        .map(|i| {
            LoadLoop::start_with(
                &format!("hot-{i}"),
                proxy.web(),
                Req::get("hot.test", &format!("/load/{i}")),
                pace,
                check.clone(),
            )
        })
        .collect();
    for l in &loops {
        l.wait_for_more(20, PROXY_SETTLE);
    }
    let applies_before = proxy
        .metric("switchyard_proxy_config_applies_total")
        .unwrap_or(0.0);

    let started = Instant::now();
    let mut last = 0;
    for i in 0..CHANGES {
        let out = apply_wait(&c.endpoints(), &change(i), "30s", None);
        assert!(out.success(), "change {i}: {out}");
        let v = applied_version(&out).unwrap_or_else(|| panic!("change {i}: {out}"));
        assert!(v > last, "change {i} committed v{v} after v{last}: {out}");
        assert!(
            out.stdout.contains("1 proxy at config version"),
            "change {i}: {out}"
        );
        last = v;
    }
    let took = started.elapsed();
    for l in &loops {
        l.wait_for_more(20, PROXY_SETTLE);
    }

    let mut total = 0;
    let mut tags = BTreeSet::new();
    for l in loops {
        let (samples, connects) = l.stop();
        assert!(
            samples.iter().all(|s| s.outcome.is_ok()),
            "requests failed during {CHANGES} config changes: {}",
            LoadLoop::summary(&samples)
        );
        assert_eq!(connects, 1, "the keep-alive connection survived every swap");
        total += samples.len();
        tags.extend(samples.into_iter().filter_map(|s| s.outcome.ok()));
    }
    eprintln!(
        "{CHANGES} changes in {took:.1?} under load: {total} requests, none failed; {} distinct X-Tag values seen",
        tags.len()
    );
    assert!(
        total >= 2 * CHANGES,
        "load was steady: only {total} requests during {CHANGES} changes"
    );
    assert!(
        tags.len() > 10,
        "the header changes took effect under load: {tags:?}"
    );

    // Everything landed: the last version, the last tag, the added routers.
    assert!(proxy.config_version().unwrap() >= last);
    let applies = proxy
        .metric("switchyard_proxy_config_applies_total")
        .unwrap();
    assert!(
        applies - applies_before >= CHANGES as f64,
        "each waited-for version was swapped in: {applies_before} -> {applies}"
    );
    let r = get(proxy.web(), "hot.test", "/").unwrap();
    assert_eq!(r.header("x-tag").as_deref(), Some("v-99"), "{r}");
    for i in [0, 50, 98] {
        let r = get(proxy.web(), &format!("extra-{i}.test"), &format!("/e{i}/x")).unwrap();
        assert_eq!(r.status, 200, "extra-{i}: {r}");
    }
}

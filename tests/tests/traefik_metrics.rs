//! Issue 10, must-show 7: the proxy's `/metrics` has the series Traefik's official Grafana
//! dashboard queries (`contrib/grafana/traefik.json` in traefik/traefik), with Traefik's
//! names and labels, and the other Traefik series (router, retries, server up, config
//! reloads, certificate expiry); a router with `observability.metrics: false` is counted for
//! its entry point only.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::{fetch, get, Req};
use switchyard_e2e::{single_node_stack, wait_until};

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (head, ""),
            };
            let mut map = BTreeMap::new();
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"")?;
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            Some(Sample {
                name: name.to_string(),
                labels: map,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The samples of `name` whose labels include `want`.
fn find<'a>(all: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(all: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    find(all, name, want).iter().map(|s| s.value).sum()
}

#[test]
fn traefiks_dashboard_series_exist_with_traefiks_labels() {
    let backend = HttpBackend::start("app");
    let cert = rcgen::generate_simple_self_signed(vec!["shop.example".to_string()]).unwrap();
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    };
    let doc = format!(
        r#"http:
  routers:
    shop: {{rule: "Host(`shop.test`)", service: shop-svc}}
    hidden:
      rule: "Host(`hidden.test`)"
      service: shop-svc
      observability: {{metrics: false}}
  services:
    shop-svc: {{loadBalancer: {{servers: [{{url: "{}"}}]}}}}
tls:
  certificates:
    - certFile: |
{}      keyFile: |
{}"#,
        backend.url(),
        indent(&cert.cert.pem()),
        indent(&cert.signing_key.serialize_pem()),
    );
    let (_c, p) = single_node_stack(&doc, |s| s);
    for i in 0..3 {
        let r = get(p.web(), "shop.test", &format!("/item/{i}")).unwrap();
        assert_eq!(r.status, 200);
    }
    let r = fetch(
        p.web(),
        &Req::get("shop.test", "/upload")
            .method("POST")
            .body("0123456789"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(get(p.web(), "hidden.test", "/h").unwrap().status, 200);
    assert_eq!(get(p.web(), "nowhere.test", "/x").unwrap().status, 404);

    let all = wait_until(Duration::from_secs(30), "every request counted", || {
        let all = parse(&p.metrics().ok()?);
        let n = value(
            &all,
            "traefik_entrypoint_requests_total",
            &[("entrypoint", "web")],
        );
        (n >= 6.0).then_some(all)
    });

    // Every series the dashboard queries, with the labels it filters and groups by.
    let web_get_200 = [
        ("entrypoint", "web"),
        ("code", "200"),
        ("method", "GET"),
        ("protocol", "http"),
    ];
    assert_eq!(
        value(&all, "traefik_entrypoint_requests_total", &web_get_200),
        4.0
    );
    assert_eq!(
        value(
            &all,
            "traefik_entrypoint_requests_total",
            &[("entrypoint", "web"), ("code", "404")]
        ),
        1.0
    );
    for le in ["0.3", "1.2", "+Inf"] {
        let mut l = web_get_200.to_vec();
        l.push(("le", le));
        assert_eq!(
            value(
                &all,
                "traefik_entrypoint_request_duration_seconds_bucket",
                &l
            ),
            4.0,
            "le={le}"
        );
    }
    assert_eq!(
        value(
            &all,
            "traefik_entrypoint_request_duration_seconds_count",
            &web_get_200
        ),
        4.0
    );
    let svc = [("service", "shop-svc"), ("protocol", "http")];
    assert_eq!(
        value(
            &all,
            "traefik_service_requests_total",
            &[
                ("service", "shop-svc"),
                ("protocol", "http"),
                ("code", "200"),
                ("method", "GET")
            ]
        ),
        3.0,
        "the metrics-off router is not counted for its service"
    );
    assert_eq!(
        value(
            &all,
            "traefik_service_requests_total",
            &[("method", "POST"), ("service", "shop-svc")]
        ),
        1.0
    );
    for name in [
        "traefik_service_request_duration_seconds_sum",
        "traefik_service_request_duration_seconds_count",
        "traefik_service_responses_bytes_total",
    ] {
        assert!(value(&all, name, &svc) > 0.0, "{name}");
    }
    for le in ["0.3", "1.2"] {
        assert!(!find(
            &all,
            "traefik_service_request_duration_seconds_bucket",
            &[("service", "shop-svc"), ("le", le)]
        )
        .is_empty());
    }
    assert_eq!(
        value(
            &all,
            "traefik_service_requests_bytes_total",
            &[("method", "POST"), ("service", "shop-svc")]
        ),
        10.0
    );
    assert!(!find(
        &all,
        "traefik_open_connections",
        &[("entrypoint", "web"), ("protocol", "TCP")]
    )
    .is_empty());
    assert!(value(&all, "traefik_config_reloads_total", &[]) >= 1.0);

    // The rest of Traefik's series.
    assert_eq!(
        value(
            &all,
            "traefik_router_requests_total",
            &[("router", "shop"), ("service", "shop-svc"), ("code", "200")]
        ),
        4.0
    );
    assert!(find(
        &all,
        "traefik_router_requests_total",
        &[("router", "hidden")]
    )
    .is_empty());
    assert_eq!(
        value(
            &all,
            "traefik_entrypoint_requests_total",
            &[("entrypoint", "web"), ("code", "200")]
        ),
        5.0,
        "the metrics-off router is counted for its entry point"
    );
    assert!(!find(
        &all,
        "traefik_router_request_duration_seconds_bucket",
        &[("router", "shop"), ("le", "1.2")]
    )
    .is_empty());
    assert_eq!(
        value(
            &all,
            "traefik_service_server_up",
            &[("service", "shop-svc"), ("url", &backend.url())]
        ),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = value(&all, "traefik_config_last_reload_success", &[]);
    assert!((now - last).abs() < 3600.0, "{last}");
    let certs = find(
        &all,
        "traefik_tls_certs_not_after",
        &[("sans", "shop.example")],
    );
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert!(certs[0].value > now, "{:?}", certs[0]);
    assert!(certs[0].labels.contains_key("cn") && certs[0].labels.contains_key("serial"));
}

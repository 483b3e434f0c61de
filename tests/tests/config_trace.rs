//! Issue 10, must-show 2: one `apply --wait` against 3 control nodes and 2 proxies, every
//! process exporting spans to the test's OTLP receiver, yields one trace holding the admin call
//! span, the validation and Raft commit spans, the config stream sends and each proxy's
//! `config apply` (compile + swap + ACK) span, all under the same trace id. The trace context
//! travels in gRPC metadata (caller → node → leader), inside the Raft entry (so every node's
//! config stream continues it) and in the pushed config message.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchyard_e2e::otlp::{OtlpReceiver, RecvSpan};
use switchyard_e2e::{cli_stdin, router_doc, wait_attached, wait_until, Cluster, Proxy, ProxySpec};

const WAIT: Duration = Duration::from_secs(60);
/// A caller's trace context (`--traceparent`).
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// OTLP span kinds.
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

fn by_name<'a>(spans: &'a [RecvSpan], name: &str) -> Vec<&'a RecvSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// Every span of `trace`, once the admin call, the commit and one `config apply` per proxy
/// (`ct1`, `ct2`) are in.
fn whole_trace(rx: &OtlpReceiver, trace: &str) -> Vec<RecvSpan> {
    wait_until(WAIT, &format!("the spans of trace {trace}"), || {
        let spans: Vec<RecvSpan> = rx
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        let applied: Vec<&str> = by_name(&spans, "config apply")
            .iter()
            .filter_map(|s| s.attr("switchyard.proxy.id"))
            .collect();
        let complete = !by_name(&spans, "admin Apply").is_empty()
            && !by_name(&spans, "raft commit").is_empty()
            && applied.contains(&"ct1")
            && applied.contains(&"ct2");
        if complete {
            Ok(spans)
        } else {
            Err(format!("{} spans so far: {spans:#?}", spans.len()))
        }
    })
}

/// The tree the trace must have: the proxies' spans hang from a stream send, the sends from
/// an admin call (on the leader), the commit and validation from the same admin call.
fn check_tree(spans: &[RecvSpan], version: u64) {
    let find = |id: &str| spans.iter().find(|s| s.span_id == id);
    let admin = by_name(spans, "admin Apply");
    for s in &admin {
        assert_eq!(s.kind, SERVER, "{s:?}");
        assert_eq!(
            s.resource.get("service.name").map(String::as_str),
            Some("switchyard")
        );
    }
    let commit = by_name(spans, "raft commit");
    assert_eq!(commit.len(), 1, "one commit: {commit:#?}");
    let leader_call = find(&commit[0].parent_span_id)
        .unwrap_or_else(|| panic!("the commit's parent is not in the trace: {spans:#?}"));
    assert_eq!(leader_call.name, "admin Apply", "{leader_call:?}");
    assert_eq!(
        commit[0].attr("raft.log.index"),
        Some(version.to_string().as_str())
    );
    let validate = by_name(spans, "config validate");
    assert_eq!(validate.len(), 1, "{validate:#?}");
    assert_eq!(validate[0].parent_span_id, leader_call.span_id);

    for proxy in ["ct1", "ct2"] {
        let apply = spans
            .iter()
            .find(|s| s.name == "config apply" && s.attr("switchyard.proxy.id") == Some(proxy))
            .unwrap();
        assert_eq!(apply.kind, CONSUMER, "{apply:?}");
        assert_eq!(
            apply.attr("switchyard.config.version"),
            Some(version.to_string().as_str())
        );
        assert_eq!(
            apply.attr("switchyard.config.outcome"),
            Some("ack"),
            "{apply:?}"
        );
        assert_eq!(
            apply
                .resource
                .get("switchyard.proxy.id")
                .map(String::as_str),
            Some(proxy)
        );
        let send = find(&apply.parent_span_id)
            .unwrap_or_else(|| panic!("the parent of {proxy}'s apply is missing: {spans:#?}"));
        assert_eq!(send.name, "config stream send", "{send:?}");
        assert_eq!(send.kind, PRODUCER);
        assert_eq!(send.attr("switchyard.proxy.id"), Some(proxy));
        // The node that sent it continued the trace from the Raft entry: the leader's call.
        assert_eq!(send.parent_span_id, leader_call.span_id, "{send:?}");
    }
}

#[test]
fn one_apply_is_one_trace_from_the_api_through_raft_to_every_proxy() {
    let rx = OtlpReceiver::grpc();
    let collector = rx.url();
    let tracing = ["--tracing.otlp.grpc.endpoint", collector.as_str()];
    // The nodes push their `/metrics` series over OTLP too (checked at the end).
    let c = Cluster::start_with(
        3,
        &[
            tracing[0],
            tracing[1],
            "--metrics.otlp.grpc.endpoint",
            collector.as_str(),
            "--metrics.otlp.pushInterval",
            "250ms",
        ],
    );
    c.wait_ready(WAIT);
    // Each proxy is pointed at a different node (it may move; any node continues the trace).
    let p1 = Proxy::start(ProxySpec::new("ct1", &c.node(2).endpoint()).args(&tracing));
    let p2 = Proxy::start(ProxySpec::new("ct2", &c.node(3).endpoint()).args(&tracing));
    wait_attached(&c.endpoints(), "ct1", WAIT);
    wait_attached(&c.endpoints(), "ct2", WAIT);

    // 1. A plain `apply --wait`: the node that takes the call starts the trace and the CLI
    // prints its id.
    let out = cli_stdin(
        &c.endpoints(),
        &["apply", "-f", "-", "--wait=60s"],
        &router_doc("traced-one"),
    )
    .expect_success();
    let version = switchyard_e2e::applied_version(&out).unwrap();
    let trace = out
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("trace id: "))
        .unwrap_or_else(|| panic!("no trace id printed: {out}"))
        .to_string();
    assert_eq!(trace.len(), 32, "{trace}");
    let spans = whole_trace(&rx, &trace);
    check_tree(&spans, version);
    let roots: Vec<&RecvSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].name, "admin Apply");
    assert_eq!(p1.config_version().unwrap(), version);
    assert_eq!(p2.config_version().unwrap(), version);

    // 2. A caller's trace (`--traceparent`, as `TRACEPARENT` in CI): the change joins it, through
    // whichever node the call reaches first (a follower forwards it with its span's context).
    let follower = c
        .ids()
        .into_iter()
        .find(|id| Some(*id) != c.leader_id())
        .unwrap();
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let out = cli_stdin(
        &c.node(follower).endpoint(),
        &[
            "-o",
            "json",
            "apply",
            "-f",
            "-",
            "--wait=60s",
            "--traceparent",
            &tp,
        ],
        &router_doc("traced-two"),
    )
    .expect_success();
    // (`--wait` prints its summary line on stderr: stdout is one JSON document.)
    let json: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"));
    assert_eq!(json["traceId"], CALLER_TRACE, "{out}");
    let version = json["version"].as_u64().unwrap();
    let spans = whole_trace(&rx, CALLER_TRACE);
    check_tree(&spans, version);
    let entry = spans
        .iter()
        .find(|s| s.parent_span_id == CALLER_SPAN)
        .unwrap_or_else(|| panic!("no span under the caller's: {spans:#?}"));
    assert_eq!(entry.name, "admin Apply");
    assert_eq!(
        entry
            .resource
            .get("service.instance.id")
            .map(String::as_str),
        Some(follower.to_string().as_str())
    );

    // The nodes' OTLP metrics: the admin request counter, with the Apply calls.
    wait_until(WAIT, "switchyard_api_requests{method=Apply} pushed", || {
        let points = rx.metric_points();
        points
            .iter()
            .find(|m| {
                m.name == "switchyard_api_requests"
                    && m.attributes.get("method").map(String::as_str) == Some("Apply")
                    && m.value >= 1.0
                    && m.resource.get("service.name").map(String::as_str) == Some("switchyard")
            })
            .cloned()
            .ok_or_else(|| {
                let names: std::collections::BTreeSet<(String, Option<String>)> = points
                    .iter()
                    .map(|m| (m.name.clone(), m.resource.get("service.name").cloned()))
                    .collect();
                format!("{} points: {names:?}", points.len())
            })
    });

    // Nothing was dropped on the way.
    for id in c.ids() {
        assert_eq!(
            c.node(id)
                .metric("switchyard_tracing_dropped_spans_total")
                .unwrap(),
            0.0
        );
    }
}

//! Issue 3, must-show 1: three control nodes and two proxies in different zones. A route applied
//! through any node serves traffic on both proxies, and `apply --wait` returns only once both
//! proxies ACKed the new version (and fails, naming the proxy, when one cannot).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use switchyard_e2e::backends::HttpBackend;
use switchyard_e2e::client::get;
use switchyard_e2e::{
    applied_version, apply_wait, cli_in_terminal, cli_stdin, get_proxies, host_route, proxy_entry,
    wait_attached, wait_until, zoned_cluster, Proxy, ProxySpec, PROXY_SETTLE,
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
        // Piped (not a terminal), the wait draws no progress line.
        assert!(
            !out.stderr.contains("ACKed") && !out.stderr.contains('\x1b'),
            "no progress output when piped: {out}"
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

    // With -o json, standard output is one JSON document; the final line goes to stderr.
    let out = cli_stdin(
        &c.nodes[2].endpoint(),
        &["-o", "json", "apply", "-f", "-", "--wait=30s"],
        &host_route("as-json", &backend),
    )
    .expect_success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"));
    let v = doc["version"].as_u64().unwrap_or_else(|| panic!("{out}"));
    assert!(
        out.stderr
            .contains(&format!("2 proxies at config version {v} or later")),
        "{out}"
    );

    // A proxy that cannot ACK (frozen with SIGSTOP: still connected, its TCP connection open)
    // makes apply --wait fail once its timeout passes, naming that proxy.
    signal(&pb, "-STOP");
    // At a terminal the wait shows its progress by zone: p-b (zone b) never ACKs.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("route.yaml");
    std::fs::write(&file, host_route("frozen-tty", &backend)).expect("writing the route");
    let tty = cli_in_terminal(
        &c.nodes[0].endpoint(),
        &["apply", "-f", &file.display().to_string(), "--wait=2s"],
    );
    assert!(!tty.success(), "p-b cannot ACK: {tty}");
    let v = applied_version(&tty).unwrap_or_else(|| panic!("the write committed: {tty}"));
    let progress = format!("\x1b[2Kwaiting for config version {v}: ");
    assert!(
        tty.stdout.contains(&progress) && tty.stdout.contains("/2 proxies ACKed (a "),
        "a progress line drawn in place: {tty}"
    );
    assert!(tty.stdout.contains(", b 0/1)"), "p-b shown behind: {tty}");
    assert!(tty.stdout.contains("p-b"), "the error names p-b: {tty}");
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

/// Issue 8, must-show 6: a proxy that NACKed a version is not stuck. The node sends the next
/// version from what the proxy holds (its last ACKed version, or a snapshot), never from the
/// version it refused, and never sends the refused version again. A hand-driven proxy speaks
/// the config stream so the test decides exactly which version is refused.
#[test]
fn a_proxy_that_nacked_gets_the_next_version_from_what_it_holds() {
    use std::time::Duration;
    use switchyard_e2e::backends::block_on;
    use switchyard_e2e::{apply_yaml, router_doc, Cluster, INSECURE};
    use switchyard_proto::stream::config_message::Body;
    use switchyard_proto::stream::config_stream_client::ConfigStreamClient;
    use switchyard_proto::stream::proxy_message::Msg;
    use switchyard_proto::stream::{Ack, ConfigMessage, Hello, Nack, ProxyMessage};

    let c = Cluster::start_with(1, &[INSECURE]);
    let ep = c.endpoints();
    let v1 = apply_yaml(&ep, &router_doc("first")).expect("apply first");

    const STEP: Duration = Duration::from_secs(20);
    block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<ProxyMessage>(8);
        let mut client = ConfigStreamClient::connect(ep.clone())
            .await
            .expect("connecting to the config stream");
        tx.send(ProxyMessage {
            msg: Some(Msg::Hello(Hello {
                proxy_id: "hand".into(),
                entrypoints: vec!["web".into()],
                ..Hello::default()
            })),
        })
        .await
        .unwrap();
        let mut inbound = client
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        async fn next_of(inbound: &mut tonic::Streaming<ConfigMessage>) -> ConfigMessage {
            match tokio::time::timeout(STEP, inbound.message()).await {
                Ok(Ok(Some(m))) => m,
                other => panic!("no config message within {STEP:?}: {other:?}"),
            }
        }
        let names = |m: &ConfigMessage| -> Vec<String> {
            match &m.body {
                Some(Body::Delta(d)) => d.changes.iter().map(|c| c.name.clone()).collect(),
                Some(Body::Snapshot(s)) => vec![s.config_json.clone()],
                None => vec![],
            }
        };

        // A fresh proxy gets a snapshot of v1 and ACKs it.
        let m = next_of(&mut inbound).await;
        assert_eq!(m.version, v1, "{m:?}");
        assert!(matches!(m.body, Some(Body::Snapshot(_))), "{m:?}");
        tx.send(ProxyMessage {
            msg: Some(Msg::Ack(Ack { version: v1 })),
        })
        .await
        .unwrap();

        // v2 arrives as a delta from v1; the proxy refuses it.
        let ep2 = ep.clone();
        let v2 = tokio::task::spawn_blocking(move || apply_yaml(&ep2, &router_doc("refused")))
            .await
            .unwrap()
            .expect("apply refused");
        let m = next_of(&mut inbound).await;
        assert_eq!(m.version, v2, "{m:?}");
        tx.send(ProxyMessage {
            msg: Some(Msg::Nack(Nack {
                version: v2,
                error: "refused by the test".into(),
            })),
        })
        .await
        .unwrap();

        // v3 must bring the proxy from v1 (what it holds), not from the refused v2.
        let ep3 = ep.clone();
        let v3 = tokio::task::spawn_blocking(move || apply_yaml(&ep3, &router_doc("third")))
            .await
            .unwrap()
            .expect("apply third");
        let m = next_of(&mut inbound).await;
        assert_eq!(
            m.version, v3,
            "the refused v{v2} must not be sent again; got {m:?}"
        );
        match &m.body {
            Some(Body::Delta(d)) => {
                assert_eq!(
                    d.base_version, v1,
                    "after a NACK of v{v2}, the next delta must start from the ACKed v{v1}: {m:?}"
                );
                let n = names(&m);
                assert!(
                    n.iter().any(|x| x == "refused") && n.iter().any(|x| x == "third"),
                    "the delta from v{v1} carries both routers: {n:?}"
                );
            }
            Some(Body::Snapshot(s)) => {
                assert!(s.config_json.contains("third") && s.config_json.contains("refused"));
            }
            None => panic!("empty message {m:?}"),
        }
        tx.send(ProxyMessage {
            msg: Some(Msg::Ack(Ack { version: v3 })),
        })
        .await
        .unwrap();

        // The node lists the proxy at v3, with the NACK of v2 on record.
        let ep4 = ep.clone();
        tokio::task::spawn_blocking(move || {
            wait_until(Duration::from_secs(20), "the proxy listed at v3", || {
                let doc = get_proxies(&ep4).map_err(|e| e.to_string())?;
                let e = proxy_entry(&doc, "hand").ok_or_else(|| doc.to_string())?;
                if e["appliedVersion"].as_u64() == Some(v3)
                    && e["lastNackVersion"].as_u64() == Some(v2)
                {
                    Ok(())
                } else {
                    Err(doc.to_string())
                }
            })
        })
        .await
        .unwrap();
        drop(tx);
    });
}

/// Issue 8, must-show 4: with one of three control nodes killed, `apply --wait` (given every
/// node's endpoint, the dead one first) succeeds once every proxy ACKed, counting the proxy that
/// moved off the dead node, and names the node it could not ask in a warning.
#[test]
fn apply_wait_with_a_control_node_killed_waits_for_every_proxy_and_names_that_node() {
    let mut c = zoned_cluster();
    let backend = HttpBackend::start("b1");
    // `p-a` prefers node 1 (its zone), `p-b` node 2.
    let pa = Proxy::start(ProxySpec::new("p-a", &c.endpoints()).zone("r1", "a"));
    let pb = Proxy::start(ProxySpec::new("p-b", &c.endpoints()).zone("r1", "b"));
    let e = wait_attached(&c.endpoints(), "p-a", PROXY_SETTLE);
    let dead = e["node"].as_u64().expect("p-a's node");
    wait_attached(&c.endpoints(), "p-b", PROXY_SETTLE);

    c.node_mut(dead).kill();
    let survivors: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.id != dead)
        .map(|n| n.endpoint())
        .collect();
    let survivors = survivors.join(",");
    // p-a moves to a live node.
    wait_until(PROXY_SETTLE, "p-a to re-attach to a live node", || {
        let e = switchyard_e2e::proxy_status(&survivors, "p-a")?;
        match e["node"].as_u64() {
            Some(n) if n != dead => Ok(()),
            other => Err(format!("node {other:?}: {e}")),
        }
    });

    // The dead node first in --endpoints: the CLI moves on to a live one. The write itself may
    // meet an election (the dead node may have led): retry until it commits.
    let all = format!(
        "{},{survivors}",
        c.nodes
            .iter()
            .find(|n| n.id == dead)
            .map(|n| n.endpoint())
            .unwrap()
    );
    let out = wait_until(PROXY_SETTLE, "apply --wait through the survivors", || {
        let out = apply_wait(&all, &host_route("degraded", &backend), "30s", None);
        if out.success() {
            Ok(out)
        } else {
            Err(out.to_string())
        }
    });
    let v = applied_version(&out).unwrap_or_else(|| panic!("no version in {out}"));
    assert!(
        out.stdout
            .contains(&format!("2 proxies at config version {v} or later")),
        "both proxies counted: {out}"
    );
    assert!(
        out.stderr
            .contains(&format!("warning: control node {dead} could not be asked")),
        "the unreachable node is named: {out}"
    );
    for p in [&pa, &pb] {
        let have = p.config_version().expect("proxy metrics");
        assert!(have >= v, "proxy {} serves v{have} < v{v}", p.id);
        let r = get(p.web(), "degraded.test", "/").expect("request");
        assert_eq!(r.status, 200, "proxy {}: {r}", p.id);
    }

    // A proxy that cannot ACK still fails the wait, naming it (and the dead node).
    signal(&pb, "-STOP");
    let out = apply_wait(&all, &host_route("frozen2", &backend), "2s", None);
    signal(&pb, "-CONT");
    assert!(!out.success(), "p-b could not ACK: {out}");
    assert!(out.stderr.contains("p-b"), "{out}");
    assert!(
        out.stderr.contains(&format!("[{dead}] could not be asked")),
        "{out}"
    );
}

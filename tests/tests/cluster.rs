//! Raft control plane, end to end: real `switchyard server` processes on loopback, driven through
//! the admin CLI. Every test founds its own cluster on its own ports and directories.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_e2e::{
    apply_yaml, assert_holds_for, cli, cli_stdin, cluster_status_json, config_version, doc_has,
    get_config, get_resource, router_doc, status_node, try_cluster_status_json, wait_until,
    Cluster,
};

/// Generous bound for things that should take a second or two (replication, catch-up, elections
/// after a restart) on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(30);

/// The product's default `--write-timeout`.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const WEB_DOC: &str = r#"
http:
  routers:
    web:
      rule: "Host(`a.example`) && PathPrefix(`/x`)"
      service: web
      middlewares: [strip]
  services:
    web:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:8080"
  middlewares:
    strip:
      stripPrefix:
        prefixes: ["/x"]
"#;

/// Waits until every running node serves router `name` and all report the same config version
/// (at least `min_version`); returns that version.
fn wait_router_everywhere(c: &Cluster, name: &str, min_version: u64) -> u64 {
    let endpoints: Vec<(u64, String)> = c
        .nodes
        .iter()
        .filter(|n| n.has_process())
        .map(|n| (n.id, n.endpoint()))
        .collect();
    wait_until(
        SETTLE,
        &format!("router {name:?} on every node at one version >= {min_version}"),
        || {
            let mut seen = Vec::new();
            for (id, ep) in &endpoints {
                match get_resource(ep, "router", name) {
                    Ok((v, _)) => seen.push((*id, v)),
                    Err(e) => return Err(format!("node {id}: {e}")),
                }
            }
            let first = seen[0].1;
            if first >= min_version && seen.iter().all(|(_, v)| *v == first) {
                Ok(first)
            } else {
                Err(format!("versions (node, version): {seen:?}"))
            }
        },
    )
}

/// Retries `apply` of `doc` through `endpoints` until it succeeds or `budget` (measured from
/// `since`) runs out; returns the version and when it succeeded, or the last error.
fn apply_until(
    endpoints: &str,
    doc: &str,
    since: Instant,
    budget: Duration,
) -> Result<(u64, Instant), String> {
    let mut last = String::from("never tried");
    while since.elapsed() < budget {
        match apply_yaml(endpoints, doc) {
            Ok(v) => return Ok((v, Instant::now())),
            Err(e) => {
                eprintln!("[{:.2?}] write attempt failed: {e}", since.elapsed());
                last = e.to_string();
            }
        }
    }
    Err(last)
}

fn roles(status: &Value) -> Vec<(u64, String, bool)> {
    status["nodes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| {
                    (
                        n["id"].as_u64().unwrap_or(0),
                        n["role"].as_str().unwrap_or("").to_string(),
                        n["leader"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// -------------------------------------------------------------------------------------------------

#[test]
fn three_nodes_form_and_replicate_a_write_made_through_a_follower() {
    let c = Cluster::start(3);
    let leader = c.wait_for_leader(SETTLE);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();

    let v = apply_yaml(&c.node(follower).endpoint(), WEB_DOC)
        .unwrap_or_else(|e| panic!("apply through follower {follower} failed: {e}"));
    assert!(v > 0, "a committed config has a positive version, got {v}");

    // Followers apply asynchronously: wait until all three serve it at one version.
    let version = wait_router_everywhere(&c, "web", v);
    for n in &c.nodes {
        let (gv, doc) = get_config(&n.endpoint()).expect("get config");
        assert_eq!(gv, version, "node {} get config version", n.id);
        assert!(doc_has(&doc, "routers", "web"), "node {}: {doc}", n.id);
        assert!(doc_has(&doc, "services", "web"), "node {}: {doc}", n.id);
        assert!(
            doc_has(&doc, "middlewares", "strip"),
            "node {}: {doc}",
            n.id
        );
        let (_, router) = get_resource(&n.endpoint(), "routers", "web").expect("get router");
        assert_eq!(
            router["rule"].as_str(),
            Some("Host(`a.example`) && PathPrefix(`/x`)"),
            "node {}: {router}",
            n.id
        );
        assert_eq!(router["service"].as_str(), Some("web"), "{router}");
    }

    // Cluster status (from a follower): three voters, exactly one leader, everyone reachable.
    let status = cluster_status_json(&c.node(follower).endpoint());
    let nodes = status["nodes"].as_array().expect("nodes array");
    assert_eq!(nodes.len(), 3, "{status:#}");
    assert!(
        nodes.iter().all(|n| n["role"] == "voter"),
        "all voters: {status:#}"
    );
    let leaders: Vec<u64> = nodes
        .iter()
        .filter(|n| n["leader"] == true)
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(leaders, vec![leader], "exactly one leader: {status:#}");
    assert_eq!(status["hasLeader"], true, "{status:#}");
    assert_eq!(status["leaderId"].as_u64(), Some(leader), "{status:#}");
    assert_eq!(status["servedBy"].as_u64(), Some(follower), "{status:#}");
    for n in nodes {
        assert_eq!(n["reachable"], true, "{status:#}");
        let id = n["id"].as_u64().expect("id");
        assert_eq!(
            n["apiAddr"].as_str(),
            Some(c.node(id).addrs.api.as_str()),
            "{status:#}"
        );
        assert_eq!(
            n["peerAddr"].as_str(),
            Some(c.node(id).addrs.peer.as_str()),
            "{status:#}"
        );
    }

    // HTTP port: ready everywhere, metrics exported.
    for n in &c.nodes {
        assert_eq!(n.http("/healthz").expect("healthz").status, 200);
        assert_eq!(n.readyz().expect("readyz"), 200, "node {} /readyz", n.id);
        let m = n.metrics().expect("metrics");
        for name in [
            "switchyard_raft_term",
            "switchyard_raft_applied_index",
            "switchyard_config_version",
        ] {
            assert!(
                m.contains(name),
                "node {} /metrics lacks {name}:\n{m}",
                n.id
            );
        }
        let mv = switchyard_e2e::metric_value(&m, "switchyard_config_version");
        assert_eq!(
            mv,
            Some(version as f64),
            "node {} config version metric",
            n.id
        );
    }
    let lm = c.node(follower).metrics().expect("metrics");
    assert!(
        lm.contains("switchyard_api_requests_total"),
        "the follower served admin requests; /metrics:\n{lm}"
    );
}

#[test]
fn killing_the_leader_fails_over_within_five_seconds_and_the_old_leader_catches_up() {
    let mut c = Cluster::start(3);
    let v1 = apply_yaml(&c.endpoints(), &router_doc("before")).expect("first write");
    wait_router_everywhere(&c, "before", v1);

    let old = c.wait_for_leader(SETTLE);
    c.node_mut(old).kill();
    let killed_at = Instant::now();

    let survivors = c.running_endpoints();
    let budget = Duration::from_secs(5);
    let (v2, done) = apply_until(&survivors, &router_doc("after"), killed_at, budget)
        .unwrap_or_else(|e| {
            panic!("no write succeeded through the survivors within {budget:?} of killing leader {old}; last error: {e}")
        });
    let took = done - killed_at;
    assert!(
        took < budget,
        "failover write took {took:?} (budget {budget:?})"
    );
    assert!(v2 > v1, "version after failover {v2} must exceed {v1}");
    let new = c.wait_for_leader(SETTLE);
    assert_ne!(new, old, "a new leader was elected");
    eprintln!("failover: leader {old} killed, write committed after {took:?}, new leader {new}");

    // The old leader comes back as a follower and catches up.
    c.node_mut(old).restart();
    let version = wait_router_everywhere(&c, "after", v2);
    c.wait_version_everywhere(version, SETTLE);
    let (_, doc) = get_config(&c.node(old).endpoint()).expect("get config on old leader");
    assert!(doc_has(&doc, "routers", "before"), "{doc}");
    assert!(doc_has(&doc, "routers", "after"), "{doc}");
    c.wait_ready(SETTLE);
}

#[test]
fn without_quorum_writes_fail_fast_and_acknowledged_writes_survive() {
    no_quorum_scenario(true);
}

#[test]
fn without_quorum_a_follower_fails_writes_fast_too() {
    no_quorum_scenario(false);
}

/// Stops two of three nodes, keeping the leader (`keep_leader`: the write reaches Raft and cannot
/// commit) or a follower (no leader can be elected; the old one is gone), and checks that a write
/// fails with UNAVAILABLE within the bound, that nothing acknowledged is lost, and that writes
/// resume once one node is back.
fn no_quorum_scenario(keep_leader: bool) {
    let mut c = Cluster::start(3);
    let mut acknowledged = Vec::new();
    let mut max_version = 0;
    for name in ["ack-one", "ack-two", "ack-three"] {
        let v = apply_yaml(&c.endpoints(), &router_doc(name))
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
        max_version = max_version.max(v);
        acknowledged.push(name);
    }

    let leader = c.wait_for_leader(SETTLE);
    let keep = if keep_leader {
        leader
    } else {
        c.ids().into_iter().find(|&id| id != leader).unwrap()
    };
    let stopped: Vec<u64> = c.ids().into_iter().filter(|&id| id != keep).collect();
    for &id in &stopped {
        c.node_mut(id).stop();
    }

    let survivor = c.node(keep).endpoint();
    let out = cli_stdin(
        &survivor,
        &["apply", "-f", "-"],
        &router_doc("without-quorum"),
    );
    eprintln!("write without quorum: {out}");
    assert!(!out.success(), "a write without quorum must fail: {out}");
    assert!(
        out.stderr.contains("UNAVAILABLE"),
        "stderr must carry the UNAVAILABLE code: {out}"
    );
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "one error line on stderr: {out}"
    );
    assert!(
        out.stderr.starts_with("error: "),
        "the error line starts with `error: `: {out}"
    );
    let bound = WRITE_TIMEOUT + Duration::from_secs(3);
    assert!(
        out.elapsed < bound,
        "a write without quorum must fail within {bound:?}, took {:?}",
        out.elapsed
    );

    // Reads of the local applied state still work without quorum. The leader applied everything
    // it acknowledged; a follower may not have learned that the last entries were committed
    // before the others stopped (that is fine: they must be there once quorum returns).
    let (v, doc) = get_config(&survivor).expect("local reads work without quorum");
    if keep_leader {
        assert!(v >= max_version, "{v} < {max_version}");
        for name in &acknowledged {
            assert!(doc_has(&doc, "routers", name), "{name} missing: {doc}");
        }
    }

    // One node back: quorum again, writes succeed again.
    c.node_mut(stopped[0]).restart();
    let (v_after, _) = apply_until(
        &c.running_endpoints(),
        &router_doc("after-quorum"),
        Instant::now(),
        SETTLE,
    )
    .unwrap_or_else(|e| panic!("writes did not resume after quorum returned: {e}"));
    assert!(v_after > max_version, "{v_after} must exceed {max_version}");
    let version = wait_router_everywhere(&c, "after-quorum", v_after);
    for n in c.nodes.iter().filter(|n| n.has_process()) {
        let (gv, doc) = get_config(&n.endpoint()).expect("get config");
        assert_eq!(gv, version, "node {}", n.id);
        for name in &acknowledged {
            assert!(
                doc_has(&doc, "routers", name),
                "node {}: acknowledged router {name} lost: {doc}",
                n.id
            );
        }
    }
    // Checked last, so the properties above are verified first: the error line says why the
    // write failed (no leader / no quorum), rather than a bare transport error.
    let lower = out.stderr.to_lowercase();
    assert!(
        lower.contains("leader") || lower.contains("quorum"),
        "the UNAVAILABLE error should say that there is no leader or no quorum: {out}"
    );
}

#[test]
fn full_cluster_restart_keeps_every_acknowledged_write() {
    let mut c = Cluster::start(3);
    let mut acknowledged = Vec::new();
    let mut max_version = 0;
    for (i, id) in [1u64, 2, 3, 1, 2].into_iter().enumerate() {
        let name = format!("keep-{i}");
        let v = apply_yaml(&c.node(id).endpoint(), &router_doc(&name))
            .unwrap_or_else(|e| panic!("write {name} via node {id}: {e}"));
        assert!(v > max_version, "versions grow: {v} after {max_version}");
        max_version = v;
        acknowledged.push(name);
    }
    // Delete one acknowledged resource: the deletion must survive the restart too.
    let del = cli(&c.endpoints(), &["delete", "router", "keep-0"]).expect_success();
    assert!(del.stdout.contains("deleted"), "{del}");
    acknowledged.remove(0);
    let before = config_version(&c.node(c.wait_for_leader(SETTLE)).endpoint());
    assert!(before > max_version, "delete bumps the version: {before}");
    max_version = before;

    for id in c.ids() {
        let st = c.node_mut(id).stop();
        assert!(
            st.is_some(),
            "node {id} did not exit within the stop timeout after SIGTERM"
        );
    }
    for id in c.ids() {
        c.node_mut(id).respawn();
    }
    for id in c.ids() {
        c.node_mut(id).wait_healthy();
    }
    c.wait_for_leader(SETTLE);

    for n in &c.nodes {
        let ep = n.endpoint();
        let doc = wait_until(
            SETTLE,
            &format!("node {} to serve the restored config", n.id),
            || match get_config(&ep) {
                Ok((v, doc)) if v >= max_version => Ok(doc),
                Ok((v, _)) => Err(format!("version {v} < {max_version}")),
                Err(e) => Err(e.to_string()),
            },
        );
        for name in &acknowledged {
            assert!(
                doc_has(&doc, "routers", name),
                "node {}: {name} lost: {doc}",
                n.id
            );
        }
        assert!(
            !doc_has(&doc, "routers", "keep-0"),
            "node {}: deleted router came back: {doc}",
            n.id
        );
    }

    let (v, _) = apply_until(
        &c.endpoints(),
        &router_doc("after-restart"),
        Instant::now(),
        SETTLE,
    )
    .unwrap_or_else(|e| panic!("write after full restart: {e}"));
    assert!(
        v > max_version,
        "a write after the restart got version {v}, not above the earlier {max_version}"
    );
    wait_router_everywhere(&c, "after-restart", v);
}

#[test]
fn a_joining_node_catches_up_by_snapshot_and_membership_changes_work() {
    let mut c = Cluster::start_with(
        3,
        &["--snapshot-threshold", "20", "--snapshot-keep-logs", "0"],
    );
    let leader = c.wait_for_leader(SETTLE);
    let leader_ep = c.node(leader).endpoint();
    let writes = 65;
    let mut last = 0;
    for i in 0..writes {
        last = apply_yaml(&leader_ep, &router_doc(&format!("r{i}")))
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    assert!(last >= writes, "{writes} writes ended at version {last}");
    // With a threshold of 20 and no logs kept, the leader's log no longer starts at 1; a
    // newcomer can only catch up through a snapshot.

    let join = c.node(1).endpoint();
    c.start_joining(4, &join);
    let ep4 = c.node(4).endpoint();
    let eps = c.endpoints();
    let version = wait_until(
        SETTLE,
        "node 4 to serve the leader's config version",
        || {
            let lv = config_version(&leader_ep);
            match get_config(&ep4) {
                Ok((v, _)) if v == lv && v >= last => Ok(v),
                Ok((v, _)) => Err(format!("node 4 at {v}, leader at {lv}")),
                Err(e) => Err(format!("node 4: {e}")),
            }
        },
    );
    let (_, doc) = get_config(&ep4).expect("get config on node 4");
    for i in 0..writes {
        let name = format!("r{i}");
        assert!(doc_has(&doc, "routers", &name), "node 4 lacks {name}");
        assert!(
            doc_has(&doc, "services", &format!("{name}-svc")),
            "node 4 lacks {name}-svc"
        );
    }
    assert!(version >= last);

    let status = wait_until(SETTLE, "node 4 listed as a learner", || {
        let s = try_cluster_status_json(&leader_ep)?;
        match status_node(&s, 4).map(|n| n["role"].clone()) {
            Some(r) if r == "learner" => Ok(s),
            other => Err(format!("node 4 role {other:?}: {s}")),
        }
    });
    assert_eq!(
        status_node(&status, 4).expect("node 4")["apiAddr"].as_str(),
        Some(c.node(4).addrs.api.as_str()),
        "{status:#}"
    );
    let voters: Vec<u64> = roles(&status)
        .into_iter()
        .filter(|(_, r, _)| r == "voter")
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3], "{status:#}");

    // Promote: node 4 becomes a voter.
    cli(&eps, &["cluster", "promote", "4"]).expect_success();
    wait_until(SETTLE, "node 4 listed as a voter", || {
        let s = try_cluster_status_json(&leader_ep)?;
        match status_node(&s, 4).map(|n| n["role"].clone()) {
            Some(r) if r == "voter" => Ok(()),
            other => Err(format!("node 4 role {other:?}: {s}")),
        }
    });

    // Remove a voter that is neither the leader nor node 4.
    let leader = c.wait_for_leader(SETTLE);
    let victim = [1u64, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let remaining: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.id != victim)
        .map(|n| n.endpoint())
        .collect();
    let remaining = remaining.join(",");
    cli(&remaining, &["cluster", "remove", &victim.to_string()]).expect_success();
    let leader_ep = c.node(leader).endpoint();
    wait_until(
        SETTLE,
        &format!("node {victim} gone from cluster status"),
        || {
            let s = try_cluster_status_json(&leader_ep)?;
            if status_node(&s, victim).is_none() {
                Ok(())
            } else {
                Err(format!("still listed: {s}"))
            }
        },
    );

    // The cluster (three voters: two old ones and node 4) still takes writes, and node 4 serves
    // them.
    let v = apply_yaml(&remaining, &router_doc("after-membership"))
        .unwrap_or_else(|e| panic!("write after membership changes: {e}"));
    wait_until(
        SETTLE,
        "node 4 to serve router after-membership",
        || match get_resource(&ep4, "router", "after-membership") {
            Ok((gv, _)) if gv >= v => Ok(()),
            Ok((gv, _)) => Err(format!("version {gv} < {v}")),
            Err(e) => Err(e.to_string()),
        },
    );
    // The removed node keeps running; it must neither rejoin nor disturb the others. Watch for
    // several of its registration periods and election timeouts.
    let term_before = c.node(leader).metric("switchyard_raft_term").expect("term");
    assert_holds_for(
        Duration::from_secs(4),
        &format!("removed node {victim} stays out and leader {leader} keeps its term"),
        || -> Result<(), String> {
            let s = try_cluster_status_json(&leader_ep)?;
            if status_node(&s, victim).is_some() {
                return Err(format!("node {victim} listed again: {s}"));
            }
            let term = c.node(leader).metric("switchyard_raft_term")?;
            if term != term_before || s["leaderId"].as_u64() != Some(leader) {
                return Err(format!("term {term_before} -> {term}, status {s}"));
            }
            Ok(())
        },
    );
    let status = cluster_status_json(&leader_ep);
    let r = roles(&status);
    assert_eq!(
        r.iter().filter(|(_, role, _)| role == "voter").count(),
        3,
        "{status:#}"
    );
    assert_eq!(r.iter().filter(|(_, _, l)| *l).count(), 1, "{status:#}");
}

#[test]
fn apply_round_trip_dry_run_prune_and_delete() {
    let c = Cluster::start(1);
    let ep = c.node(1).endpoint();
    let v1 = apply_yaml(&ep, WEB_DOC).expect("apply web");

    // get config -o yaml, applied back unchanged, is a no-op.
    let yaml = cli(&ep, &["-o", "yaml", "get", "config"]).expect_success();
    assert_eq!(yaml.stderr_version(), Some(v1), "{yaml}");
    let back = cli_stdin(&ep, &["apply", "-f", "-"], &yaml.stdout).expect_success();
    assert!(
        back.stdout.contains("unchanged"),
        "re-applying `get config -o yaml` must be a no-op: {back}"
    );
    assert!(
        back.stdout.contains(&format!("config version {v1}")),
        "{back}"
    );
    let back_json = cli_stdin(&ep, &["-o", "json", "apply", "-f", "-"], &yaml.stdout)
        .expect_success()
        .json();
    assert_eq!(back_json["version"].as_u64(), Some(v1), "{back_json}");
    assert_eq!(back_json["changes"], serde_json::json!([]), "{back_json}");
    // And the JSON rendering round-trips too.
    let json = cli(&ep, &["-o", "json", "get", "config"]).expect_success();
    let back = cli_stdin(&ep, &["apply", "-f", "-"], &json.stdout).expect_success();
    assert!(back.stdout.contains("unchanged"), "{back}");
    assert_eq!(config_version(&ep), v1);

    // --dry-run shows the change and writes nothing.
    let dry = cli_stdin(
        &ep,
        &["-o", "json", "apply", "-f", "-", "--dry-run"],
        &router_doc("other"),
    )
    .expect_success()
    .json();
    assert_eq!(dry["dryRun"], true, "{dry}");
    let changes = dry["changes"].as_array().expect("changes");
    assert!(
        changes
            .iter()
            .any(|ch| ch["kind"] == "router" && ch["name"] == "other" && ch["action"] == "create"),
        "{dry}"
    );
    assert_eq!(
        config_version(&ep),
        v1,
        "a dry run must not change the version"
    );
    let out = cli(&ep, &["get", "router", "other"]);
    assert!(
        !out.success() && out.stderr.contains("NOT_FOUND"),
        "a dry run must not create anything: {out}"
    );
    let dry_table = cli_stdin(
        &ep,
        &["apply", "-f", "-", "--dry-run"],
        &router_doc("other"),
    )
    .expect_success();
    assert!(dry_table.stdout.contains("dry run"), "{dry_table}");
    assert_eq!(config_version(&ep), v1);

    // Apply for real; then --prune with the original file deletes what it does not name.
    let v2 = apply_yaml(&ep, &router_doc("other")).expect("apply other");
    assert!(v2 > v1);
    let (_, doc) = get_config(&ep).expect("get config");
    assert!(
        doc_has(&doc, "routers", "web") && doc_has(&doc, "routers", "other"),
        "{doc}"
    );
    let pruned = cli_stdin(&ep, &["-o", "json", "apply", "-f", "-", "--prune"], WEB_DOC)
        .expect_success()
        .json();
    let v3 = pruned["version"].as_u64().expect("version");
    assert!(v3 > v2, "{pruned}");
    let deleted: Vec<(String, String)> = pruned["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|ch| ch["action"] == "delete")
        .map(|ch| {
            (
                ch["kind"].as_str().unwrap_or("").to_string(),
                ch["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        deleted.contains(&("router".into(), "other".into()))
            && deleted.contains(&("service".into(), "other-svc".into())),
        "prune must delete router other and service other-svc: {pruned}"
    );
    let (gv, doc) = get_config(&ep).expect("get config");
    assert_eq!(gv, v3);
    assert!(!doc_has(&doc, "routers", "other"), "{doc}");
    assert!(!doc_has(&doc, "services", "other-svc"), "{doc}");
    assert!(doc_has(&doc, "routers", "web"), "{doc}");
    assert!(doc_has(&doc, "services", "web"), "{doc}");
    assert!(doc_has(&doc, "middlewares", "strip"), "{doc}");

    // delete router X works; deleting a missing one is NOT_FOUND and changes nothing.
    let del = cli(&ep, &["delete", "router", "web"]).expect_success();
    assert!(del.stdout.contains("deleted"), "{del}");
    let v4 = config_version(&ep);
    assert!(v4 > v3, "delete bumps the version");
    let gone = cli(&ep, &["get", "router", "web"]);
    assert!(
        !gone.success() && gone.stderr.contains("NOT_FOUND"),
        "{gone}"
    );
    let missing = cli(&ep, &["delete", "router", "missing"]).expect_failure();
    assert!(missing.stderr.contains("NOT_FOUND"), "{missing}");
    assert!(
        missing.stderr.contains("missing"),
        "the error names the router: {missing}"
    );
    assert_eq!(missing.stderr.trim().lines().count(), 1, "{missing}");
    assert_eq!(config_version(&ep), v4);
}

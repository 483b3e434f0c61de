use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use switchyard_proto::admin::{
    AddNodeRequest, ClusterStatusRequest, MembershipResponse, PromoteNodeRequest, RemoveNodeRequest,
};

use crate::args::{ClusterArgs, ClusterCommand, Format, Global};
use crate::client::{connect, status_error};
use crate::output::{print_data, print_table};

pub async fn run(g: &Global, a: ClusterArgs) -> Result<ExitCode> {
    let mut client = connect(&g.endpoints).await?;
    let membership = match a.command {
        ClusterCommand::Status => {
            let r = client
                .cluster_status(ClusterStatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let nodes: Vec<_> = r
                .nodes
                .iter()
                .map(|n| {
                    json!({
                        "id": n.id, "role": n.role, "leader": n.leader, "state": n.state,
                        "term": n.term, "appliedIndex": n.applied_index,
                        "configVersion": n.config_version, "region": n.region, "zone": n.zone,
                        "apiAddr": n.api_addr, "peerAddr": n.peer_addr, "httpAddr": n.http_addr,
                        "reachable": n.reachable, "error": n.error,
                    })
                })
                .collect();
            match g.output {
                Format::Table => {
                    let rows: Vec<Vec<String>> = r
                        .nodes
                        .iter()
                        .map(|n| {
                            let dash = |s: &str| {
                                if s.is_empty() {
                                    "-".to_string()
                                } else {
                                    s.to_string()
                                }
                            };
                            vec![
                                n.id.to_string(),
                                n.role.clone(),
                                if n.leader { "*".into() } else { String::new() },
                                n.state.clone(),
                                if n.reachable {
                                    n.term.to_string()
                                } else {
                                    "-".into()
                                },
                                if n.reachable {
                                    n.applied_index.to_string()
                                } else {
                                    "-".into()
                                },
                                if n.reachable {
                                    n.config_version.to_string()
                                } else {
                                    "-".into()
                                },
                                dash(&n.region),
                                dash(&n.zone),
                                dash(&n.api_addr),
                                dash(&n.peer_addr),
                                if n.reachable {
                                    "yes".into()
                                } else {
                                    format!("no ({})", n.error)
                                },
                            ]
                        })
                        .collect();
                    print_table(
                        &[
                            "ID",
                            "ROLE",
                            "LEADER",
                            "STATE",
                            "TERM",
                            "APPLIED",
                            "VERSION",
                            "REGION",
                            "ZONE",
                            "API",
                            "PEER",
                            "REACHABLE",
                        ],
                        &rows,
                    );
                    if !r.has_leader {
                        println!("no leader known to node {}", r.served_by);
                    }
                }
                f => print_data(
                    f,
                    &json!({
                        "servedBy": r.served_by, "hasLeader": r.has_leader,
                        "leaderId": r.leader_id, "configVersion": r.config_version, "nodes": nodes,
                    }),
                )?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        ClusterCommand::Add(n) => client
            .add_node(AddNodeRequest {
                node_id: n.node_id,
                api_addr: n.api_addr,
                peer_addr: n.peer_addr,
                http_addr: n.http_addr,
                region: n.region,
                zone: n.zone,
            })
            .await
            .map_err(status_error)?
            .into_inner(),
        ClusterCommand::Promote { node_id } => client
            .promote_node(PromoteNodeRequest { node_id })
            .await
            .map_err(status_error)?
            .into_inner(),
        ClusterCommand::Remove { node_id } => client
            .remove_node(RemoveNodeRequest { node_id })
            .await
            .map_err(status_error)?
            .into_inner(),
    };
    print_membership(g.output, &membership)?;
    Ok(ExitCode::SUCCESS)
}

fn print_membership(format: Format, m: &MembershipResponse) -> Result<()> {
    let join = |v: &[u64]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
    };
    match format {
        Format::Table => {
            println!("voters: {}", join(&m.voters));
            println!("learners: {}", join(&m.learners));
        }
        f => print_data(f, &json!({"voters": m.voters, "learners": m.learners}))?,
    }
    Ok(())
}

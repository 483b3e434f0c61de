//! `switchyard token create|list|revoke`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use switchyard_proto::admin::{
    CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, TokenInfo,
};

use crate::args::{Format, Global, TokenArgs, TokenCommand};
use crate::client::{connect, status_error};
use crate::output::{print_data, print_table};

fn token_json(t: &TokenInfo) -> serde_json::Value {
    json!({
        "id": t.id, "role": t.role, "description": t.description,
        "createdUnix": t.created_unix,
        "expiresUnix": if t.expires_unix == 0 { serde_json::Value::Null } else { json!(t.expires_unix) },
        "revoked": t.revoked,
    })
}

pub async fn run(g: &Global, a: TokenArgs) -> Result<ExitCode> {
    let mut client = connect(&g.endpoints).await?;
    match a.command {
        TokenCommand::Create {
            role,
            ttl,
            description,
        } => {
            let ttl_seconds = match ttl {
                Some(t) => super::server::duration("ttl", &t)?.as_secs().max(1),
                None => 0,
            };
            let r = client
                .create_token(CreateTokenRequest {
                    role,
                    ttl_seconds,
                    description,
                    id: String::new(),
                    secret_sha256: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let info = r.token.unwrap_or_default();
            match g.output {
                Format::Table => {
                    // The secret alone on stdout (easy to capture); the rest on stderr.
                    eprintln!(
                        "token {} (role {}) created; its secret is shown only now:",
                        info.id, info.role
                    );
                    println!("{}", r.secret);
                }
                f => {
                    let mut v = token_json(&info);
                    v["secret"] = json!(r.secret);
                    print_data(f, &v)?;
                }
            }
        }
        TokenCommand::List => {
            let r = client
                .list_tokens(ListTokensRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            match g.output {
                Format::Table => {
                    let rows: Vec<Vec<String>> = r
                        .tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.role.clone(),
                                if t.revoked {
                                    "revoked".into()
                                } else {
                                    "active".into()
                                },
                                if t.expires_unix == 0 {
                                    "never".into()
                                } else {
                                    t.expires_unix.to_string()
                                },
                                t.description.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "ROLE", "STATE", "EXPIRES", "DESCRIPTION"], &rows);
                }
                f => {
                    let v: Vec<_> = r.tokens.iter().map(token_json).collect();
                    print_data(f, &v)?;
                }
            }
        }
        TokenCommand::Revoke { id } => {
            client
                .revoke_token(RevokeTokenRequest { id: id.clone() })
                .await
                .map_err(status_error)?;
            eprintln!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use switchyard_proto::admin::DeleteRequest;

use crate::args::{DeleteArgs, DeleteKind, Format, Global};
use crate::client::{connect, status_error};
use crate::output::print_data;

pub async fn run(g: &Global, a: DeleteArgs) -> Result<ExitCode> {
    let kind = match a.kind {
        DeleteKind::Router => "router",
        DeleteKind::Service => "service",
        DeleteKind::Middleware => "middleware",
        DeleteKind::TcpRouter => "tcpRouter",
        DeleteKind::TcpService => "tcpService",
        DeleteKind::TcpMiddleware => "tcpMiddleware",
        DeleteKind::TcpServersTransport => "tcpServersTransport",
    };
    let mut client = connect(&g.endpoints).await?;
    let r = client
        .delete(DeleteRequest {
            kind: kind.into(),
            name: a.name.clone(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    match g.output {
        Format::Table => println!("{kind}/{} deleted: config version {}", a.name, r.version),
        f => print_data(
            f,
            &json!({"version": r.version, "changes": [{"kind": kind, "name": a.name, "action": "delete"}]}),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

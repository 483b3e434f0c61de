//! Connects the admin CLI to the first reachable control node of `--endpoints`.

use std::time::Duration;

use anyhow::{anyhow, Result};
use switchyard_proto::admin::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

pub async fn connect(endpoints: &[String]) -> Result<AdminClient<Channel>> {
    let mut errors = Vec::new();
    for ep in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let url = if ep.contains("://") {
            ep.to_string()
        } else {
            format!("http://{ep}")
        };
        let endpoint = match Endpoint::from_shared(url) {
            Ok(e) => e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true),
            Err(e) => {
                errors.push(format!("{ep}: {e}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(ch) => {
                return Ok(AdminClient::new(ch)
                    .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES))
            }
            Err(e) => errors.push(format!("{ep}: {e}")),
        }
    }
    Err(anyhow!(
        "no control node reachable ({})",
        if errors.is_empty() {
            "no endpoints given".to_string()
        } else {
            errors.join("; ")
        }
    ))
}

/// A gRPC status as a one-line error: the server's message and the code.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    let code = format!("{:?}", s.code());
    anyhow!("{} (code: {})", s.message(), to_screaming_snake(&code))
}

fn to_screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_render_like_grpc() {
        assert_eq!(
            super::to_screaming_snake("InvalidArgument"),
            "INVALID_ARGUMENT"
        );
        assert_eq!(super::to_screaming_snake("Unavailable"), "UNAVAILABLE");
    }
}

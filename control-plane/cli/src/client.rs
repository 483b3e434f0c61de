//! Connects the admin CLI to the first reachable control node of `--endpoints`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use switchyard_proto::admin::admin_client::AdminClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How the CLI reaches control nodes: TLS (verified with the cluster CA) and a bearer token, or
/// plaintext with `--insecure`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub insecure: bool,
    pub ca_cert: Option<PathBuf>,
    pub token: Option<String>,
}

static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

/// Sets the credentials every later [`connect`] uses (once, from the global flags).
pub fn configure(c: Credentials) {
    let _ = CREDENTIALS.set(c);
}

fn credentials() -> Credentials {
    CREDENTIALS.get().cloned().unwrap_or_default()
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The admin client every command uses.
pub type Client = AdminClient<InterceptedService<Channel, Auth>>;

/// The URL for an endpoint: `https://` unless `--insecure` (then `http://`). An explicit `http://`
/// needs `--insecure` (a token is never sent in clear by accident); `https://` is always TLS.
pub fn endpoint_url(ep: &str, insecure: bool) -> Result<String> {
    if let Some(rest) = ep.strip_prefix("http://") {
        if !insecure {
            return Err(anyhow!(
                "{ep}: plaintext endpoint; use https://{rest} (the default) or pass --insecure"
            ));
        }
        return Ok(ep.to_string());
    }
    if ep.starts_with("https://") {
        return Ok(ep.to_string());
    }
    Ok(format!(
        "{}://{ep}",
        if insecure { "http" } else { "https" }
    ))
}

/// A gRPC endpoint for `ep` with the configured TLS (the CA from `--ca-cert`).
pub fn endpoint(ep: &str) -> Result<Endpoint> {
    let c = credentials();
    let url = endpoint_url(ep, c.insecure)?;
    let mut e = Endpoint::from_shared(url.clone())
        .map_err(|e| anyhow!("{ep}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let path = c.ca_cert.as_ref().ok_or_else(|| {
            anyhow!("{ep}: TLS needs the cluster CA: pass --ca-cert FILE (DATA_DIR/ca.pem of a control node) or SWITCHYARD_CA_CERT, or --insecure for a plaintext development cluster")
        })?;
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("--ca-cert {}", path.display()))?;
        e = e
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| anyhow!("{ep}: TLS: {e}"))?;
    }
    Ok(e)
}

/// The bearer-token interceptor for the configured `--token`.
pub fn auth() -> Result<Auth> {
    match credentials().token.filter(|t| !t.trim().is_empty()) {
        None => Ok(Auth(None)),
        Some(t) => {
            let v = format!("Bearer {}", t.trim())
                .parse()
                .map_err(|_| anyhow!("--token: not a valid token"))?;
            Ok(Auth(Some(v)))
        }
    }
}

pub async fn connect(endpoints: &[String]) -> Result<Client> {
    let mut errors = Vec::new();
    let auth = auth()?;
    for ep in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let endpoint = match endpoint(ep) {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(ch) => {
                return Ok(AdminClient::with_interceptor(ch, auth)
                    .max_decoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(switchyard_proto::MAX_MESSAGE_BYTES))
            }
            Err(e) => errors.push(format!("{ep}: {}", transport_error(&e))),
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

/// A transport error with its causes (e.g. a TLS failure behind "transport error").
fn transport_error(e: &tonic::transport::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
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

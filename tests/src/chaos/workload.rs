//! The chaos workload: concurrent clients, each bound to one control node, writing and reading
//! registers through the admin gRPC API (TLS and a bearer token, as the CLI does) and recording
//! every operation in a [`History`].
//!
//! A write is one `Apply` of a JSON document that sets router `reg-K`'s rule to carry the value
//! and creates the value's marker router (see [`super::history`]); a read is a consistent `Get`
//! of `reg-K`. Values are unique (`cPROCESS-SEQ`), which keeps the checker's search small.
//!
//! Outcomes: a write answered with a version is `ok`; refused as bad input (invalid argument,
//! not found, failed precondition, permission) is `fail`; anything else (unavailable, timed out,
//! connection lost) is `info`. A client only invokes an operation once it holds a connection,
//! so a node that is down costs reconnect attempts, not a stream of `info` writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use switchyard_proto::admin::admin_client::AdminClient;
use switchyard_proto::admin::{ApplyRequest, GetRequest};
use tokio::runtime::Runtime;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::history::{marker, History, Op, Outcome};

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// An admin client.
pub type Client = AdminClient<InterceptedService<Channel, Bearer>>;

/// How to reach the cluster.
#[derive(Clone)]
pub struct Access {
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// An admin token.
    pub token: String,
}

impl Access {
    /// Connects to `api` (`host:port`) within `timeout`.
    pub async fn connect(&self, api: &str, timeout: Duration) -> Result<Client, String> {
        let endpoint = Endpoint::from_shared(format!("https://{api}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)))
            .map_err(|e| e.to_string())?;
        let channel = tokio::time::timeout(timeout, endpoint.connect())
            .await
            .map_err(|_| format!("connecting to {api} timed out"))?
            .map_err(|e| format!("connecting to {api}: {e}"))?;
        let token = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| "token is not valid metadata".to_string())?;
        Ok(AdminClient::with_interceptor(channel, Bearer(token)))
    }
}

/// The service every register and marker router uses (created before the workload starts).
pub const SERVICE: &str = "chaos-svc";

/// The document that sets up [`SERVICE`].
pub fn service_doc() -> String {
    serde_json::json!({"http": {"services": {SERVICE: {"loadBalancer": {"servers": [
        {"url": "http://127.0.0.1:9"}
    ]}}}}})
    .to_string()
}

/// The document of a write: register `key` := `value`, plus the value's marker router.
pub fn write_doc(key: &str, value: &str) -> String {
    let router = |host: &str| serde_json::json!({"rule": format!("Host(`{host}.chaos`)"), "service": SERVICE});
    serde_json::json!({"http": {"routers": {
        key: router(value),
        marker(value): router(&marker(value)),
    }}})
    .to_string()
}

/// The value a register router's JSON carries (its rule's host, without `.chaos`).
pub fn value_of(router_json: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(router_json).map_err(|e| format!("{e}: {router_json}"))?;
    let rule = v["rule"].as_str().unwrap_or_default();
    rule.strip_prefix("Host(`")
        .and_then(|r| r.strip_suffix(".chaos`)"))
        .map(str::to_string)
        .ok_or_else(|| format!("unexpected rule in {router_json}"))
}

/// Writes `key` := `value` through `client`: the outcome as the history records it.
pub async fn write(client: &mut Client, key: &str, value: &str, timeout: Duration) -> Outcome {
    write_versioned(client, key, value, timeout).await.0
}

/// [`write`], with the committed config version of an `ok` write.
pub async fn write_versioned(
    client: &mut Client,
    key: &str,
    value: &str,
    timeout: Duration,
) -> (Outcome, Option<u64>) {
    let mut req = tonic::Request::new(ApplyRequest {
        document: write_doc(key, value),
        prune: false,
        dry_run: false,
        rollout: None,
    });
    req.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.apply(req)).await {
        Err(_) => (Outcome::Info(format!("no answer within {timeout:?}")), None),
        Ok(Ok(r)) => (Outcome::Ok(None), Some(r.into_inner().version)),
        Ok(Err(s)) => match s.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated => (
                Outcome::Fail(format!("{:?}: {}", s.code(), s.message())),
                None,
            ),
            _ => (
                Outcome::Info(format!("{:?}: {}", s.code(), s.message())),
                None,
            ),
        },
    }
}

/// A read of `key` through `client`: consistent (linearizable) unless `local` (answered from the
/// node's applied state; only the negative control uses that).
pub async fn read(client: &mut Client, key: &str, local: bool, timeout: Duration) -> Outcome {
    read_versioned(client, key, local, timeout).await.0
}

/// [`read`], with the config version an `ok` answer reflects (when it carries one).
pub async fn read_versioned(
    client: &mut Client,
    key: &str,
    local: bool,
    timeout: Duration,
) -> (Outcome, Option<u64>) {
    let mut req = tonic::Request::new(GetRequest {
        kind: "router".into(),
        name: key.into(),
        consistent: !local,
    });
    req.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.get(req)).await {
        Err(_) => (Outcome::Info(format!("no answer within {timeout:?}")), None),
        Ok(Ok(r)) => {
            let r = r.into_inner();
            let outcome = match r.resource.map(|r| value_of(&r.json)) {
                Some(Ok(v)) => Outcome::Ok(Some(v)),
                Some(Err(e)) => Outcome::Fail(e),
                None => Outcome::Fail("an answer without a resource".into()),
            };
            (outcome, Some(r.version))
        }
        // The register does not exist (yet).
        Ok(Err(s)) if s.code() == Code::NotFound => (Outcome::Ok(None), None),
        Ok(Err(s)) => (
            Outcome::Fail(format!("{:?}: {}", s.code(), s.message())),
            None,
        ),
    }
}

/// What the workload does.
#[derive(Clone)]
pub struct WorkloadConfig {
    /// Number of client processes.
    pub clients: usize,
    /// Number of registers (`reg-0` …).
    pub keys: usize,
    /// `(node id, API address)`; client `i` talks to node `i % len` only.
    pub nodes: Vec<(u64, String)>,
    /// Credentials.
    pub access: Access,
    /// Deadline of one operation.
    pub op_timeout: Duration,
    /// Pause between two operations of one client (keeps the load moderate on CI).
    pub pause: Duration,
    /// Fraction of operations that are writes.
    pub write_ratio: f64,
    /// Seed of the clients' random choices.
    pub seed: u64,
}

/// Running clients.
pub struct Workload {
    rt: Runtime,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts the clients.
    pub fn start(cfg: WorkloadConfig, history: Arc<History>) -> Workload {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("chaos-client")
            .build()
            .expect("building the client runtime");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..cfg.clients)
            .map(|p| {
                rt.spawn(client_loop(
                    p,
                    cfg.clone(),
                    Arc::clone(&history),
                    Arc::clone(&stop),
                ))
            })
            .collect();
        Workload { rt, stop, tasks }
    }

    /// Stops the clients and waits until each finished its current operation.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let tasks = self.tasks;
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
    }
}

async fn client_loop(
    process: usize,
    cfg: WorkloadConfig,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) {
    let (node, api) = cfg.nodes[process % cfg.nodes.len()].clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ ((process as u64 + 1) * 0x9e37));
    let mut client: Option<Client> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut c = match client.take() {
            Some(c) => c,
            None => match cfg.access.connect(&api, Duration::from_secs(1)).await {
                Ok(c) => c,
                Err(_) => {
                    // The node is down or cut off: try again shortly.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let key = format!("reg-{}", rng.random_range(0..cfg.keys));
        let op = if rng.random_bool(cfg.write_ratio) {
            seq += 1;
            Op::Write {
                key,
                value: format!("c{process}-{seq}"),
            }
        } else {
            Op::Read { key }
        };
        history.invoke(process, node, &op);
        let (outcome, version) = match &op {
            Op::Write { key, value } => write_versioned(&mut c, key, value, cfg.op_timeout).await,
            Op::Read { key } => read_versioned(&mut c, key, false, cfg.op_timeout).await,
        };
        let healthy = matches!(outcome, Outcome::Ok(_));
        history.complete_versioned(process, node, &op, outcome, version);
        if healthy {
            client = Some(c);
        }
        // After an error the connection is dropped and made again: a broken one is not reused.
        tokio::time::sleep(cfg.pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let doc: serde_json::Value =
            serde_json::from_str(&write_doc("reg-1", "c3-17")).expect("json");
        let reg = &doc["http"]["routers"]["reg-1"];
        assert_eq!(reg["service"], SERVICE);
        assert_eq!(value_of(&reg.to_string()), Ok("c3-17".to_string()));
        assert!(doc["http"]["routers"]["m-c3-17"].is_object());
        assert!(value_of(r#"{"rule":"PathPrefix(`/`)"}"#).is_err());
    }
}

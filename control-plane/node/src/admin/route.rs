use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use switchyard_proto::admin::admin_client::AdminClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::AdminService;
use crate::errors::{is_not_leader, ApiError, FORWARDED, REQUEST_ID};
use crate::shared::Target;

/// How a request is sent to the leader's Admin service.
pub(super) type Remote<Req, Resp> = fn(
    AdminClient<Channel>,
    tonic::Request<Req>,
)
    -> BoxFuture<'static, Result<tonic::Response<Resp>, Status>>;

/// Who sent an admin call: a client, or a follower forwarding it (with the id the follower gave it).
#[derive(Debug, Clone, Default)]
pub(super) struct Caller {
    pub forwarded: bool,
    pub request_id: Option<String>,
    /// The W3C trace context the call came with (`traceparent` metadata); a forward to the
    /// leader carries the one of this node's span instead (set by the handler).
    pub traceparent: Option<String>,
}

impl Caller {
    /// Reads the forwarding metadata of `r`. An id that is not short printable ASCII is ignored
    /// (a new one is made).
    pub fn of<T>(r: &tonic::Request<T>) -> Caller {
        let md = r.metadata();
        let request_id = md
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string);
        let traceparent = md
            .get(crate::trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::trace::valid_traceparent(v))
            .map(str::to_string);
        Caller {
            forwarded: md.contains_key(FORWARDED),
            request_id,
            traceparent,
        }
    }
}

tokio::task_local! {
    /// The id the write being handled is committed under ([`AdminService::commit`] reads it).
    pub(super) static WRITE_ID: String;
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl AdminService {
    /// Runs `local` if this node is the leader, else forwards `req` to the leader with `remote`.
    /// A request that was itself forwarded is never forwarded again: it answers "not leader" and the
    /// forwarding node retries with the same request id, so a write whose first forward committed
    /// but whose answer was lost is not applied twice. Everything happens within the write timeout; when it runs out the
    /// answer says why in cluster terms (no leader, no quorum), not in transport terms.
    pub(super) async fn on_leader<Req, Resp, L, LF>(
        &self,
        caller: Caller,
        req: Req,
        remote: Remote<Req, Resp>,
        local: L,
    ) -> Result<Resp, ApiError>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
        L: Fn(Req) -> LF,
        LF: Future<Output = Result<Resp, ApiError>>,
    {
        let timeout = self.shared.opts.write_timeout;
        let deadline = Instant::now() + timeout;
        let forwarded = caller.forwarded;
        let traceparent: Option<MetadataValue<tonic::metadata::Ascii>> =
            caller.traceparent.and_then(|t| t.parse().ok());
        let id = caller.request_id.unwrap_or_else(new_request_id);
        let id_value: MetadataValue<tonic::metadata::Ascii> = id
            .parse()
            .unwrap_or_else(|_| MetadataValue::from_static("invalid"));
        loop {
            match self.shared.leader_target(deadline).await {
                Err(e) => return Err(e),
                Ok(Target::Local) => match WRITE_ID.scope(id.clone(), local(req.clone())).await {
                    Err(ApiError::NotLeader) => {}
                    other => return other,
                },
                Ok(Target::Remote(_)) if forwarded => return Err(ApiError::NotLeader),
                Ok(Target::Remote(client)) => {
                    let mut fwd = tonic::Request::new(req.clone());
                    fwd.metadata_mut()
                        .insert(FORWARDED, MetadataValue::from_static("1"));
                    fwd.metadata_mut().insert(REQUEST_ID, id_value.clone());
                    if let Some(tp) = &traceparent {
                        fwd.metadata_mut()
                            .insert(crate::trace::TRACEPARENT, tp.clone());
                    }
                    fwd.set_timeout(deadline.saturating_duration_since(Instant::now()));
                    match tokio::time::timeout_at(deadline.into(), remote(client, fwd)).await {
                        Err(_) => return Err(ApiError::NoQuorum(timeout)),
                        Ok(Ok(resp)) => return Ok(resp.into_inner()),
                        // The leader moved or is unreachable (e.g. just died): retry on the next one.
                        Ok(Err(s)) if is_not_leader(&s) || s.code() == Code::Unavailable => {
                            tracing::debug!(status = %s, "forward to leader failed; retrying");
                        }
                        Ok(Err(s)) => return Err(ApiError::Remote(s)),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::NoQuorum(timeout));
            }
            // Back off briefly before asking again who leads (an election is under way).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

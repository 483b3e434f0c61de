use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use switchyard_proto::admin::admin_client::AdminClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::AdminService;
use crate::errors::{is_not_leader, ApiError, FORWARDED};
use crate::node::Target;

/// How a request is sent to the leader's Admin service.
pub(super) type Remote<Req, Resp> = fn(
    AdminClient<Channel>,
    tonic::Request<Req>,
)
    -> BoxFuture<'static, Result<tonic::Response<Resp>, Status>>;

impl AdminService {
    /// Runs `local` if this node is the leader, else forwards `req` to the leader with `remote`.
    /// A request that was itself forwarded is never forwarded again: it answers "not leader" and the
    /// forwarding node retries. Everything happens within the write timeout; when it runs out the
    /// answer says why in cluster terms (no leader, no quorum), not in transport terms.
    pub(super) async fn on_leader<Req, Resp, L, LF>(
        &self,
        forwarded: bool,
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
        loop {
            match self.shared.leader_target(deadline).await {
                Err(e) => return Err(e),
                Ok(Target::Local) => match local(req.clone()).await {
                    Err(ApiError::NotLeader) => {}
                    other => return other,
                },
                Ok(Target::Remote(_)) if forwarded => return Err(ApiError::NotLeader),
                Ok(Target::Remote(client)) => {
                    let mut fwd = tonic::Request::new(req.clone());
                    fwd.metadata_mut()
                        .insert(FORWARDED, MetadataValue::from_static("1"));
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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ChangeMembers;
use opentelemetry::trace::{Span as _, SpanContext};
use switchyard_config::{check_document_size, parse_document, Change, DynamicConfig, Kind};
use switchyard_otel::Span;
use switchyard_proto::admin::admin_server::Admin;
use switchyard_proto::admin::*;
use switchyard_store::{
    AppliedState, Node, NodeId, NodeInfo, Request as Cmd, Response as CmdResponse,
};
use tonic::{Request, Response, Status};

use super::route::Caller;
use crate::errors::ApiError;
use crate::proposer::write_error;
use crate::shared::Shared;

#[derive(Clone)]
pub struct AdminService {
    pub(super) shared: Arc<Shared>,
}

type ApiResult<T> = Result<T, ApiError>;

fn parse_kind(kind: &str) -> ApiResult<Kind> {
    Kind::parse(kind).ok_or_else(|| {
        ApiError::Invalid(format!(
            "unknown kind {kind:?}: expected router, service, middleware, tcpRouter, tcpService, tcpMiddleware or tcpServersTransport"
        ))
    })
}

fn changes_to_proto(changes: Vec<Change>) -> Vec<switchyard_proto::admin::Change> {
    changes
        .into_iter()
        .map(|c| switchyard_proto::admin::Change {
            kind: c.kind.as_str().to_string(),
            name: c.name,
            action: serde_json::to_value(c.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        })
        .collect()
}

impl AdminService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn applied(&self) -> AppliedState {
        self.shared.applied.borrow().clone()
    }

    fn finish<T>(&self, method: &str, r: ApiResult<T>) -> Result<Response<T>, Status> {
        let code = match &r {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        };
        self.shared.metrics.count_request(method, code);
        r.map(Response::new).map_err(Status::from)
    }

    /// `cmd` under the call's request id, if it has one: a retry of a write that committed
    /// answers its outcome (preview, screen and apply all look the id up first). `trace`: the
    /// call's span, whose context the log entry carries to every node and proxy.
    fn once(&self, cmd: Cmd, trace: Option<&SpanContext>) -> Cmd {
        match super::route::WRITE_ID.try_with(|id| id.clone()) {
            Ok(id) => cmd.once_traced(id, trace.and_then(switchyard_otel::traceparent)),
            Err(_) => cmd,
        }
    }

    /// The server span of a config write `method` when the node traces; `caller` then forwards
    /// this span's context to the leader.
    fn write_span(&self, method: &'static str, caller: &mut Caller) -> Option<Span> {
        let t = self.shared.tracer.as_ref()?;
        let span = crate::trace::admin_span(
            t,
            method,
            self.shared.id,
            caller.traceparent.as_deref(),
            caller.forwarded,
        );
        caller.traceparent = switchyard_otel::traceparent(span.span_context());
        Some(span)
    }

    /// Commits a config command on this node, which must be the leader, through the proposer
    /// (batched with concurrent writes; `size`: the bytes of its document). Bad input is refused
    /// before it reaches the log; the state machine checks again when applying.
    async fn commit_config(
        &self,
        cmd: Cmd,
        size: usize,
        trace: Option<SpanContext>,
    ) -> ApiResult<CmdResponse> {
        let cmd = self.once(cmd, trace.as_ref());
        let started = Instant::now();
        let resp = self.shared.proposer.propose(cmd, size, trace).await?;
        self.shared
            .metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        match resp {
            CmdResponse::Rejected(r) => Err(r.into()),
            other => Ok(other),
        }
    }

    /// Commits a command on this node, which must be the leader. Bad input is refused before it
    /// reaches the log; the state machine checks again when applying.
    pub(super) async fn commit(&self, cmd: Cmd) -> ApiResult<CmdResponse> {
        let cmd = self.once(cmd, None);
        let state = self.applied().state;
        let version = state.config_version;
        let (cmd, preview) = self.preview(state, cmd).await?;
        if let CmdResponse::Rejected(r) = preview {
            return Err(r.into());
        }
        let cmd = cmd.validated_at(version);
        let started = Instant::now();
        let timeout = self.shared.opts.write_timeout;
        let resp = tokio::time::timeout(timeout, self.shared.raft.client_write(cmd))
            .await
            .map_err(|_| ApiError::NoQuorum(timeout))?
            .map_err(write_error)?;
        self.shared
            .metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        match resp.data {
            CmdResponse::Rejected(r) => Err(r.into()),
            other => Ok(other),
        }
    }

    /// `state.preview(cmd)` (validating and compiling the config `cmd` would produce) on the
    /// bounded CPU pool, off the runtime threads that drive Raft.
    async fn preview(
        &self,
        state: Arc<switchyard_store::ClusterState>,
        cmd: Cmd,
    ) -> ApiResult<(Cmd, CmdResponse)> {
        self.shared
            .cpu
            .run(move || {
                let out = state.preview(&cmd);
                (cmd, out)
            })
            .await
    }

    /// Confirms leadership with a quorum and waits for the local state to catch up.
    ///
    /// openraft reads at `max(commit index, the leader's first entry of its term)`. A leader
    /// restored after a restart keeps its old term and first entry, and its commit index is the
    /// one it last persisted, which can be older than writes it acknowledged before it stopped
    /// (the chaos suite found such stale reads after whole-cluster kills). In that term, reads
    /// also wait until the log the node restarted with is applied: all of it is this leader's
    /// to commit, so this only waits for a quorum.
    async fn linearize(&self) -> ApiResult<()> {
        let timeout = self.shared.opts.write_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let read =
            match tokio::time::timeout_at(deadline, self.shared.raft.ensure_linearizable()).await {
                Err(_) => return Err(ApiError::NoQuorum(timeout)),
                Ok(Ok(read)) => read,
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                    return Err(ApiError::NotLeader)
                }
                Ok(Err(e)) => return Err(ApiError::ReadUnavailable(e.to_string())),
            };
        if let Some((term, floor)) = self.shared.restored_leadership {
            let current_term = self.shared.raft.metrics().borrow().current_term;
            if current_term == term && read.map(|l| l.index).unwrap_or(0) < floor {
                let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                self.shared
                    .raft
                    .wait(Some(wait))
                    .applied_index_at_least(Some(floor), "restored leader's log applied")
                    .await
                    .map_err(|_| ApiError::NoQuorum(timeout))?;
            }
        }
        Ok(())
    }

    /// `document` is `r.document` already parsed (by the node that received the request).
    async fn apply_local(
        &self,
        r: ApplyRequest,
        document: DynamicConfig,
        trace: Option<SpanContext>,
    ) -> ApiResult<ApplyResponse> {
        let plan = r
            .rollout
            .as_ref()
            .map(super::rollout::plan_of)
            .transpose()?;
        let out = match plan {
            // A rollout start is not batched with plain writes: it commits on its own.
            Some(plan) => {
                let cmd = super::rollout::start(document, r.prune, plan);
                if r.dry_run {
                    self.preview(self.applied().state, cmd).await?.1
                } else {
                    self.commit(cmd).await?
                }
            }
            None => {
                let cmd = Cmd::Apply {
                    document,
                    prune: r.prune,
                    validated_at: None,
                };
                if r.dry_run {
                    self.preview(self.applied().state, cmd).await?.1
                } else {
                    self.commit_config(cmd, r.document.len(), trace).await?
                }
            }
        };
        match out {
            CmdResponse::Applied { version, changes } => Ok(ApplyResponse {
                version,
                changes: changes_to_proto(changes),
                dry_run: r.dry_run,
                trace_id: String::new(),
            }),
            CmdResponse::Rejected(rej) => Err(rej.into()),
            CmdResponse::Done | CmdResponse::Batch(_) => {
                Err(ApiError::Internal("unexpected apply result".into()))
            }
        }
    }

    async fn delete_local(
        &self,
        r: DeleteRequest,
        trace: Option<SpanContext>,
    ) -> ApiResult<DeleteResponse> {
        let kind = parse_kind(&r.kind)?;
        let size = r.name.len();
        match self
            .commit_config(
                Cmd::Delete {
                    kind,
                    name: r.name,
                    validated_at: None,
                },
                size,
                trace,
            )
            .await?
        {
            CmdResponse::Applied { version, .. } => Ok(DeleteResponse { version }),
            _ => Err(ApiError::Internal("unexpected delete result".into())),
        }
    }

    fn get_from(&self, st: &AppliedState, r: &GetRequest) -> ApiResult<GetResponse> {
        let kind = parse_kind(&r.kind)?;
        let value = st
            .state
            .config
            .resource_json(kind, &r.name)
            .ok_or_else(|| {
                ApiError::NotFound(format!("{} {:?} not found", kind.as_str(), r.name))
            })?;
        Ok(GetResponse {
            version: st.state.config_version,
            resource: Some(Resource {
                kind: kind.as_str().to_string(),
                name: r.name.clone(),
                json: value.to_string(),
            }),
        })
    }

    fn list_from(&self, st: &AppliedState, r: &ListRequest) -> ApiResult<ListResponse> {
        let kind = parse_kind(&r.kind)?;
        let cfg = &st.state.config;
        let resources = cfg
            .names(kind)
            .into_iter()
            .filter_map(|name| {
                cfg.resource_json(kind, &name).map(|v| Resource {
                    kind: kind.as_str().to_string(),
                    name,
                    json: v.to_string(),
                })
            })
            .collect();
        Ok(ListResponse {
            version: st.state.config_version,
            resources,
        })
    }

    fn certs_from(
        &self,
        st: &AppliedState,
        r: &ListCertificatesRequest,
    ) -> ApiResult<ListCertificatesResponse> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let certificates: Vec<CertificateStatus> = switchyard_acme::certinfo::list(&st.state, now)
            .into_iter()
            .filter(|c| r.name.is_empty() || c.name == r.name)
            .map(|c| CertificateStatus {
                name: c.name,
                names: c.names,
                issuer: c.issuer,
                not_before: c.not_before,
                not_after: c.not_after,
                source: c.source,
                status: c.status,
                last_error: c.last_error,
                serial: c.serial,
                next_attempt: c.next_attempt,
                failures: c.failures,
                ocsp_status: c.ocsp_status,
                ocsp_next_update: c.ocsp_next_update,
            })
            .collect();
        if !r.name.is_empty() && certificates.is_empty() {
            return Err(ApiError::NotFound(format!(
                "certificate {:?} not found",
                r.name
            )));
        }
        Ok(ListCertificatesResponse {
            certificates,
            version: st.state.config_version,
        })
    }

    fn config_from(st: &AppliedState) -> ApiResult<GetConfigResponse> {
        // Never private keys or the managed material: `get certs` reports certificates.
        let cfg: DynamicConfig = st.state.config.for_display();
        Ok(GetConfigResponse {
            version: st.state.config_version,
            json: serde_json::to_string(&cfg).map_err(|e| ApiError::Internal(e.to_string()))?,
        })
    }

    /// A read from this node's applied state, or (consistent) a linearizable one via the leader.
    async fn read<Req, Resp>(
        &self,
        forwarded: Caller,
        consistent: bool,
        req: Req,
        remote: super::route::Remote<Req, Resp>,
        f: fn(&Self, &AppliedState, &Req) -> ApiResult<Resp>,
    ) -> ApiResult<Resp>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
    {
        if !consistent {
            return f(self, &self.applied(), &req);
        }
        self.on_leader(forwarded, req, remote, |req| async move {
            self.linearize().await?;
            f(self, &self.applied(), &req)
        })
        .await
    }

    fn membership(&self) -> MembershipResponse {
        let m = self.shared.raft_metrics();
        let mem = m.membership_config.membership();
        MembershipResponse {
            voters: mem.voter_ids().collect(),
            learners: mem.learner_ids().collect(),
            log_index: m.membership_config.log_id().map(|l| l.index).unwrap_or(0),
        }
    }

    async fn change_membership(&self, change: ChangeMembers<NodeId, Node>) -> ApiResult<()> {
        let timeout = self.shared.opts.write_timeout;
        tokio::time::timeout(timeout, self.shared.raft.change_membership(change, false))
            .await
            .map_err(|_| ApiError::NoQuorum(timeout))?
            .map_err(write_error)?;
        Ok(())
    }

    async fn add_node_local(&self, r: AddNodeRequest) -> ApiResult<MembershipResponse> {
        if r.node_id == 0 {
            return Err(ApiError::Invalid(
                "node_id: must be a positive number".into(),
            ));
        }
        if r.peer_addr.trim().is_empty() {
            return Err(ApiError::Invalid("peer_addr: must not be empty".into()));
        }
        if r.api_addr.trim().is_empty() {
            return Err(ApiError::Invalid("api_addr: must not be empty".into()));
        }
        let info = NodeInfo {
            api_addr: r.api_addr.clone(),
            peer_addr: r.peer_addr.clone(),
            http_addr: r.http_addr.clone(),
            region: r.region.clone(),
            zone: r.zone.clone(),
        };
        if self.applied().state.nodes.get(&r.node_id) != Some(&info) {
            self.commit(Cmd::RegisterNode {
                id: r.node_id,
                info,
            })
            .await?;
        }
        let is_member = self
            .shared
            .raft_metrics()
            .membership_config
            .membership()
            .get_node(&r.node_id)
            .is_some();
        // Adding an existing member only refreshes what it says about itself.
        if !is_member {
            let timeout = self.shared.opts.write_timeout;
            tokio::time::timeout(
                timeout,
                self.shared.raft.add_learner(
                    r.node_id,
                    Node {
                        peer_addr: r.peer_addr,
                    },
                    false,
                ),
            )
            .await
            .map_err(|_| ApiError::NoQuorum(timeout))?
            .map_err(write_error)?;
        }
        Ok(self.membership())
    }

    /// Adds (or refreshes) a node through the leader; used by self-registration.
    pub(crate) async fn add_node_routed(&self, r: AddNodeRequest) -> ApiResult<MembershipResponse> {
        self.on_leader(
            Caller::default(),
            r,
            |mut c, r| Box::pin(async move { c.add_node(r).await }),
            |r| self.add_node_local(r),
        )
        .await
    }

    async fn promote_local(&self, r: PromoteNodeRequest) -> ApiResult<MembershipResponse> {
        let before = self.membership();
        if before.voters.contains(&r.node_id) {
            return Ok(before);
        }
        if !before.learners.contains(&r.node_id) {
            return Err(ApiError::NotFound(format!(
                "node {} is not a member of the cluster; add it first",
                r.node_id
            )));
        }
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([r.node_id])))
            .await?;
        Ok(self.membership())
    }

    async fn remove_local(&self, r: RemoveNodeRequest) -> ApiResult<MembershipResponse> {
        let before = self.membership();
        let id = r.node_id;
        if before.voters.contains(&id) {
            if before.voters.len() == 1 {
                return Err(ApiError::FailedPrecondition(format!(
                    "node {id} is the only voter; add and promote another node first"
                )));
            }
            self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                .await?;
        } else if before.learners.contains(&id) {
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                .await?;
        } else if !self.applied().state.nodes.contains_key(&id) {
            return Err(ApiError::NotFound(format!(
                "node {id} is not a member of the cluster"
            )));
        }
        if self.applied().state.nodes.contains_key(&id) {
            // The membership change is committed; a failure here only leaves a stale directory
            // entry, which `cluster remove` can clear again.
            match self.commit(Cmd::ForgetNode { id }).await {
                Ok(_) | Err(ApiError::NotLeader) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.membership())
    }
}

impl AdminService {
    /// Asks every other member for its attached proxies and merges them with ours. A proxy seen on
    /// two nodes (it just moved) is reported where it connected last.
    pub(crate) async fn cluster_proxies(&self, local: Vec<ProxyStatus>) -> ListProxiesResponse {
        let m = self.shared.raft_metrics();
        let others: Vec<(NodeId, String)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.shared.id)
            .map(|(id, n)| (*id, n.peer_addr.clone()))
            .collect();
        let asks = others.into_iter().map(|(id, peer)| async move {
            let r = async {
                let mut client = self.shared.admin_client(&peer).ok()?;
                let mut req = Request::new(ListProxiesRequest { local_only: true });
                req.set_timeout(std::time::Duration::from_millis(1500));
                let fut = client.list_proxies(req);
                tokio::time::timeout(std::time::Duration::from_secs(2), fut)
                    .await
                    .ok()?
                    .ok()
            }
            .await;
            (id, r.map(|r| r.into_inner().proxies))
        });
        let mut by_id: std::collections::BTreeMap<String, ProxyStatus> =
            local.into_iter().map(|p| (p.proxy_id.clone(), p)).collect();
        let mut unreachable_nodes = Vec::new();
        for (id, answer) in futures::future::join_all(asks).await {
            match answer {
                None => unreachable_nodes.push(id),
                Some(list) => {
                    for p in list {
                        let newer = by_id
                            .get(&p.proxy_id)
                            .is_none_or(|q| p.connected_since_unix_ms > q.connected_since_unix_ms);
                        if newer {
                            by_id.insert(p.proxy_id.clone(), p);
                        }
                    }
                }
            }
        }
        ListProxiesResponse {
            proxies: by_id.into_values().collect(),
            unreachable_nodes,
        }
    }
}

fn forwarded<T>(r: &Request<T>) -> Caller {
    Caller::of(r)
}

/// Ends an admin call's span (an error sets its status).
fn end_span<T>(span: Option<Span>, r: &ApiResult<T>) {
    if let Some(mut s) = span {
        if let Err(e) = r {
            s.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
        s.end();
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let mut fwd = forwarded(&req);
        let span = self.write_span("Apply", &mut fwd);
        let sc = span.as_ref().map(|s| s.span_context().clone());
        let r = req.into_inner();
        // Refuse what does not parse right here, wherever the leader is: bounded (size first,
        // then depth and resources while parsing) and off the runtime threads.
        let parsed = match check_document_size(&r.document) {
            Err(e) => Err(ApiError::Invalid(e.to_string())),
            Ok(()) => {
                self.shared
                    .cpu
                    .run(move || {
                        let parsed = parse_document(&r.document);
                        (r, parsed)
                    })
                    .await
            }
        };
        let res = match parsed {
            Err(e) => Err(e),
            Ok((_, Err(e))) => Err(ApiError::Invalid(e.to_string())),
            Ok((r, Ok(document))) => {
                self.on_leader(
                    fwd,
                    r,
                    |mut c, r| Box::pin(async move { c.apply(r).await }),
                    |r| self.apply_local(r, document.clone(), sc.clone()),
                )
                .await
            }
        };
        let res = res.map(|mut a| {
            if let Some(sc) = &sc {
                a.trace_id = sc.trace_id().to_string();
            }
            a
        });
        end_span(span, &res);
        self.finish("Apply", res)
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let mut fwd = forwarded(&req);
        let span = self.write_span("Delete", &mut fwd);
        let sc = span.as_ref().map(|s| s.span_context().clone());
        let r = req.into_inner();
        let res = match parse_kind(&r.kind) {
            Err(e) => Err(e),
            Ok(_) => {
                self.on_leader(
                    fwd,
                    r,
                    |mut c, r| Box::pin(async move { c.delete(r).await }),
                    |r| self.delete_local(r, sc.clone()),
                )
                .await
            }
        };
        end_span(span, &res);
        self.finish("Delete", res)
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let fwd = forwarded(&req);
        let r = req.into_inner();
        let consistent = r.consistent;
        let res = self
            .read(
                fwd,
                consistent,
                r,
                |mut c, r| Box::pin(async move { c.get(r).await }),
                |s, st, r| s.get_from(st, r),
            )
            .await;
        self.finish("Get", res)
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let fwd = forwarded(&req);
        let r = req.into_inner();
        let consistent = r.consistent;
        let res = self
            .read(
                fwd,
                consistent,
                r,
                |mut c, r| Box::pin(async move { c.list(r).await }),
                |s, st, r| s.list_from(st, r),
            )
            .await;
        self.finish("List", res)
    }

    async fn get_config(
        &self,
        req: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        let fwd = forwarded(&req);
        let r = req.into_inner();
        let consistent = r.consistent;
        let res = self
            .read(
                fwd,
                consistent,
                r,
                |mut c, r| Box::pin(async move { c.get_config(r).await }),
                |_, st, _| Self::config_from(st),
            )
            .await;
        self.finish("GetConfig", res)
    }

    async fn cluster_status(
        &self,
        _req: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let m = self.shared.raft_metrics();
        let nodes = self.shared.cluster_nodes().await;
        let res = Ok(ClusterStatusResponse {
            served_by: self.shared.id,
            has_leader: m.current_leader.is_some(),
            leader_id: m.current_leader.unwrap_or(0),
            config_version: self.applied().state.config_version,
            nodes,
        });
        self.finish("ClusterStatus", res)
    }

    async fn add_node(
        &self,
        req: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let fwd = forwarded(&req);
        let res = self
            .on_leader(
                fwd,
                req.into_inner(),
                |mut c, r| Box::pin(async move { c.add_node(r).await }),
                |r| self.add_node_local(r),
            )
            .await;
        self.finish("AddNode", res)
    }

    async fn promote_node(
        &self,
        req: Request<PromoteNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let fwd = forwarded(&req);
        let res = self
            .on_leader(
                fwd,
                req.into_inner(),
                |mut c, r| Box::pin(async move { c.promote_node(r).await }),
                |r| self.promote_local(r),
            )
            .await;
        self.finish("PromoteNode", res)
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let fwd = forwarded(&req);
        let res = self
            .on_leader(
                fwd,
                req.into_inner(),
                |mut c, r| Box::pin(async move { c.remove_node(r).await }),
                |r| self.remove_local(r),
            )
            .await;
        self.finish("RemoveNode", res)
    }

    async fn list_certificates(
        &self,
        req: Request<ListCertificatesRequest>,
    ) -> Result<Response<ListCertificatesResponse>, Status> {
        let fwd = forwarded(&req);
        let r = req.into_inner();
        let consistent = r.consistent;
        let res = self
            .read(
                fwd,
                consistent,
                r,
                |mut c, r| Box::pin(async move { c.list_certificates(r).await }),
                |s, st, r| s.certs_from(st, r),
            )
            .await;
        self.finish("ListCertificates", res)
    }

    async fn list_proxies(
        &self,
        req: Request<ListProxiesRequest>,
    ) -> Result<Response<ListProxiesResponse>, Status> {
        let local = self.shared.proxies.list();
        if req.into_inner().local_only {
            return self.finish(
                "ListProxies",
                Ok(ListProxiesResponse {
                    proxies: local,
                    unreachable_nodes: Vec::new(),
                }),
            );
        }
        let res = Ok(self.cluster_proxies(local).await);
        self.finish("ListProxies", res)
    }

    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let fwd = forwarded(&req);
        let mut r = req.into_inner();
        let res = match Self::prepare_token(&mut r) {
            Err(e) => Err(e),
            Ok(secret) => self
                .on_leader(
                    fwd,
                    r,
                    |mut c, r| Box::pin(async move { c.create_token(r).await }),
                    |r| self.create_token_local(r),
                )
                .await
                .map(|mut resp| {
                    if let Some(s) = secret {
                        resp.secret = s;
                    }
                    resp
                }),
        };
        self.finish("CreateToken", res)
    }

    async fn list_tokens(
        &self,
        _req: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let res = Ok(self.list_tokens_local());
        self.finish("ListTokens", res)
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let fwd = forwarded(&req);
        let res = self
            .on_leader(
                fwd,
                req.into_inner(),
                |mut c, r| Box::pin(async move { c.revoke_token(r).await }),
                |r| self.revoke_token_local(r),
            )
            .await;
        self.finish("RevokeToken", res)
    }

    async fn get_rollout(
        &self,
        _req: Request<GetRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let res = Ok(super::rollout::status_of(&self.applied().state));
        self.finish("GetRollout", res)
    }

    async fn control_rollout(
        &self,
        req: Request<ControlRolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let fwd = forwarded(&req);
        let r = req.into_inner();
        let res = self
            .on_leader(
                fwd,
                r,
                |mut c, r| Box::pin(async move { c.control_rollout(r).await }),
                |r| self.control_rollout_local(r),
            )
            .await;
        self.finish("ControlRollout", res)
    }

    async fn join_proxy(
        &self,
        req: Request<JoinProxyRequest>,
    ) -> Result<Response<ProxyCertificate>, Status> {
        let res = self.join_proxy_local(req.into_inner());
        self.finish("JoinProxy", res)
    }
}

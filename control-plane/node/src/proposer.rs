//! Proposal batching: config writes that arrive together on the leader go through Raft together.
//!
//! openraft 0.9 appends (and flushes) each `client_write` as its own log entry, one at a time, and
//! every node validates each config command against the whole config. Under load that makes the
//! flush and the compile the price of every write. Here one task takes every config command
//! ([`Request::Apply`], [`Request::Delete`]) proposed on this node, and while a round is in Raft the
//! next commands queue; the next round takes all of them (up to `--max-write-batch` commands and
//! [`MAX_BATCH_BYTES`] of documents): one screen against the current config
//! ([`ClusterState::screen`]: one compile when all are valid), one log entry
//! ([`Request::Batch`], or the plain command when it is alone), one append + flush per node, one
//! apply. Each client still gets its own answer: its version, its changes, or why it was refused
//! (refused commands never reach the log). A single writer pays one task hop more than before.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status};
use opentelemetry::KeyValue;
use switchyard_otel::{Span, Tracer};
use switchyard_store::{AppliedState, ClusterState, Node, NodeId, Raft, Request, Response};
use tokio::sync::{mpsc, oneshot, watch};

use crate::errors::ApiError;
use crate::offload::CpuPool;

/// At most this many commands per round, by default (`--max-write-batch`).
pub const MAX_BATCH: usize = 512;
/// At most this many bytes of documents per round (a larger document goes alone), so a batch
/// stays far below the largest message a peer accepts.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

struct Proposal {
    cmd: Request,
    size: usize,
    reply: oneshot::Sender<Result<Response, ApiError>>,
    /// The admin call's span: the round's validate and commit spans are its children.
    trace: Option<SpanContext>,
}

/// The handle writers use; the batching task ends when every handle is dropped.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Proposal>,
    timeout: Duration,
}

struct Batcher {
    raft: Raft,
    applied: watch::Receiver<AppliedState>,
    cpu: CpuPool,
    timeout: Duration,
    max_batch: usize,
    tracer: Option<Arc<Tracer>>,
}

impl Proposer {
    /// Starts the batching task (on the current tokio runtime). `timeout` bounds each round's
    /// wait for Raft and each writer's wait for its answer; a round takes at most `max_batch`
    /// commands.
    pub fn start(
        raft: Raft,
        applied: watch::Receiver<AppliedState>,
        cpu: CpuPool,
        timeout: Duration,
        max_batch: usize,
        tracer: Option<Arc<Tracer>>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let batcher = Batcher {
            raft,
            applied,
            cpu,
            timeout,
            max_batch: max_batch.max(1),
            tracer,
        };
        tokio::spawn(batcher.run(rx));
        Proposer { tx, timeout }
    }

    /// Commits a config command (`size`: the bytes of its document, for the batch bound) and
    /// returns what applying it answered; a refused command is `Ok(Response::Rejected)` and
    /// changed nothing. `trace`: the span to record the validation and the commit under.
    pub async fn propose(
        &self,
        cmd: Request,
        size: usize,
        trace: Option<SpanContext>,
    ) -> Result<Response, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal {
                cmd,
                size,
                reply,
                trace,
            })
            .map_err(|_| ApiError::Unavailable("the node is shutting down".into()))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(ApiError::NoQuorum(self.timeout)),
            Ok(Err(_)) => Err(ApiError::Unavailable("the node is shutting down".into())),
            Ok(Ok(r)) => r,
        }
    }
}

/// How a failed `client_write` is answered.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ApiError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ApiError::FailedPrecondition(e.to_string())
        }
        RaftError::Fatal(f) => ApiError::Unavailable(f.to_string()),
    }
}

/// The same answer for every writer of a failed round.
fn same_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::NotLeader => ApiError::NotLeader,
        ApiError::NoQuorum(d) => ApiError::NoQuorum(*d),
        ApiError::FailedPrecondition(m) => ApiError::FailedPrecondition(m.clone()),
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        other => ApiError::Internal(other.to_string()),
    }
}

impl Batcher {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Proposal>) {
        let mut carried: Option<Proposal> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match rx.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let mut bytes = first.size;
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(p) if bytes.saturating_add(p.size) > MAX_BATCH_BYTES => {
                        carried = Some(p);
                        break;
                    }
                    Ok(p) => {
                        bytes += p.size;
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            // A writer that gave up (timed out) is not proposed for.
            batch.retain(|p| !p.reply.is_closed());
            if !batch.is_empty() {
                self.round(batch).await;
            }
        }
    }

    /// Screens, commits and answers one batch.
    async fn round(&self, batch: Vec<Proposal>) {
        let state: Arc<ClusterState> = self.applied.borrow().state.clone();
        let version = state.config_version;
        let n = batch.len();
        let spans = |name: &'static str, traces: &[Option<SpanContext>]| -> Vec<Option<Span>> {
            traces
                .iter()
                .map(|sc| {
                    let (t, sc) = (self.tracer.as_ref()?, sc.as_ref()?);
                    Some(t.child(
                        name,
                        SpanKind::Internal,
                        sc,
                        vec![
                            KeyValue::new("switchyard.batch.commands", n as i64),
                            KeyValue::new("switchyard.config.base_version", version as i64),
                        ],
                    ))
                })
                .collect()
        };
        let traces: Vec<Option<SpanContext>> = batch.iter().map(|p| p.trace.clone()).collect();
        let mut validating = spans(crate::trace::VALIDATE, &traces);
        let (cmds, replies): (Vec<Request>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let screened = self
            .cpu
            .run(move || {
                let verdicts = state.screen(&cmds);
                (cmds, verdicts)
            })
            .await;
        let (cmds, verdicts) = match screened {
            Ok(v) => v,
            Err(e) => {
                for r in replies {
                    let _ = r.send(Err(same_error(&e)));
                }
                return;
            }
        };
        let mut accepted = Vec::with_capacity(cmds.len());
        let mut waiting = Vec::with_capacity(cmds.len());
        let mut accepted_traces = Vec::with_capacity(cmds.len());
        for (j, ((cmd, verdict), reply)) in cmds.into_iter().zip(verdicts).zip(replies).enumerate()
        {
            let span = validating.get_mut(j).and_then(Option::take);
            match verdict {
                Some(rejection) => {
                    if let Some(mut s) = span {
                        s.set_status(Status::error(format!("{rejection:?}")));
                        s.end();
                    }
                    let _ = reply.send(Ok(Response::Rejected(rejection)));
                }
                None => {
                    if let Some(mut s) = span {
                        s.end();
                    }
                    accepted.push(cmd);
                    waiting.push(reply);
                    accepted_traces.push(traces.get(j).cloned().flatten());
                }
            }
        }
        let mut committing = spans(crate::trace::COMMIT, &accepted_traces);
        let req = match accepted.len() {
            0 => return,
            1 => accepted.pop().expect("one command").validated_at(version),
            _ => Request::Batch {
                cmds: accepted.into(),
                validated_at: Some(version),
            },
        };
        let written = tokio::time::timeout(self.timeout, self.raft.client_write(req)).await;
        let resp = match written {
            Err(_) => Err(ApiError::NoQuorum(self.timeout)),
            Ok(r) => r
                .map(|r| {
                    for s in committing.iter_mut().flatten() {
                        s.set_attribute(KeyValue::new("raft.log.index", r.log_id.index as i64));
                    }
                    r.data
                })
                .map_err(write_error),
        };
        for mut s in committing.into_iter().flatten() {
            if let Err(e) = &resp {
                s.set_status(Status::error(e.to_string()));
            }
            s.end();
        }
        match resp {
            Ok(Response::Batch(resps)) if resps.len() == waiting.len() => {
                for (reply, r) in waiting.into_iter().zip(resps) {
                    let _ = reply.send(Ok(r));
                }
            }
            Ok(Response::Batch(_)) => {
                for reply in waiting {
                    let _ = reply.send(Err(ApiError::Internal(
                        "batch answered with the wrong number of results".into(),
                    )));
                }
            }
            Ok(single) => {
                if let Some(reply) = waiting.pop() {
                    let _ = reply.send(Ok(single));
                }
            }
            Err(e) => {
                for reply in waiting {
                    let _ = reply.send(Err(same_error(&e)));
                }
            }
        }
    }
}

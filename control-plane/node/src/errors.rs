//! Admin API errors, and the one place they become gRPC statuses.

use std::time::Duration;

use switchyard_store::Rejection;
use thiserror::Error;
use tonic::{Code, Status};

/// Metadata key marking a request a follower forwarded to the leader (it is never forwarded again).
pub const FORWARDED: &str = "x-switchyard-forwarded";
/// Metadata key carrying the id a write is applied under at most once (see
/// `switchyard_store::Request::Once`): the node that first receives an admin call names it, and
/// every retry of the forward to the leader carries the same id.
pub const REQUEST_ID: &str = "x-switchyard-request-id";
/// Metadata key on an UNAVAILABLE status meaning "I am not the leader; retry on the leader".
pub const NOT_LEADER: &str = "x-switchyard-not-leader";

#[derive(Debug, Error)]
pub enum ApiError {
    /// Bad input; the message names the resource and field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// No leader is known, so nothing can be committed.
    #[error("no leader: the cluster has no quorum (waited {0:?} for an election)")]
    NoLeader(Duration),
    /// The leader did not commit in time: a majority of voters is unreachable.
    #[error("no quorum: the write was not committed within {0:?} (a majority of voters is unreachable); it may still be applied if quorum returns")]
    NoQuorum(Duration),
    /// This node stopped being the leader while handling the request.
    #[error("not the leader")]
    NotLeader,
    /// A consistent read could not confirm leadership.
    #[error("consistent read failed: {0}")]
    ReadUnavailable(String),
    /// The node is shutting down or Raft stopped.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The leader answered a forwarded request with this status.
    #[error("{}", .0.message())]
    Remote(Status),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Invalid(m) => ApiError::Invalid(m),
            Rejection::NotFound(m) => ApiError::NotFound(m),
            Rejection::Conflict(m) => ApiError::FailedPrecondition(m),
        }
    }
}

impl ApiError {
    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::NoLeader(_)
            | ApiError::NoQuorum(_)
            | ApiError::NotLeader
            | ApiError::ReadUnavailable(_)
            | ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Remote(s) => s.code(),
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Remote(s) => s,
            ApiError::NotLeader => {
                let mut s = Status::unavailable("not the leader; retry on the leader");
                s.metadata_mut()
                    .insert(NOT_LEADER, tonic::metadata::MetadataValue::from_static("1"));
                s
            }
            other => Status::new(other.code(), other.to_string()),
        }
    }
}

/// Whether a status from a forwarded call means "retry: that node was not the leader".
pub fn is_not_leader(s: &Status) -> bool {
    s.code() == Code::Unavailable && s.metadata().contains_key(NOT_LEADER)
}

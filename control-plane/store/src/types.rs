//! The openraft type configuration of a Switchyard control plane.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_config::{Change, DynamicConfig, Kind};

pub type NodeId = u64;

/// A node as Raft membership knows it: where its peer (Raft) port is. The rest of what a node tells
/// about itself (API address, region, zone) lives in the replicated node directory
/// ([`crate::ClusterState::nodes`]) because bootstrap with `--initial-cluster` only knows peer
/// addresses, and membership records must be identical on every node that bootstraps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub peer_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.peer_addr)
    }
}

/// What a node says about itself; kept in the replicated node directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub api_addr: String,
    pub peer_addr: String,
    pub http_addr: String,
    pub region: String,
    pub zone: String,
}

/// A command committed through Raft.
// `Apply` holds its document inline: commands live briefly in memory and are stored serialized,
// so the variants' size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Upsert the resources of `document`; with `prune`, replace the whole config by it.
    Apply {
        document: DynamicConfig,
        prune: bool,
        /// See [`Request::validated_at`].
        #[serde(default)]
        validated_at: Option<u64>,
    },
    /// Delete one resource.
    Delete {
        kind: Kind,
        name: String,
        /// See [`Request::validated_at`].
        #[serde(default)]
        validated_at: Option<u64>,
    },
    /// Record (or update) what a node says about itself.
    RegisterNode { id: NodeId, info: NodeInfo },
    /// Drop a removed node from the directory.
    ForgetNode { id: NodeId },
    /// A step of the ACME manager. `at` is the proposer's clock (Unix seconds), so every node
    /// applies the same timestamps.
    Acme {
        cmd: crate::acme::AcmeCommand,
        at: u64,
    },
    /// A change to the cluster CA or the API tokens; `at` as for [`Request::Acme`].
    Security {
        cmd: crate::security::SecurityCommand,
        at: u64,
    },
    /// Config commands ([`Request::Apply`], [`Request::Delete`]) proposed together under load: one
    /// log entry, one append and flush per node, applied in order. Each command gets its own
    /// [`Response`] (in [`Response::Batch`]); all that change the config share the entry's index as
    /// their version. `validated_at` as for [`Request::validated_at`], for the whole sequence: the
    /// leader checked that applying `cmds` in order to that config version yields a config that
    /// compiles (see [`crate::ClusterState::screen`]); at any other version each command is
    /// validated again, in order. Shared (`Arc`) so reading the entry back for followers and the
    /// state machine does not copy the documents.
    Batch {
        cmds: Arc<[Request]>,
        validated_at: Option<u64>,
    },
    /// `request` at most once: an admin write carries the id its client call was given, so a
    /// retry of a call whose first attempt committed (its answer lost when the leader died, or a
    /// forward to the leader cut off mid-flight) answers the first outcome instead of applying
    /// again. See [`crate::RecentWrites`]. `trace`: the W3C `traceparent` of the admin call's
    /// span, when the node that took the call traces: the config version this write makes
    /// carries it ([`crate::ClusterState::config_trace`]) to every node's config stream and from
    /// there to the proxies, so one trace follows the change from the API to each proxy.
    Once {
        id: String,
        request: Box<Request>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
    /// A step of a progressive rollout (see [`crate::rollout`]); `at` as for [`Request::Acme`].
    Rollout {
        cmd: crate::rollout::RolloutCommand,
        at: u64,
    },
}

impl Request {
    /// Stamps a config command with the config version the leader validated it against. A node
    /// applying it while its config is still at that version skips validation: `validate` is
    /// deterministic, so the verdict would be the same, and every node decides alike because config
    /// versions are equal everywhere. Any other version validates again.
    pub fn validated_at(mut self, version: u64) -> Self {
        match &mut self {
            Request::Apply { validated_at, .. }
            | Request::Delete { validated_at, .. }
            | Request::Batch { validated_at, .. } => *validated_at = Some(version),
            Request::Once { request, .. } => {
                let inner = std::mem::replace(&mut **request, Request::ForgetNode { id: 0 });
                **request = inner.validated_at(version);
            }
            _ => {}
        }
        self
    }

    /// `self` to be applied at most once under `id` (see [`Request::Once`]).
    pub fn once(self, id: String) -> Self {
        self.once_traced(id, None)
    }

    /// `self` to be applied at most once under `id`, in the trace `trace` (a `traceparent`).
    pub fn once_traced(self, id: String, trace: Option<String>) -> Self {
        match self {
            Request::Once { request, .. } => Request::Once { id, request, trace },
            other => Request::Once {
                id,
                request: Box::new(other),
                trace,
            },
        }
    }
}

/// Why a command changed nothing. Decided deterministically by every node while applying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The resulting config would not compile; the message names resource and field.
    Invalid(String),
    /// The resource to delete does not exist.
    NotFound(String),
    /// The command does not fit the current state (a config write while a rollout is active; a
    /// rollout step for a rollout that moved on).
    Conflict(String),
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// A config command: the config version after it (unchanged when `changes` is empty).
    Applied { version: u64, changes: Vec<Change> },
    /// A config command that was refused; the state is unchanged.
    Rejected(Rejection),
    /// Any other entry (blank, membership, node directory).
    Done,
    /// A [`Request::Batch`]: one response per command, in order.
    Batch(Vec<Response>),
}

openraft::declare_raft_types!(
    /// Switchyard's openraft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

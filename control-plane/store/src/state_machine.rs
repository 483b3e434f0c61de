//! The Raft state machine around [`ClusterState`].
//!
//! The state lives in memory and is published to readers (admin API, config stream) through a
//! `watch` channel as an immutable `Arc` per applied batch, so a read never blocks an apply.
//! Snapshots are JSON of the whole state, persisted in sled's `snapshot` tree; on open the latest one
//! is loaded and openraft re-applies the committed log after it.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::state::ClusterState;
use crate::types::{
    Entry, LogId, Request, Response, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

const META: &[u8] = b"meta";
const DATA: &[u8] = b"data";
/// In the `verdicts` tree: the highest log index this state machine applied (big-endian u64).
const WATERMARK: &[u8] = b"watermark";

/// In the `verdicts` tree: the key recording that the config command at `index` was refused.
fn refused_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'r';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// In the `verdicts` tree: the key recording that command `sub` of the batch at `index` was
/// refused.
fn refused_sub_key(index: u64, sub: usize) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = b'b';
    k[1..9].copy_from_slice(&index.to_be_bytes());
    k[9..].copy_from_slice(&(sub as u32).to_be_bytes());
    k
}

/// What readers see: the state as of `last_applied`.
#[derive(Debug, Clone, Default)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: Arc<ClusterState>,
}

impl AppliedState {
    pub fn applied_index(&self) -> u64 {
        self.last_applied.map(|l| l.index).unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct SnapshotPayload {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: ClusterState,
}

/// The same layout as [`SnapshotPayload`], serialized by reference.
#[derive(Serialize)]
struct SnapshotPayloadRef<'a> {
    last_applied: Option<LogId>,
    membership: &'a StoredMembership,
    state: &'a ClusterState,
}

pub struct StateMachineStore {
    /// The applied state lives in the watch channel itself, so applying mutates the one copy
    /// (see [`RaftStateMachine::apply`] below) instead of a private copy that readers share.
    tx: watch::Sender<AppliedState>,
    snapshots: sled::Tree,
    /// What this state machine decided for the entries it applied (the highest index applied and
    /// the config commands it refused), so a replay after a restart does not validate again:
    /// applying is deterministic, the verdict is the same. Written with each applied batch, not
    /// flushed: a record lost in a crash only means that entry is validated again.
    verdicts: sled::Tree,
    db: sled::Db,
    snapshot_seq: Arc<AtomicU64>,
    apply_observer: Option<Arc<dyn Fn(f64) + Send + Sync>>,
}

impl StateMachineStore {
    pub(crate) fn new(db: &sled::Db) -> Result<Self, StoreError> {
        let snapshots = db.open_tree("snapshot")?;
        let verdicts = db.open_tree("verdicts")?;
        let mut current = AppliedState::default();
        if let Some(bytes) = snapshots.get(DATA)? {
            let p: SnapshotPayload =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    what: "snapshot",
                    source,
                })?;
            current = AppliedState {
                last_applied: p.last_applied,
                membership: p.membership,
                state: Arc::new(p.state),
            };
        }
        let (tx, _) = watch::channel(current);
        Ok(Self {
            tx,
            snapshots,
            verdicts,
            db: db.clone(),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            apply_observer: None,
        })
    }

    /// Follow the applied state (the receiver always holds the latest).
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.tx.subscribe()
    }

    /// Called with the seconds each applied batch took (for the apply latency histogram).
    pub fn set_apply_observer(&mut self, f: Arc<dyn Fn(f64) + Send + Sync>) {
        self.apply_observer = Some(f);
    }

    fn encode(current: &AppliedState) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&SnapshotPayloadRef {
            last_applied: current.last_applied,
            membership: &current.membership,
            state: &current.state,
        })
    }

    async fn persist_snapshot(
        snapshots: &sled::Tree,
        db: &sled::Db,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let meta_bytes =
            serde_json::to_vec(meta).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let mut batch = sled::Batch::default();
        batch.insert(META, meta_bytes);
        batch.insert(DATA, data);
        snapshots
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        db.flush_async()
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(())
    }
}

/// Builds a snapshot from the state as of the moment it was requested.
pub struct SnapshotBuilder {
    current: AppliedState,
    snapshots: sled::Tree,
    db: sled::Db,
    seq: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let data = StateMachineStore::encode(&self.current)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.current.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
            None => format!("--{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.current.last_applied,
            last_membership: self.current.membership.clone(),
            snapshot_id,
        };
        StateMachineStore::persist_snapshot(&self.snapshots, &self.db, &meta, &data).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let cur = self.tx.borrow();
        Ok((cur.last_applied, cur.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let started = Instant::now();
        let mut out = Vec::new();
        // Mutated in place in the channel: the state is copied only when a reader still holds
        // it (never during the replay at start-up, when nobody reads), and readers see the whole
        // batch at once.
        let watermark = self
            .verdicts
            .get(WATERMARK)
            .map_err(|e| StorageIOError::read_state_machine(&e))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        let verdicts = &self.verdicts;
        let mut refusals: Vec<Vec<u8>> = Vec::new();
        let mut new_watermark = None;
        let mut read_error = None;
        self.tx.send_modify(|cur| {
            let state = Arc::make_mut(&mut cur.state);
            for entry in entries {
                cur.last_applied = Some(entry.log_id);
                let index = entry.log_id.index;
                let resp = match &entry.payload {
                    EntryPayload::Blank => Response::Done,
                    EntryPayload::Normal(Request::Batch { cmds, validated_at }) => {
                        let replayed = watermark.is_some_and(|w| index <= w);
                        let known = |j: usize| {
                            if !replayed {
                                return None;
                            }
                            match verdicts.contains_key(refused_sub_key(index, j)) {
                                Ok(refused) => Some(!refused),
                                Err(e) => {
                                    tracing::warn!(error = %e, "reading recorded verdicts");
                                    None
                                }
                            }
                        };
                        let resps = state.apply_batch(index, cmds, *validated_at, known);
                        if !replayed {
                            for (j, r) in resps.iter().enumerate() {
                                if matches!(r, Response::Rejected(_)) {
                                    refusals.push(refused_sub_key(index, j).to_vec());
                                }
                            }
                        }
                        Response::Batch(resps)
                    }
                    EntryPayload::Normal(req) => {
                        let known = match watermark {
                            Some(w) if index <= w => {
                                match verdicts.contains_key(refused_key(index)) {
                                    Ok(refused) => Some(!refused),
                                    Err(e) => {
                                        read_error = Some(e);
                                        None
                                    }
                                }
                            }
                            _ => None,
                        };
                        let resp = state.apply_known(index, req, known);
                        if known.is_none() && matches!(resp, Response::Rejected(_)) {
                            refusals.push(refused_key(index).to_vec());
                        }
                        resp
                    }
                    EntryPayload::Membership(m) => {
                        cur.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        Response::Done
                    }
                };
                out.push(resp);
            }
            if let Some(l) = cur.last_applied {
                if watermark.is_none_or(|w| l.index > w) {
                    new_watermark = Some(l.index);
                }
            }
        });
        if let Some(e) = read_error {
            // Validation ran instead (same verdict); report the storage error anyway.
            tracing::warn!(error = %e, "reading recorded verdicts");
        }
        // Written in order (refusals, then the watermark that covers them) with plain inserts:
        // a `sled::Batch` rolls sled's IO buffer twice, a synced disk write each, on every apply.
        // sled recovers a prefix of its log, so a watermark that survives a crash has its
        // refusals too, which is all the replay needs.
        for k in refusals {
            self.verdicts
                .insert(k, &[][..])
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
        }
        if let Some(w) = new_watermark {
            self.verdicts
                .insert(WATERMARK, &w.to_be_bytes()[..])
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
        }
        if let Some(obs) = &self.apply_observer {
            obs(started.elapsed().as_secs_f64());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            current: self.tx.borrow().clone(),
            snapshots: self.snapshots.clone(),
            db: self.db.clone(),
            seq: self.snapshot_seq.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let p: SnapshotPayload = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Self::persist_snapshot(&self.snapshots, &self.db, meta, &data).await?;
        self.tx.send_replace(AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            state: Arc::new(p.state),
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let meta = self
            .snapshots
            .get(META)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let data = self
            .snapshots
            .get(DATA)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        match (meta, data) {
            (Some(meta), Some(data)) => {
                let meta: SnapshotMeta = serde_json::from_slice(&meta)
                    .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
                Ok(Some(Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(data.to_vec())),
                }))
            }
            _ => Ok(None),
        }
    }
}

//! The Raft log, vote and commit index, in sled.
//!
//! Tree `log` maps the big-endian log index to the JSON of the entry; tree `meta` holds the vote, the
//! last purged log id and the commit index. An append is flushed to disk before openraft is told it
//! is durable, and the vote is flushed before `save_vote` returns: a node never forgets a vote or an
//! entry it acknowledged.
//!
//! The newest entries are also kept decoded in memory ([`Tail`]): replication to every follower and
//! the state machine read back what was just appended, and serving them from memory spares one
//! JSON decode per reader (a batch of commands is shared by `Arc`, so a read is a reference count).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// At most this many entries stay decoded in memory...
const TAIL_ENTRIES: usize = 1024;
/// ...and at most this many bytes of them (as encoded in the log).
const TAIL_BYTES: usize = 8 * 1024 * 1024;

/// The newest log entries, decoded, indexed by log index: always a contiguous run of the log's
/// last entries (appends extend it, truncation and purges cut it, the oldest fall off the front).
#[derive(Default)]
struct Tail {
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, entry: Entry, size: usize) {
        let index = entry.log_id.index;
        match self.entries.last_key_value() {
            Some((&last, _)) if index == last + 1 => {}
            Some((&last, _)) if index <= last => self.cut_from(index),
            Some(_) => self.clear(),
            None => {}
        }
        self.entries.insert(index, (entry, size));
        self.bytes += size;
        while self.entries.len() > TAIL_ENTRIES || self.bytes > TAIL_BYTES {
            match self.entries.pop_first() {
                Some((_, (_, n))) => self.bytes -= n,
                None => break,
            }
        }
    }

    /// Drops the entries from `index` on.
    fn cut_from(&mut self, index: u64) {
        let cut = self.entries.split_off(&index);
        self.bytes -= cut.values().map(|(_, n)| n).sum::<usize>();
    }

    /// Drops the entries up to `index` included.
    fn cut_upto(&mut self, index: u64) {
        let kept = self.entries.split_off(&index.saturating_add(1));
        let dropped = std::mem::replace(&mut self.entries, kept);
        self.bytes -= dropped.values().map(|(_, n)| n).sum::<usize>();
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries `start..end`, when all of them are here.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let (&first, _) = self.entries.first_key_value()?;
        let (&last, _) = self.entries.last_key_value()?;
        if start < first || end > last.saturating_add(1) {
            return None;
        }
        Some(
            self.entries
                .range(start..end)
                .map(|(_, (e, _))| e.clone())
                .collect(),
        )
    }
}

/// Log storage over two sled trees. Cheap to clone: clones share the trees and the tail.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    committed: Arc<AtomicU64>,
    tail: Arc<Mutex<Tail>>,
}

impl LogStore {
    pub(crate) fn new(db: &sled::Db) -> Result<Self, StoreError> {
        let store = Self {
            db: db.clone(),
            log: db.open_tree("log")?,
            meta: db.open_tree("meta")?,
            committed: Arc::new(AtomicU64::new(0)),
            tail: Arc::default(),
        };
        if let Some(bytes) = store.meta.get(COMMITTED)? {
            let c: LogId =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    what: "commit index",
                    source,
                })?;
            store.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(store)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self.meta.get(key).map_err(|e| StorageIOError::read(&e))? else {
            return Ok(None);
        };
        let v = serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read(&e))?;
        Ok(Some(v))
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(v).map_err(|e| StorageIOError::write(&e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        // The tail is a cache: a panic elsewhere never leaves it inconsistent with itself.
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The commit index as this node last learnt it (leader or follower), kept current in memory.
    pub fn committed_handle(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    /// Bytes sled reports for the whole database (log, snapshots, metadata).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageIOError::read_logs(&e).into())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cached_end = match range.end_bound() {
            Bound::Included(i) => Some(i.saturating_add(1)),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        if let Some(end) = cached_end {
            if start >= end {
                return Ok(Vec::new());
            }
            if let Some(entries) = self.tail().get(start, end) {
                return Ok(entries);
            }
        }
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(key(*i)),
            Bound::Excluded(i) => Bound::Excluded(key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.log.range((Bound::Included(key(start)), end)) {
            let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            out.push(decode_entry(&v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = self.log.last().map_err(|e| StorageIOError::read_logs(&e))?;
        let last_log_id = match last {
            Some((_, v)) => Some(decode_entry(&v)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote)?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: losing the latest commit index only means re-learning it from the leader.
        self.committed
            .store(committed.map(|c| c.index).unwrap_or(0), Ordering::Relaxed);
        match committed {
            Some(c) => self.put_meta(COMMITTED, &c),
            None => {
                self.meta
                    .remove(COMMITTED)
                    .map_err(|e| StorageIOError::write(&e))?;
                Ok(())
            }
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(COMMITTED)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Plain inserts in index order, not a `sled::Batch`: sled makes a batch atomic by rolling
        // its IO buffer before and after a batch manifest, which costs two extra buffer writes,
        // each with its own `sync_file_range`, on every append (strace: three synced writes per
        // one-entry append instead of one). Raft needs no atomicity here: nothing is reported
        // durable before the flush below, and sled recovers its log as a prefix, so a crash
        // mid-append leaves a shorter log, as if the append had not been asked for.
        let mut decoded = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            let size = bytes.len();
            self.log
                .insert(key(entry.log_id.index), bytes)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            decoded.push((entry, size));
        }
        {
            let mut tail = self.tail();
            for (entry, size) in decoded {
                tail.push(entry, size);
            }
        }
        let flushed = self.flush().await;
        let io = flushed
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io);
        flushed.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().cut_from(log_id.index);
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(log_id.index)..) {
            let (k, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash half-way leaves extra entries, never a gap.
        self.put_meta(LAST_PURGED, &log_id)?;
        self.tail().cut_upto(log_id.index);
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=key(log_id.index)) {
            let (k, _) = item.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn the_tail_serves_only_ranges_it_holds_entirely() {
        let mut t = Tail::default();
        for i in 5..=9 {
            t.push(entry(i), 10);
        }
        assert_eq!(indexes(t.get(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(t.get(7, 9)), Some(vec![7, 8]));
        assert_eq!(indexes(t.get(4, 8)), None, "4 is not held");
        assert_eq!(indexes(t.get(8, 11)), None, "10 is not held");
    }

    #[test]
    fn the_tail_follows_truncation_purge_overwrite_and_gaps() {
        let mut t = Tail::default();
        for i in 1..=6 {
            t.push(entry(i), 10);
        }
        t.cut_from(5);
        assert_eq!(indexes(t.get(1, 5)), Some(vec![1, 2, 3, 4]));
        assert_eq!(indexes(t.get(1, 6)), None);
        t.cut_upto(2);
        assert_eq!(indexes(t.get(2, 4)), None);
        assert_eq!(indexes(t.get(3, 5)), Some(vec![3, 4]));
        assert_eq!(t.bytes, 20);
        // An append over held entries replaces them and everything after.
        t.push(entry(4), 10);
        assert_eq!(indexes(t.get(3, 5)), Some(vec![3, 4]));
        assert_eq!(t.bytes, 20);
        // A gap empties the tail: it only ever holds a contiguous run.
        t.push(entry(9), 10);
        assert_eq!(indexes(t.get(3, 5)), None);
        assert_eq!(indexes(t.get(9, 10)), Some(vec![9]));
        assert_eq!(t.bytes, 10);
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut t = Tail::default();
        for i in 1..=(TAIL_ENTRIES as u64 + 10) {
            t.push(entry(i), 1);
        }
        assert_eq!(t.entries.len(), TAIL_ENTRIES);
        assert_eq!(t.bytes, TAIL_ENTRIES);
        t.push(entry(TAIL_ENTRIES as u64 + 11), TAIL_BYTES);
        assert_eq!(t.entries.len(), 1, "one entry of the whole budget");
    }
}

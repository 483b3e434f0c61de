//! openraft's storage test suite, run against the sled store.

use openraft::testing::{StoreBuilder, Suite};
use switchyard_store::{LogStore, StateMachineStore, StorageError, TypeConfig};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = switchyard_store::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sled() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}

/// A store reopened on the same directory keeps its vote, log and snapshot.
#[tokio::test]
async fn reopen_keeps_vote_log_and_snapshot() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, RaftLogReader, RaftSnapshotBuilder};
    use switchyard_store::{Entry, LogId, Vote};

    let dir = tempfile::tempdir().expect("temp dir");
    let lid = |i| LogId::new(CommittedLeaderId::new(1, 1), i);
    {
        let (mut log, mut sm) = switchyard_store::open(dir.path()).expect("open");
        log.save_vote(&Vote::new(1, 1)).await.expect("vote");
        let entries: Vec<Entry> = (1..=5).map(|i| Entry::new_blank(lid(i))).collect();
        sm.apply(entries).await.expect("apply");
        let mut b = sm.get_snapshot_builder().await;
        let snap = b.build_snapshot().await.expect("snapshot");
        assert_eq!(snap.meta.last_log_id, Some(lid(5)));
        log.save_committed(Some(lid(5))).await.expect("committed");
    }
    let (mut log, mut sm) = switchyard_store::open(dir.path()).expect("reopen");
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(1, 1)));
    assert_eq!(log.read_committed().await.expect("c"), Some(lid(5)));
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(lid(5)));
    assert!(log
        .try_get_log_entries(0..10)
        .await
        .expect("read")
        .is_empty());
}

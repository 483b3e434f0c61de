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

/// Opens the store in `dir` again once the previous handles are gone. sled releases its file
/// lock only when its last internal reference (its flusher thread's) is dropped, which can
/// trail the handles the test dropped by a moment on a loaded machine (a restarted node is a
/// new process: its lock went with the old one).
async fn reopen(dir: &std::path::Path) -> (LogStore, StateMachineStore) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match switchyard_store::open(dir) {
            Ok(s) => return s,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
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
    let (mut log, mut sm) = reopen(dir.path()).await;
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

/// A batch entry is read back alike from memory and from disk, and a replay after a restart
/// answers each of its commands as the first apply did (the refused one from its record).
#[tokio::test]
async fn a_batch_entry_replays_with_its_first_verdicts() {
    use openraft::storage::{RaftLogStorageExt, RaftStateMachine};
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
    use switchyard_config::parse_document;
    use switchyard_store::{Entry, LogId, Request, Response};

    let dir = tempfile::tempdir().expect("temp dir");
    let lid = |i| LogId::new(CommittedLeaderId::new(1, 1), i);
    let apply = |text: &str| Request::Apply {
        document: parse_document(text).expect("doc"),
        prune: false,
        validated_at: None,
    };
    let web = apply("http:\n  services:\n    web: { loadBalancer: { servers: [ { url: \"http://127.0.0.1:81\" } ] } }\n");
    let batch = Request::Batch {
        cmds: vec![
            apply("http:\n  routers:\n    a: { rule: \"Host(`a`)\", service: web }\n"),
            apply("http:\n  routers:\n    x: { rule: \"Host(`x`)\", service: missing }\n"),
        ]
        .into(),
        validated_at: None,
    };
    let entries = vec![
        Entry {
            log_id: lid(1),
            payload: EntryPayload::Normal(web),
        },
        Entry {
            log_id: lid(2),
            payload: EntryPayload::Normal(batch),
        },
    ];
    let first = {
        let (mut log, mut sm) = switchyard_store::open(dir.path()).expect("open");
        log.blocking_append(entries.clone()).await.expect("append");
        let from_memory = log.try_get_log_entries(1..3).await.expect("read");
        assert_eq!(from_memory, entries);
        sm.apply(from_memory).await.expect("apply")
    };
    match &first[1] {
        Response::Batch(r) => {
            assert!(
                matches!(r[0], Response::Applied { version: 2, .. }),
                "{r:?}"
            );
            assert!(matches!(r[1], Response::Rejected(_)), "{r:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let (mut log, mut sm) = reopen(dir.path()).await;
    let from_disk = log.try_get_log_entries(1..3).await.expect("read");
    assert_eq!(from_disk, entries);
    let replayed = sm.apply(from_disk).await.expect("replay");
    assert_eq!(replayed[0], first[0]);
    match &replayed[1] {
        Response::Batch(r) => {
            assert!(
                matches!(r[0], Response::Applied { version: 2, .. }),
                "{r:?}"
            );
            assert!(matches!(r[1], Response::Rejected(_)), "{r:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

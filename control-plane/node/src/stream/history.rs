//! Recent config versions, for deltas.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_config::DynamicConfig;
use switchyard_store::AppliedState;
use tokio::sync::watch;

/// How many versions are kept. A proxy further behind gets a snapshot.
pub const KEEP: usize = 64;

#[derive(Clone, Default)]
pub struct History {
    versions: Arc<Mutex<BTreeMap<u64, Arc<DynamicConfig>>>>,
}

impl History {
    /// Starts following the applied state; every config version that appears is recorded.
    pub fn follow(mut applied: watch::Receiver<AppliedState>) -> Self {
        let h = History::default();
        let recorder = h.clone();
        tokio::spawn(async move {
            loop {
                {
                    let st = applied.borrow_and_update();
                    recorder.record(st.state.config_version, st.state.config.clone());
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        });
        h
    }

    pub fn record(&self, version: u64, cfg: Arc<DynamicConfig>) {
        let mut v = match self.versions.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        v.entry(version).or_insert(cfg);
        while v.len() > KEEP {
            v.pop_first();
        }
    }

    pub fn get(&self, version: u64) -> Option<Arc<DynamicConfig>> {
        let v = match self.versions.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        v.get(&version).cloned()
    }
}

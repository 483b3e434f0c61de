//! Recent config versions, for deltas.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_config::DynamicConfig;
use switchyard_proto::stream::ConfigMessage;
use switchyard_store::AppliedState;
use tokio::sync::watch;

/// How many versions are kept. A proxy further behind gets a snapshot.
pub const KEEP: usize = 64;

/// How many (from, to) messages are memoized: every proxy at the same version gets the same
/// message, so a push to hundreds of proxies computes one diff, not hundreds.
const MEMO: usize = 16;

/// Memoized messages keyed by (proxy cluster, from version, to version).
type Memo = BTreeMap<(String, u64, u64), Arc<ConfigMessage>>;

#[derive(Clone, Default)]
pub struct History {
    versions: Arc<Mutex<BTreeMap<u64, Arc<DynamicConfig>>>>,
    messages: Arc<Mutex<Memo>>,
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
        let mut v = lock(&self.versions);
        v.entry(version).or_insert(cfg);
        while v.len() > KEEP {
            v.pop_first();
        }
    }

    /// The message bringing a proxy of `cluster` from `from` to `to` (whose whole config is
    /// `cfg`), computed once: both versions cut to what the cluster serves
    /// ([`switchyard_config::scope::for_cluster`]), then diffed.
    pub fn message(
        &self,
        node_id: u64,
        cluster: &str,
        from: u64,
        to: u64,
        cfg: &DynamicConfig,
    ) -> Result<Arc<ConfigMessage>, tonic::Status> {
        let key = (cluster.to_string(), from, to);
        if let Some(m) = lock(&self.messages).get(&key) {
            return Ok(m.clone());
        }
        let base = self.get(from);
        let base = base.as_deref().map(|b| scoped(b, cluster));
        let cfg = scoped(cfg, cluster);
        let msg = Arc::new(super::service::message_for(
            node_id,
            from,
            base.as_deref(),
            to,
            &cfg,
        )?);
        let mut memo = lock(&self.messages);
        memo.insert(key, msg.clone());
        while memo.len() > MEMO {
            // Evict the entry with the oldest target version.
            let oldest = memo.keys().min_by_key(|(_, f, t)| (*t, *f)).cloned();
            match oldest {
                Some(k) => memo.remove(&k),
                None => break,
            };
        }
        Ok(msg)
    }

    pub fn get(&self, version: u64) -> Option<Arc<DynamicConfig>> {
        lock(&self.versions).get(&version).cloned()
    }
}

/// `cfg` as the proxies of `cluster` get it: borrowed unchanged when no router is scoped.
fn scoped<'a>(cfg: &'a DynamicConfig, cluster: &str) -> Cow<'a, DynamicConfig> {
    if switchyard_config::scope::has_scoped_routers(cfg) {
        Cow::Owned(switchyard_config::scope::for_cluster(cfg, cluster))
    } else {
        Cow::Borrowed(cfg)
    }
}

/// Locks, recovering from poisoning (the maps stay valid whatever a panicking holder did).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

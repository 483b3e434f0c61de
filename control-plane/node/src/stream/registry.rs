//! Proxies attached to this node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use switchyard_proto::admin::ProxyStatus;

#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<BTreeMap<String, (u64, ProxyStatus)>>>,
    next_conn: Arc<AtomicU64>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (u64, ProxyStatus)>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records a new stream; a proxy that reconnects replaces its old entry. Returns the
    /// connection id that later updates must present.
    pub fn attach(&self, status: ProxyStatus) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(status.proxy_id.clone(), (conn, status));
        conn
    }

    /// Updates the entry of `proxy_id` if it still belongs to connection `conn`.
    pub fn update(&self, proxy_id: &str, conn: u64, f: impl FnOnce(&mut ProxyStatus)) {
        if let Some((c, st)) = self.lock().get_mut(proxy_id) {
            if *c == conn {
                f(st);
            }
        }
    }

    /// Removes the entry of `proxy_id` if it still belongs to connection `conn`.
    pub fn detach(&self, proxy_id: &str, conn: u64) {
        let mut g = self.lock();
        if g.get(proxy_id).is_some_and(|(c, _)| *c == conn) {
            g.remove(proxy_id);
        }
    }

    pub fn list(&self) -> Vec<ProxyStatus> {
        self.lock().values().map(|(_, s)| s.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

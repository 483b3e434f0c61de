//! One lazily connected gRPC channel per peer address, shared by Raft replication, request
//! forwarding and status probes.
//!
//! Secure mode: every peer channel is mutual TLS — this node's CA-issued node certificate as
//! client certificate, the peer's server certificate verified against the cluster CA. Until the
//! node knows the CA (a new node before its first contact) it has no peer channels at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

#[derive(Clone, Default)]
pub struct ChannelPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// `Some` in secure mode: the client TLS, once the cluster CA is known.
    tls: Option<Arc<Mutex<Option<ClientTlsConfig>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl ChannelPool {
    /// A pool whose channels are mutual TLS (set with [`ChannelPool::set_tls`]).
    pub fn secure() -> Self {
        Self {
            channels: Default::default(),
            tls: Some(Default::default()),
        }
    }

    /// Sets (or replaces) the client TLS of a secure pool; drops channels made before.
    pub fn set_tls(&self, tls: ClientTlsConfig) {
        if let Some(t) = &self.tls {
            *lock(t) = Some(tls);
            lock(&self.channels).clear();
        }
    }

    /// The channel to `addr` (`host:port`). Connects lazily; reconnects by itself.
    pub fn get(&self, addr: &str) -> Result<Channel, String> {
        let tls = match &self.tls {
            None => None,
            Some(t) => match lock(t).clone() {
                Some(c) => Some(c),
                None => return Err("no cluster CA yet: peer TLS is not ready".into()),
            },
        };
        let mut map = lock(&self.channels);
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let channel = match tls {
            None => endpoint(addr).map_err(|e| e.to_string())?,
            Some(tls) => {
                let hostport = addr.split_once("://").map(|(_, r)| r).unwrap_or(addr);
                endpoint(&format!("https://{hostport}"))
                    .and_then(|e| e.tls_config(tls))
                    .map_err(|e| e.to_string())?
            }
        }
        .connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// A gRPC endpoint for `addr`, with the timeouts every Switchyard client uses.
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(url)?
        .connect_timeout(Duration::from_millis(1000))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5)))
}

//! TLS session-ticket keys for the whole cluster: the leader generates one every rotation
//! period and commits it through Raft with the previous one (`managed.ticketKeys`, newest
//! first), and the config stream carries them to every proxy, so a ticket issued by one proxy
//! resumes on any other, and a ticket issued just before a rotation still resumes for one more
//! period. Keys exist from the first config where some router terminates TLS on. The decision
//! is pure ([`wanted`], [`due`], [`rotate`]); [`new_key`] draws the randomness.

use std::time::Duration;

use base64::Engine;
use switchyard_config::TicketKey;

/// Whether the leader must generate a key at `now` (Unix seconds): none yet, the newest is a
/// period old, or it was made for another period (the flag changed).
pub fn due(keys: &[TicketKey], period: Duration, now: u64) -> bool {
    let secs = period.as_secs();
    if secs == 0 {
        return false;
    }
    match keys.first() {
        None => true,
        Some(k) => {
            now >= k.created_unix.saturating_add(secs)
                || u64::from(k.lifetime_secs) != secs.min(u64::from(u32::MAX))
        }
    }
}

/// Whether the proxies terminate TLS at all (some HTTP router has `tls`, or some TCP router
/// terminates it): keys are generated from the first such config on (then kept and rotated), so
/// a cluster that serves no TLS never changes its config version on its own.
pub fn wanted(cfg: &switchyard_config::DynamicConfig) -> bool {
    cfg.http.routers.values().any(|r| r.tls.is_some())
        || cfg
            .tcp
            .routers
            .values()
            .any(|r| r.tls.as_ref().is_some_and(|t| !t.passthrough))
}

/// `new` followed by the current key (the previous one is dropped).
pub fn rotate(keys: &[TicketKey], new: TicketKey) -> Vec<TicketKey> {
    let mut out = vec![new];
    out.extend(keys.first().cloned());
    out
}

/// A fresh random key made at `now` for `period`.
pub fn new_key(period: Duration, now: u64) -> TicketKey {
    let name: [u8; 16] = rand::random();
    let key: [u8; 32] = rand::random();
    TicketKey {
        name: name.iter().map(|b| format!("{b:02x}")).collect(),
        key: base64::engine::general_purpose::STANDARD.encode(key),
        created_unix: now,
        lifetime_secs: u32::try_from(period.as_secs()).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_for_tls() {
        let plain = switchyard_config::parse_document(
            "http:\n  routers:\n    a: {rule: \"Host(`a`)\", service: s}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n",
        )
        .expect("doc");
        assert!(!wanted(&plain));
        let tls = switchyard_config::parse_document(
            "http:\n  routers:\n    a: {rule: \"Host(`a`)\", service: s, tls: {}}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}]}}\n",
        )
        .expect("doc");
        assert!(wanted(&tls));
    }

    #[test]
    fn rotation_schedule() {
        let p = Duration::from_secs(100);
        assert!(due(&[], p, 0));
        assert!(!due(&[], Duration::ZERO, 0));
        let k1 = new_key(p, 1000);
        assert_eq!(k1.name.len(), 32);
        assert!(!due(std::slice::from_ref(&k1), p, 1099));
        assert!(due(std::slice::from_ref(&k1), p, 1100));
        // Another period: rotate now.
        assert!(due(
            std::slice::from_ref(&k1),
            Duration::from_secs(50),
            1001
        ));
        let k2 = new_key(p, 1100);
        let keys = rotate(std::slice::from_ref(&k1), k2.clone());
        assert_eq!(keys, vec![k2.clone(), k1.clone()]);
        let k3 = new_key(p, 1200);
        assert_eq!(rotate(&keys, k3.clone()), vec![k3, k2]);
        assert_ne!(k1.key, new_key(p, 1000).key);
    }
}

//! The cluster's session-ticket keys as a rustls [`ProducesTickets`]: every proxy of a cluster
//! gets the same keys (`managed.ticketKeys`, generated and rotated by the control plane's
//! leader), so a ticket issued by one proxy resumes on any other.
//!
//! A ticket is `name (16 bytes) ‖ nonce (12 bytes) ‖ AES-256-GCM(state) ‖ tag`, the key name as
//! associated data. The newest key encrypts; every key held decrypts (the previous one keeps
//! tickets issued before a rotation valid for one more period). Building the ticketer is pure;
//! encrypting draws a random nonce per ticket, at handshake time.

use std::sync::Arc;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;
use switchyard_config::TicketKey;

const NAME_LEN: usize = 16;
/// TLS 1.3 caps a ticket's lifetime at 7 days (RFC 8446 §4.6.1).
const MAX_LIFETIME: u32 = 7 * 24 * 3600;

pub(crate) struct ClusterTicketer {
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    lifetime: u32,
    rng: SystemRandom,
}

impl std::fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTicketer")
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

fn parse_name(hex: &str) -> Option<[u8; NAME_LEN]> {
    if hex.len() != NAME_LEN * 2 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; NAME_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// The ticketer for `keys` (newest first); `None` when there are none. The error names the key
/// index and never contains key material.
pub(crate) fn ticketer(
    keys: &[TicketKey],
) -> Result<Option<Arc<dyn ProducesTickets>>, (usize, String)> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let name = parse_name(&k.name).ok_or((i, "name: expected 32 hex digits".to_string()))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(k.key.trim())
            .map_err(|_| (i, "key: not base64".to_string()))?;
        if raw.len() != 32 {
            return Err((i, "key: expected 32 bytes".to_string()));
        }
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| (i, "key: not an AES-256 key".to_string()))?;
        out.push((name, LessSafeKey::new(key)));
    }
    // A ticket stays decryptable for at most two periods (issued right after a rotation).
    let lifetime = keys[0]
        .lifetime_secs
        .saturating_mul(2)
        .clamp(1, MAX_LIFETIME);
    Ok(Some(Arc::new(ClusterTicketer {
        keys: out,
        lifetime,
        rng: SystemRandom::new(),
    })))
}

impl ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&name[..]),
            &mut body,
        )
        .ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + body.len());
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let (_, key) = self.keys.iter().find(|(n, _)| &n[..] == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(n: u8) -> TicketKey {
        TicketKey {
            name: format!("{n:02x}").repeat(16),
            key: base64::engine::general_purpose::STANDARD.encode([n; 32]),
            created_unix: 0,
            lifetime_secs: 3600,
        }
    }

    #[test]
    fn old_keys_decrypt_new_key_encrypts() {
        let t1 = ticketer(&[key(1)]).unwrap().unwrap();
        let t21 = ticketer(&[key(2), key(1)]).unwrap().unwrap();
        let t32 = ticketer(&[key(3), key(2)]).unwrap().unwrap();
        let a = t1.encrypt(b"state").unwrap();
        assert_eq!(t1.decrypt(&a).as_deref(), Some(&b"state"[..]));
        // Another process with the same keys decrypts it; after one rotation too.
        assert_eq!(t21.decrypt(&a).as_deref(), Some(&b"state"[..]));
        // After two rotations it is gone.
        assert_eq!(t32.decrypt(&a), None);
        // The newest key encrypts.
        let b = t21.encrypt(b"x").unwrap();
        assert_eq!(&b[..16], &[2u8; 16]);
        assert_eq!(t32.decrypt(&b).as_deref(), Some(&b"x"[..]));
        // Tampering and garbage are refused, never panic.
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(t21.decrypt(&bad), None);
        assert_eq!(t21.decrypt(&[]), None);
        assert_eq!(t21.decrypt(&[2u8; 40]), None);
        assert_eq!(t21.lifetime(), 7200);
    }

    #[test]
    fn bad_keys_name_the_index() {
        let mut k = key(1);
        k.key = "short".into();
        assert_eq!(ticketer(&[key(2), k]).err().map(|e| e.0), Some(1));
        let mut k = key(1);
        k.name = "zz".into();
        assert!(ticketer(&[k]).is_err());
        assert!(ticketer(&[]).unwrap().is_none());
    }
}

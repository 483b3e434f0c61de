//! Small helpers of the hot path: a thread-local PRNG (p2c picks, mirroring, request ids; not
//! cryptographic), hex formatting without allocation, a monotonic millisecond clock for
//! passive-health ejection windows, and reference resolution (`name@provider` → `name`).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::Instant;

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is randomly keyed per process and per instance.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

/// A fast thread-local pseudo-random number (xorshift64*).
pub(crate) fn rand_u64() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A pseudo-random number in `0..n` (`n > 0`).
pub(crate) fn rand_below(n: usize) -> usize {
    // Lemire's multiply-shift; the bias is negligible for our n.
    ((u128::from(rand_u64()) * n as u128) >> 64) as usize
}

/// The two lowercase hex digits of every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

/// Write `v` as 16 lowercase hex digits into `out` (which must be 16 bytes): one table
/// lookup per byte.
pub(crate) fn hex_u64(v: u64, out: &mut [u8]) {
    for (o, b) in out.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        o.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since an arbitrary process-wide epoch (monotonic), never 0.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Resolve a reference as written (`name` or `name@provider`) to the resource name, as
/// `switchyard_config::validate` does.
pub(crate) fn resolve_ref(r: &str) -> &str {
    match r.split_once('@') {
        Some((name, _)) => name,
        None => r,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rand_is_spread() {
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[rand_below(4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn hex_formats() {
        let mut b = [0u8; 16];
        hex_u64(0x0123_4567_89ab_cdef, &mut b);
        assert_eq!(&b, b"0123456789abcdef");
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn refs() {
        assert_eq!(resolve_ref("a@file"), "a");
        assert_eq!(resolve_ref("a"), "a");
        assert!(now_ms() >= 1);
    }
}

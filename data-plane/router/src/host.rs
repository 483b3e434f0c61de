//! Allocation-free computation of the host index key of a request.

use std::borrow::Cow;

use switchyard_config::rules;

/// Size of the stack buffer used to lowercase a request host. Longer hosts (DNS names are at
/// most 253 characters) fall back to an allocation.
pub(crate) const KEY_BUF: usize = 256;

/// Exactly [`rules::host_key`] (canonical host without one trailing dot), but without
/// allocating in the common case: the result borrows `raw` when the host is already lowercase,
/// or `buf` when it had to be lowercased. Non-ASCII hosts (Unicode lowercasing can turn a
/// non-ASCII character into an ASCII one, e.g. the Kelvin sign) and hosts longer than
/// [`KEY_BUF`] go through [`rules::host_key`] itself.
///
/// The slicing is `rules::host_without_port`, shared with `rules::canonical_host`; the
/// randomised test `host_key_equivalence` checks that both agree.
pub(crate) fn host_key<'a>(raw: &'a str, buf: &'a mut [u8; KEY_BUF]) -> Cow<'a, str> {
    if !raw.is_ascii() {
        return Cow::Owned(rules::host_key(raw));
    }
    let h = rules::host_without_port(raw);
    let h = h.strip_suffix('.').unwrap_or(h);
    if !h.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(h);
    }
    if h.len() > KEY_BUF {
        return Cow::Owned(rules::host_key(raw));
    }
    let out = &mut buf[..h.len()];
    out.copy_from_slice(h.as_bytes());
    out.make_ascii_lowercase();
    match std::str::from_utf8(out) {
        Ok(s) => Cow::Borrowed(s),
        // Unreachable (ASCII in, ASCII out), but stay exact rather than panic.
        Err(_) => Cow::Owned(rules::host_key(raw)),
    }
}

/// The key of the wildcard list a host key may match: `*.example.com` is stored under
/// `example.com` and matches exactly one non-empty label before it, so `a.example.com` looks
/// up `example.com` (and `a.b.example.com` looks up `b.example.com`).
pub(crate) fn wildcard_parent(key: &str) -> Option<&str> {
    match key.find('.') {
        Some(i) if i > 0 => Some(&key[i + 1..]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        let mut buf = [0u8; KEY_BUF];
        host_key(raw, &mut buf).into_owned()
    }

    #[test]
    fn matches_config_host_key() {
        for raw in [
            "",
            " ",
            "a.com",
            "A.Com",
            "A.COM.:8080",
            "a.com..",
            "[::1]:443",
            "[::1]",
            "[FE80::1",
            "::1",
            "Example.com:",
            " x.COM :80",
            "\u{212A}.com",
            "Ä.com",
            ".",
            "..",
        ] {
            assert_eq!(key(raw), rules::host_key(raw), "{raw:?}");
        }
        let long = "A".repeat(KEY_BUF + 10);
        assert_eq!(key(&long), rules::host_key(&long));
    }

    #[test]
    fn host_key_equivalence() {
        // Random strings over an alphabet of the characters that matter to canonicalisation.
        const ALPHABET: &[&str] = &[
            "a", "Z", "q", ".", ".", ":", ":", "[", "]", " ", "\t", "\n", "1", "-", "Ä",
            "\u{212A}", "\u{130}", "\u{a0}", "*",
        ];
        let mut state: u64 = 0x1234_5678;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let len = (next() % 12) as usize;
            let raw: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            assert_eq!(key(&raw), rules::host_key(&raw), "{raw:?}");
        }
    }

    #[test]
    fn borrows_when_possible() {
        let mut buf = [0u8; KEY_BUF];
        assert!(matches!(
            host_key("a.com:80", &mut buf),
            Cow::Borrowed("a.com")
        ));
        assert!(matches!(
            host_key("A.com", &mut buf),
            Cow::Borrowed("a.com")
        ));
    }

    #[test]
    fn parents() {
        assert_eq!(wildcard_parent("a.b.com"), Some("b.com"));
        assert_eq!(wildcard_parent("b.com"), Some("com"));
        assert_eq!(wildcard_parent("com"), None);
        assert_eq!(wildcard_parent(".com"), None);
        assert_eq!(wildcard_parent("a..com"), Some(".com"));
    }
}

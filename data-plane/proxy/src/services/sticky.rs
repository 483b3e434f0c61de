//! Sticky sessions with a cookie, as Traefik v3 (`pkg/server/service/loadbalancer/sticky.go`):
//!
//! * cookie name: `sticky.cookie.name`, else `_` + the first 5 hex digits of
//!   SHA-1(`"_TRAEFIK_BACKEND_" + service name`) (Traefik's `cookie.GenerateName`; Traefik
//!   hashes the provider-qualified name, we hash the name as configured);
//! * cookie value: the first 16 hex digits of SHA-256 of the target's name (the server URL for
//!   a load balancer, the child service name for a weighted service). Cookies holding the raw
//!   name or its legacy FNV-64 hash (or double hash) are still honoured and rewritten;
//! * attributes: `Path` (default `/`), `Domain`, `Max-Age` (omitted when 0, `0` when
//!   negative), `HttpOnly`, `Secure`, `SameSite` (`none`/`lax`/`strict`; omitted otherwise),
//!   written in Go's `http.Cookie.String` order;
//! * a request pinned to a target that is no longer available is re-balanced and re-pinned.

use std::collections::HashMap;

use http::header::{HeaderMap, HeaderValue, COOKIE};
use switchyard_config::StickyCookie as CookieConfig;

use crate::util::hex;

/// A compiled sticky cookie.
#[derive(Debug)]
pub(crate) struct Sticky {
    name: String,
    /// `; Path=/; …` appended after `name=value`.
    attributes: String,
    /// Cookie value (current hash, legacy forms) → (target index, needs rewrite).
    index: HashMap<Box<str>, (u32, bool)>,
    /// Current cookie value per target.
    values: Vec<Box<str>>,
}

/// Traefik's default cookie name for a service.
pub(crate) fn default_name(service: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("_TRAEFIK_BACKEND_{service}").as_bytes(),
    );
    let h = hex(d.as_ref());
    format!("_{}", &h[..5])
}

/// The cookie value of a target: 16 hex digits of SHA-256 of its name.
pub(crate) fn cookie_value(target: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, target.as_bytes());
    hex(&d.as_ref()[..8])
}

/// Go's FNV-64 (not 64a) hash as lowercase hex without leading zeros.
fn fnv_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = h.wrapping_mul(0x0100_0000_01b3);
        h ^= u64::from(b);
    }
    format!("{h:x}")
}

impl Sticky {
    /// Compile the cookie of `service` whose targets are named `targets` (index = target id).
    pub(crate) fn new(cfg: &CookieConfig, service: &str, targets: &[(u32, &str)]) -> Sticky {
        let name = cfg
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_name(service));
        let mut attributes = String::new();
        let path = cfg.path.clone().unwrap_or_else(|| "/".to_string());
        if !path.is_empty() {
            attributes.push_str("; Path=");
            attributes.push_str(&path);
        }
        if let Some(d) = cfg.domain.as_deref().map(|d| d.trim_start_matches('.')) {
            if !d.is_empty() {
                attributes.push_str("; Domain=");
                attributes.push_str(d);
            }
        }
        match cfg.max_age.unwrap_or(0) {
            0 => {}
            n if n < 0 => attributes.push_str("; Max-Age=0"),
            n => attributes.push_str(&format!("; Max-Age={n}")),
        }
        if cfg.http_only.unwrap_or(false) {
            attributes.push_str("; HttpOnly");
        }
        if cfg.secure.unwrap_or(false) {
            attributes.push_str("; Secure");
        }
        match cfg
            .same_site
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("none") => attributes.push_str("; SameSite=None"),
            Some("lax") => attributes.push_str("; SameSite=Lax"),
            Some("strict") => attributes.push_str("; SameSite=Strict"),
            _ => {}
        }
        let mut index = HashMap::new();
        let mut values = Vec::new();
        for &(id, target) in targets {
            let v = cookie_value(target);
            // Legacy forms first so the current hash wins any collision.
            let fnv = fnv_hash(target);
            index.insert(fnv_hash(&fnv).into_boxed_str(), (id, true));
            index.insert(fnv.into_boxed_str(), (id, true));
            index.insert(Box::from(target), (id, true));
            index.insert(v.clone().into_boxed_str(), (id, false));
            if values.len() <= id as usize {
                values.resize(id as usize + 1, Box::from(""));
            }
            values[id as usize] = v.into_boxed_str();
        }
        Sticky {
            name,
            attributes,
            index,
            values,
        }
    }

    /// The pinned target of a request, and whether its cookie must be rewritten (legacy form).
    pub(crate) fn pinned(&self, headers: &HeaderMap) -> Option<(u32, bool)> {
        let v = find_cookie(headers, &self.name)?;
        self.index.get(v).copied()
    }

    /// The `Set-Cookie` value pinning a client to `target`.
    pub(crate) fn set_cookie(&self, target: u32) -> Option<HeaderValue> {
        let v = self.values.get(target as usize)?;
        HeaderValue::from_str(&format!("{}={}{}", self.name, v, self.attributes)).ok()
    }
}

/// The value of the first cookie named `name` in the `Cookie` headers (Go's `req.Cookie`),
/// with surrounding double quotes removed.
pub(crate) fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    for line in headers.get_all(COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for part in line.split(';') {
            let part = part.trim();
            if let Some((k, v)) = part.split_once('=') {
                if k.trim() == name {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .unwrap_or(v);
                    return Some(v);
                }
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> CookieConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_and_values() {
        // Traefik's GenerateName("_TRAEFIK_BACKEND_" + name)[:6].
        let n = default_name("whoami");
        assert_eq!(n.len(), 6);
        assert!(n.starts_with('_'));
        assert_eq!(n, default_name("whoami"));
        assert_ne!(n, default_name("other"));
        let v = cookie_value("http://10.0.0.1:80");
        assert_eq!(v.len(), 16);
        // sha256("test") = 9f86d081884c7d65...
        assert_eq!(cookie_value("test"), "9f86d081884c7d65");
        // Go: fnv.New64() of "" is the offset basis.
        assert_eq!(fnv_hash(""), "cbf29ce484222325");
    }

    #[test]
    fn attributes_in_go_order() {
        let s = Sticky::new(
            &cfg(
                r#"{"name":"sid","secure":true,"httpOnly":true,"sameSite":"Lax","maxAge":60,"path":"/app","domain":".example.com"}"#,
            ),
            "svc",
            &[(0, "http://a"), (1, "http://b")],
        );
        assert_eq!(
            s.set_cookie(1).unwrap(),
            format!(
                "sid={}; Path=/app; Domain=example.com; Max-Age=60; HttpOnly; Secure; SameSite=Lax",
                cookie_value("http://b")
            )
            .as_str()
        );
        let s = Sticky::new(&cfg(r#"{"maxAge":-1}"#), "svc", &[(0, "http://a")]);
        assert_eq!(
            s.set_cookie(0).unwrap(),
            format!(
                "{}={}; Path=/; Max-Age=0",
                default_name("svc"),
                cookie_value("http://a")
            )
            .as_str()
        );
    }

    #[test]
    fn pinning() {
        let s = Sticky::new(
            &cfg(r#"{"name":"sid"}"#),
            "svc",
            &[(0, "http://a"), (1, "http://b")],
        );
        let mut h = HeaderMap::new();
        assert_eq!(s.pinned(&h), None);
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("x=1; sid={}; y=2", cookie_value("http://b"))).unwrap(),
        );
        assert_eq!(s.pinned(&h), Some((1, false)));
        // Legacy raw name and FNV forms are honoured but rewritten.
        h.insert(COOKIE, HeaderValue::from_static("sid=http://a"));
        assert_eq!(s.pinned(&h), Some((0, true)));
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("sid={}", fnv_hash("http://a"))).unwrap(),
        );
        assert_eq!(s.pinned(&h), Some((0, true)));
        h.insert(COOKIE, HeaderValue::from_static("sid=unknown"));
        assert_eq!(s.pinned(&h), None);
        h.insert(COOKIE, HeaderValue::from_static("sid=\"quoted\""));
        assert_eq!(find_cookie(&h, "sid"), Some("quoted"));
    }
}

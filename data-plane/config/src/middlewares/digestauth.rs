//! `digestAuth`: RFC 2617 digest authentication as Traefik does it (`abbot/go-http-auth`):
//! MD5, `qop="auth"`, users as htdigest lines `name:realm:HA1` (`HA1 = MD5(name:realm:password)`,
//! what `htdigest` writes), of which those of the middleware's realm (default `traefik`) can
//! log in. A challenge carries a fresh nonce; the proxy keeps the nonces it handed out (at most
//! [`MAX_NONCES`] + 100; beyond that the 200 least recently used are dropped, as go-http-auth)
//! with the last nonce count seen, so a replayed or out-of-order `nc` is refused (`stale=true`
//! in the new challenge, as Traefik's fork of go-http-auth), and so is a nonce it did not hand
//! out (another proxy's, or one from before a restart).
//!
//! Differences: an `HA1` that is not 32 hexadecimal digits (which Traefik accepts and never
//! matches) is refused, and a user name that is not listed never authenticates (go-http-auth
//! checks such a user against an empty HA1).
//!
//! Pure: the caller passes the nonce (random) and the time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use http::header::{HeaderName, HeaderValue};
use md5::{Digest as _, Md5};

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::DigestAuth;

/// Nonces kept per middleware before the oldest are dropped (go-http-auth's
/// `ClientCacheSize`).
pub const MAX_NONCES: usize = 1000;
const TOLERANCE: usize = 100;

/// `hex(MD5(data))`.
pub fn h(data: &str) -> String {
    let d = Md5::digest(data.as_bytes());
    let mut s = String::with_capacity(32);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Go-http-auth's `ParsePairs`: `k=v` and `k="v"` items separated by commas (commas inside
/// quotes kept, backslash escapes inside quotes honoured).
pub fn parse_pairs(value: &str) -> HashMap<String, String> {
    let mut items = Vec::new();
    let (mut escape, mut quoted) = (false, false);
    let mut cur = String::new();
    for c in value.trim().chars() {
        if escape {
            cur.push(c);
            escape = false;
        } else if quoted {
            if c == '\\' {
                escape = true;
            } else {
                if c == '"' {
                    quoted = false;
                }
                cur.push(c);
            }
        } else if c == ',' {
            items.push(cur.trim().to_string());
            cur.clear();
        } else {
            if c == '"' {
                quoted = true;
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        items.push(cur.trim().to_string());
    }
    let mut m = HashMap::new();
    for item in items {
        match item.split_once('=') {
            None => {
                m.insert(item, String::new());
            }
            Some((k, v)) => {
                let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                    &v[1..v.len() - 1]
                } else {
                    v
                };
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Authenticated as this user.
    User(String),
    /// Refused; `stale`: the response was right for a nonce this proxy does not hold (or a
    /// nonce count already seen), so the client may retry with the new nonce without asking
    /// the user again.
    Refused {
        /// Send `stale=true`.
        stale: bool,
    },
}

/// A request as digest authentication sees it.
pub struct DigestRequest<'a> {
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
    /// The method.
    pub method: &'a str,
    /// The request target as received (Go's `RequestURI`).
    pub request_uri: &'a str,
    /// Its path.
    pub path: &'a str,
}

#[derive(Debug)]
struct Nonce {
    nc: u64,
    last_seen: u64,
}

/// A compiled `digestAuth` with its nonces.
#[derive(Debug)]
pub struct CompiledDigestAuth {
    /// The realm.
    pub realm: String,
    /// The `opaque` value of challenges.
    pub opaque: String,
    /// User → HA1 (lowercase hex), for the users of this realm.
    users: HashMap<String, String>,
    /// Remove `Authorization` before forwarding.
    pub remove_header: bool,
    /// Header that carries the user to the backend.
    pub header_field: Option<HeaderName>,
    nonces: Mutex<HashMap<String, Nonce>>,
}

impl CompiledDigestAuth {
    /// A challenge (`WWW-Authenticate` value) with `nonce`, remembered as handed out at
    /// `now` (any monotonic count, e.g. milliseconds).
    pub fn challenge(&self, nonce: &str, stale: bool, now: u64) -> Option<HeaderValue> {
        let mut m = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() > MAX_NONCES + TOLERANCE {
            let mut seen: Vec<u64> = m.values().map(|n| n.last_seen).collect();
            seen.sort_unstable();
            let cut = seen[2 * TOLERANCE - 1];
            m.retain(|_, n| n.last_seen > cut);
        }
        m.insert(
            nonce.to_string(),
            Nonce {
                nc: 0,
                last_seen: now,
            },
        );
        let stale = if stale { ", stale=true" } else { "" };
        HeaderValue::from_str(&format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", opaque=\"{}\", algorithm=MD5, qop=\"auth\"{stale}",
            self.realm, self.opaque
        ))
        .ok()
    }

    /// Check a request's credentials (go-http-auth's `CheckAuth`).
    pub fn check(&self, req: &DigestRequest<'_>, now: u64) -> Check {
        const NO: Check = Check::Refused { stale: false };
        let Some(auth) = req.authorization else {
            return NO;
        };
        let Some(("Digest", rest)) = auth.split_once(' ') else {
            return NO;
        };
        let p = parse_pairs(rest);
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let algorithm = p.get("algorithm").map_or("MD5", String::as_str);
        if get("opaque") != self.opaque || algorithm != "MD5" || get("qop") != "auth" {
            return NO;
        }
        let uri = get("uri");
        if uri != req.request_uri {
            // The path of `uri` must be a prefix of the request's path.
            let upath = uri.split(['?', '#']).next().unwrap_or("");
            let upath = match upath.find("://") {
                Some(i) => upath[i + 3..].find('/').map_or("", |j| &upath[i + 3 + j..]),
                None => upath,
            };
            if upath.len() > req.path.len() || !req.path.starts_with(upath) {
                return NO;
            }
        }
        let username = get("username");
        let Some(ha1) = self.users.get(username) else {
            return NO;
        };
        let ha2 = h(&format!("{}:{uri}", req.method));
        let kd = h(&[
            ha1.as_str(),
            get("nonce"),
            get("nc"),
            get("cnonce"),
            get("qop"),
            &ha2,
        ]
        .join(":"));
        if !ct_eq(kd.as_bytes(), get("response").as_bytes()) {
            return NO;
        }
        let Ok(nc) = u64::from_str_radix(get("nc"), 16) else {
            return NO;
        };
        let mut m = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(n) = m.get_mut(get("nonce")) else {
            return Check::Refused { stale: true };
        };
        if n.nc != 0 && n.nc >= nc {
            return Check::Refused { stale: true };
        }
        n.nc = nc;
        n.last_seen = now;
        Check::User(username.to_string())
    }
}

/// Compile `digestAuth`.
pub(crate) fn compile(d: &DigestAuth) -> Result<CompiledDigestAuth, FieldErrors> {
    let mut errs = FieldErrors::new();
    let realm = if d.realm.is_empty() {
        "traefik".to_string()
    } else {
        d.realm.clone()
    };
    let mut users = HashMap::new();
    let mut count = 0;
    let mut add = |field: String, line: &str, errs: &mut FieldErrors| {
        let parts: Vec<&str> = line.split(':').collect();
        let [name, user_realm, ha1] = parts[..] else {
            errs.push(FieldError::new(
                field,
                format!("invalid user line {}: expected name:realm:HA1", quote(line)),
            ));
            return;
        };
        if ha1.len() != 32 || !ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
            errs.push(FieldError::new(
                field,
                format!(
                    "user {}: HA1 must be 32 hexadecimal digits (MD5 of name:realm:password, as htdigest writes it)",
                    quote(name)
                ),
            ));
            return;
        }
        count += 1;
        if user_realm == realm {
            users.insert(name.to_string(), ha1.to_ascii_lowercase());
        }
    };
    if !d.users_file.is_empty() {
        if !d.users_file.contains('\n') {
            errs.push(FieldError::new(
                "digestAuth.usersFile",
                format!(
                    "{} was not uploaded: `switchyard apply -f` uploads the file's content",
                    quote(&d.users_file)
                ),
            ));
        }
        for (i, line) in d.users_file.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            add(
                format!("digestAuth.usersFile (line {})", i + 1),
                line,
                &mut errs,
            );
        }
    }
    for (i, line) in d.users.iter().enumerate() {
        add(format!("digestAuth.users[{i}]"), line, &mut errs);
    }
    if count == 0 && errs.is_empty() {
        errs.push(FieldError::new(
            "digestAuth.users",
            "at least one user is required (users or usersFile)",
        ));
    }
    if realm.contains('"') || HeaderValue::from_str(&realm).is_err() {
        errs.push(FieldError::new(
            "digestAuth.realm",
            format!(
                "must be printable text without quotes, got {}",
                quote(&realm)
            ),
        ));
    }
    let header_field = if d.header_field.is_empty() {
        None
    } else {
        match HeaderName::from_bytes(d.header_field.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(FieldError::new(
                    "digestAuth.headerField",
                    format!("invalid header name {}", quote(&d.header_field)),
                ));
                None
            }
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledDigestAuth {
        opaque: h(&format!("switchyard digestAuth {realm}")),
        realm,
        users,
        remove_header: d.remove_header.unwrap_or(false),
        header_field,
        nonces: Mutex::new(HashMap::new()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What a client computes for a challenge (RFC 2617, qop=auth).
    fn respond(
        user: &str,
        password: &str,
        realm: &str,
        nonce: &str,
        opaque: &str,
        uri: &str,
        nc: &str,
    ) -> String {
        let ha1 = h(&format!("{user}:{realm}:{password}"));
        let ha2 = h(&format!("GET:{uri}"));
        let resp = h(&format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}"));
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"abc\", response=\"{resp}\", opaque=\"{opaque}\""
        )
    }

    fn auth(users: &[&str], realm: &str) -> CompiledDigestAuth {
        compile(&DigestAuth {
            users: users.iter().map(|s| s.to_string()).collect(),
            realm: realm.into(),
            ..DigestAuth::default()
        })
        .unwrap()
    }

    fn req<'a>(a: &'a str, uri: &'a str) -> DigestRequest<'a> {
        DigestRequest {
            authorization: Some(a),
            method: "GET",
            request_uri: uri,
            path: uri.split('?').next().unwrap(),
        }
    }

    // Traefik's digest_auth_test.go users (test:test, test2:test2 in realm traefik).
    #[test]
    fn traefik_users() {
        assert_eq!(h("test:traefik:test"), "a2688e031edb4be6a3797f3882655c05");
        let a = auth(
            &[
                "test:traefik:a2688e031edb4be6a3797f3882655c05",
                "test2:traefik:518845800f9e2bfb1f1f740ec24f074e",
                "test:traefiker:a3d334dff2645b914918de78bec50bf4",
            ],
            "",
        );
        let ch = a.challenge("n1", false, 1).unwrap();
        assert_eq!(
            ch.to_str().unwrap(),
            format!("Digest realm=\"traefik\", nonce=\"n1\", opaque=\"{}\", algorithm=MD5, qop=\"auth\"", a.opaque)
        );
        let good = respond("test", "test", "traefik", "n1", &a.opaque, "/x", "00000001");
        assert_eq!(a.check(&req(&good, "/x"), 2), Check::User("test".into()));
        // The same nonce count again: replay, stale.
        assert_eq!(
            a.check(&req(&good, "/x"), 3),
            Check::Refused { stale: true }
        );
        let next = respond("test", "test", "traefik", "n1", &a.opaque, "/x", "00000002");
        assert_eq!(a.check(&req(&next, "/x"), 4), Check::User("test".into()));
        // Wrong password, unknown user, unknown nonce, another realm's user.
        let bad = respond("test", "nope", "traefik", "n1", &a.opaque, "/x", "00000003");
        assert_eq!(
            a.check(&req(&bad, "/x"), 5),
            Check::Refused { stale: false }
        );
        let foo = respond("foo", "foo", "traefik", "n1", &a.opaque, "/x", "00000003");
        assert_eq!(
            a.check(&req(&foo, "/x"), 5),
            Check::Refused { stale: false }
        );
        let other = respond("test", "test", "traefik", "n2", &a.opaque, "/x", "00000001");
        assert_eq!(
            a.check(&req(&other, "/x"), 5),
            Check::Refused { stale: true }
        );
        // Basic credentials are refused.
        assert_eq!(
            a.check(&req("Basic dGVzdDp0ZXN0", "/x"), 5),
            Check::Refused { stale: false }
        );
        // Realm traefiker: only its user.
        let b = auth(
            &[
                "test:traefik:a2688e031edb4be6a3797f3882655c05",
                "test:traefiker:a3d334dff2645b914918de78bec50bf4",
            ],
            "traefiker",
        );
        b.challenge("n", false, 1);
        let r = respond(
            "test",
            "test2",
            "traefiker",
            "n",
            &b.opaque,
            "/",
            "00000001",
        );
        assert_eq!(b.check(&req(&r, "/"), 2), Check::User("test".into()));
    }

    #[test]
    fn uri_must_cover_the_request() {
        let a = auth(&["test:traefik:a2688e031edb4be6a3797f3882655c05"], "");
        a.challenge("n", false, 1);
        // A uri that is a prefix of the request path is accepted (go-http-auth).
        let r = respond("test", "test", "traefik", "n", &a.opaque, "/a", "00000001");
        assert_eq!(a.check(&req(&r, "/a/b"), 2), Check::User("test".into()));
        let r = respond(
            "test", "test", "traefik", "n", &a.opaque, "/other", "00000002",
        );
        assert_eq!(
            a.check(&req(&r, "/a/b"), 2),
            Check::Refused { stale: false }
        );
    }

    #[test]
    fn nonce_table_is_bounded() {
        let a = auth(&["test:traefik:a2688e031edb4be6a3797f3882655c05"], "");
        for i in 0..5000u64 {
            a.challenge(&i.to_string(), false, i);
        }
        assert!(a.nonces.lock().unwrap().len() <= MAX_NONCES + TOLERANCE + 1);
        // The newest is still there.
        let r = respond(
            "test", "test", "traefik", "4999", &a.opaque, "/", "00000001",
        );
        assert_eq!(a.check(&req(&r, "/"), 6000), Check::User("test".into()));
    }

    #[test]
    fn pairs() {
        let p = parse_pairs(r#"username="a,b", nc=00000001, qop=auth, x, realm="q\"r""#);
        assert_eq!(p["username"], "a,b");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["x"], "");
        assert_eq!(p["realm"], r#"q"r"#);
    }

    #[test]
    fn bad_options() {
        // Traefik's TestDigestAuthError: "test" is not a user line.
        let e = compile(&DigestAuth {
            users: vec!["test".into(), "a:traefik:xyz".into()],
            header_field: "X User".into(),
            realm: "a\"b".into(),
            ..DigestAuth::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "digestAuth.users[0]",
                "digestAuth.users[1]",
                "digestAuth.realm",
                "digestAuth.headerField"
            ]
        );
        assert_eq!(
            e[0].message,
            "invalid user line \"test\": expected name:realm:HA1"
        );
        let e = compile(&DigestAuth::default()).unwrap_err();
        assert_eq!(e[0].field, "digestAuth.users");
    }
}

//! `basicAuth`: htpasswd users (bcrypt `$2a$`/`$2b$`/`$2x$`/`$2y$`, `{SHA}`, MD5-crypt
//! `$apr1$`/`$1$`) from `users` and the uploaded `usersFile` (inline users win), the realm,
//! `removeHeader` and `headerField`. Verification is pure too (the proxy calls
//! [`CompiledBasicAuth::check`]).

use std::collections::HashMap;

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use md5::{Digest as _, Md5};
use sha1::Sha1;

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::BasicAuth;

/// A password hash.
#[derive(Debug, Clone)]
enum Hash {
    Bcrypt(String),
    /// `{SHA}`: the SHA-1 digest.
    Sha1(Vec<u8>),
    /// MD5-crypt: magic (`$apr1$` or `$1$`), salt, the whole hash string.
    Md5Crypt {
        magic: &'static str,
        salt: String,
        full: String,
    },
}

/// A compiled `basicAuth`.
#[derive(Debug, Clone)]
pub struct CompiledBasicAuth {
    users: HashMap<String, Hash>,
    /// Checked for unknown users, so they take as long as known ones.
    not_found: Hash,
    /// `WWW-Authenticate` of refusals.
    pub challenge: HeaderValue,
    /// Remove `Authorization` before forwarding.
    pub remove_header: bool,
    /// Header carrying the user to the backend.
    pub header_field: Option<HeaderName>,
}

impl CompiledBasicAuth {
    /// Whether `user` / `password` are valid.
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(h) => verify(h, password),
            None => {
                let _ = verify(&self.not_found, password);
                false
            }
        }
    }
}

fn verify(h: &Hash, password: &str) -> bool {
    match h {
        Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        Hash::Sha1(d) => ct_eq(&Sha1::digest(password.as_bytes()), d),
        Hash::Md5Crypt { magic, salt, full } => ct_eq(
            md5_crypt(password.as_bytes(), salt.as_bytes(), magic).as_bytes(),
            full.as_bytes(),
        ),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (`$1$`, and Apache's `$apr1$` which differs only by its magic).
pub(crate) fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let alt = {
        let mut c = Md5::new();
        c.update(pw);
        c.update(salt);
        c.update(pw);
        c.finalize()
    };
    let mut c = Md5::new();
    c.update(pw);
    c.update(magic.as_bytes());
    c.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        c.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 != 0 {
            c.update([0u8]);
        } else {
            c.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = c.finalize();
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 != 0 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(pw);
        }
        if r & 1 != 0 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    to64(u32::from(fin[11]), 2);
    out
}

fn parse_hash(hash: &str) -> Result<Hash, String> {
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        return match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(d) if d.len() == 20 => Ok(Hash::Sha1(d)),
            _ => Err("invalid {SHA} hash (base64 of a SHA-1 digest expected)".into()),
        };
    }
    if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        return match hash.parse::<bcrypt::HashParts>() {
            Ok(_) => Ok(Hash::Bcrypt(hash.to_string())),
            Err(e) => Err(format!("invalid bcrypt hash: {e}")),
        };
    }
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = hash.strip_prefix(magic) {
            let Some((salt, digest)) = rest.split_once('$') else {
                return Err(format!("invalid {magic} hash (missing salt)"));
            };
            if digest.len() != 22 || !digest.bytes().all(|b| ITOA64.contains(&b)) {
                return Err(format!("invalid {magic} hash"));
            }
            return Ok(Hash::Md5Crypt {
                magic,
                salt: salt.to_string(),
                full: hash.to_string(),
            });
        }
    }
    Err("unsupported password hash: use bcrypt ($2y$), {SHA} or MD5 ($apr1$), as `htpasswd -B`, `-s` or `-m` write them".into())
}

/// Compile `basicAuth`.
pub(crate) fn compile(b: &BasicAuth) -> Result<CompiledBasicAuth, FieldErrors> {
    let mut errs = FieldErrors::new();
    let mut users = HashMap::new();
    let mut first = None;
    let mut add = |field: String, line: &str, errs: &mut FieldErrors| {
        let parts: Vec<&str> = line.split(':').collect();
        let [name, hash] = parts[..] else {
            let who = parts.first().copied().unwrap_or("");
            errs.push(FieldError::new(
                field,
                format!("invalid user line for {}: expected name:hash", quote(who)),
            ));
            return;
        };
        match parse_hash(hash) {
            Ok(h) => {
                if first.is_none() {
                    first = Some(h.clone());
                }
                users.insert(name.to_string(), h);
            }
            Err(e) => errs.push(FieldError::new(field, format!("user {}: {e}", quote(name)))),
        }
    };
    if !b.users_file.is_empty() {
        if !b.users_file.contains('\n') {
            errs.push(FieldError::new(
                "basicAuth.usersFile",
                format!(
                    "{} was not uploaded: `switchyard apply -f` uploads the file's content",
                    quote(&b.users_file)
                ),
            ));
        }
        for (i, line) in b.users_file.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            add(
                format!("basicAuth.usersFile (line {})", i + 1),
                line,
                &mut errs,
            );
        }
    }
    for (i, line) in b.users.iter().enumerate() {
        add(format!("basicAuth.users[{i}]"), line, &mut errs);
    }
    if b.users.is_empty() && b.users_file.is_empty() {
        errs.push(FieldError::new(
            "basicAuth.users",
            "at least one user is required (users or usersFile)",
        ));
    }
    let realm = if b.realm.is_empty() {
        "traefik"
    } else {
        &b.realm
    };
    let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""));
    if challenge.is_err() || realm.contains('"') {
        errs.push(FieldError::new(
            "basicAuth.realm",
            format!(
                "must be printable text without quotes, got {}",
                quote(realm)
            ),
        ));
    }
    let header_field = if b.header_field.is_empty() {
        None
    } else {
        match HeaderName::from_bytes(b.header_field.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(FieldError::new(
                    "basicAuth.headerField",
                    format!("invalid header name {}", quote(&b.header_field)),
                ));
                None
            }
        }
    };
    match (errs.is_empty(), first, challenge) {
        (true, Some(not_found), Ok(challenge)) => Ok(CompiledBasicAuth {
            users,
            not_found,
            challenge,
            remove_header: b.remove_header.unwrap_or(false),
            header_field,
        }),
        _ => {
            if errs.is_empty() {
                errs.push(FieldError::new("basicAuth.users", "no users found"));
            }
            Err(errs)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth(users: &[&str], file: &str) -> Result<CompiledBasicAuth, FieldErrors> {
        compile(&BasicAuth {
            users: users.iter().map(|s| s.to_string()).collect(),
            users_file: file.into(),
            ..BasicAuth::default()
        })
    }

    // Traefik's basic_auth_test.go hashes.
    #[test]
    fn hashes_verify() {
        let a = auth(
            &[
                "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
                "b:$2a$04$.8sTYfcxbSplCtoxt5TdJOgpBYkarKtZYsYfYxQ1edbYRuO1DNi0e",
                // htpasswd -s: {SHA} of "test"
                "s:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
            ],
            "",
        )
        .unwrap();
        assert!(a.check("test", "test"));
        assert!(!a.check("test", "tesT"));
        assert!(a.check("b", "test"));
        assert!(!a.check("b", "nope"));
        assert!(a.check("s", "test"));
        assert!(!a.check("s", "test2"));
        assert!(!a.check("nobody", "test"));
    }

    #[test]
    fn file_and_overrides() {
        let a = auth(
            &["test2:$apr1$mK.GtItK$ncnLYvNLek0weXdxo68690"],
            "#Comment\ntest:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/\ntest2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0\n",
        )
        .unwrap();
        assert!(a.check("test", "test"));
        assert!(a.check("test2", "overridden"));
        assert!(!a.check("test2", "test2"));
    }

    #[test]
    fn bad_lines_are_refused() {
        let e = auth(&["test"], "").unwrap_err();
        assert_eq!(e[0].field, "basicAuth.users[0]");
        let e = auth(&["test:test"], "").unwrap_err();
        assert!(e[0].message.contains("unsupported password hash"), "{e:?}");
        assert!(auth(&["a:$apr1$xx"], "").is_err());
        assert!(auth(&["a:$2y$04$short"], "").is_err());
        assert!(auth(&[], "").is_err());
        let e = auth(&[], "/etc/htpasswd").unwrap_err();
        assert!(e[0].message.contains("was not uploaded"), "{e:?}");
    }
}

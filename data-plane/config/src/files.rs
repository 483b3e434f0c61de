//! Uploading certificate, key and CA files: [`inline_files`] replaces file paths in the TLS
//! fields of a config by the files' contents, so the config that reaches the cluster (and every
//! proxy) carries inline PEM and no proxy ever depends on its local file system.
//!
//! Fields rewritten: `tls.certificates[].certFile/keyFile`,
//! `tls.stores.*.defaultCertificate.certFile/keyFile`, `tls.options.*.clientAuth.caFiles[]`,
//! `http.serversTransports.*.rootCAs[]` and `.certificates[].certFile/keyFile`, and
//! `certificatesResolvers.*.acme.caCertificates[]`, and `basicAuth.usersFile` / `digestAuth.usersFile` of
//! middlewares (inline content always ends with a newline). A value that already holds PEM
//! ([`crate::acme::is_inline_pem`]) passes through, and so does [`crate::REDACTED_KEY`] (what
//! `get config` prints for a key; the control plane restores it, see
//! [`crate::DynamicConfig::restore_redacted`]); an empty value is left for validation.
//!
//! The function is pure: the caller provides `read` (the CLI and the proxy's `--config-file`
//! read real files, resolving relative paths against the document's directory). A read
//! failure is reported with the resource and field, e.g.
//! `tls.certificates[0].keyFile: cannot read "certs/a.key": No such file or directory`; file
//! contents never appear in errors.
//!
//! `forwardAuth.tls.ca`, `.cert` and `.key` of middlewares are uploaded like certificates.

use crate::acme::is_inline_pem;
use crate::error::{quote, ConfigError, ConfigErrors};
use crate::DynamicConfig;

/// Replace file paths in the TLS fields of `cfg` by what `read(path)` returns. Returns whether
/// anything was replaced.
pub fn inline_files(
    cfg: &mut DynamicConfig,
    mut read: impl FnMut(&str) -> Result<String, String>,
) -> Result<bool, ConfigErrors> {
    let mut errors = Vec::new();
    let mut changed = false;
    let mut one = |v: &mut String, err: &mut dyn FnMut(String) -> ConfigError| {
        if v.trim().is_empty() || is_inline_pem(v) || v == crate::REDACTED_KEY {
            return;
        }
        match read(v) {
            Ok(text) => {
                *v = text;
                changed = true;
            }
            Err(e) => errors.push(err(format!("cannot read {}: {e}", quote(v)))),
        }
    };
    for (i, c) in cfg.tls.certificates.iter_mut().enumerate() {
        one(&mut c.cert_file, &mut |m| {
            ConfigError::at(format!("tls.certificates[{i}].certFile"), m)
        });
        one(&mut c.key_file, &mut |m| {
            ConfigError::at(format!("tls.certificates[{i}].keyFile"), m)
        });
    }
    for name in cfg.tls.stores.keys().cloned().collect::<Vec<_>>() {
        let Some(st) = cfg.tls.stores.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        if let Some(dc) = &mut st.default_certificate {
            one(&mut dc.cert_file, &mut |m| {
                ConfigError::field("tlsStore", name, "defaultCertificate.certFile", m)
            });
            one(&mut dc.key_file, &mut |m| {
                ConfigError::field("tlsStore", name, "defaultCertificate.keyFile", m)
            });
        }
    }
    for name in cfg.tls.options.keys().cloned().collect::<Vec<_>>() {
        let Some(o) = cfg.tls.options.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        if let Some(ca) = &mut o.client_auth {
            for (i, f) in ca.ca_files.iter_mut().enumerate() {
                one(f, &mut |m| {
                    ConfigError::field("tlsOption", name, format!("clientAuth.caFiles[{i}]"), m)
                });
            }
        }
    }
    for name in cfg
        .http
        .servers_transports
        .keys()
        .cloned()
        .collect::<Vec<_>>()
    {
        let Some(t) = cfg.http.servers_transports.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        for (i, f) in t.root_cas.iter_mut().enumerate() {
            one(f, &mut |m| {
                ConfigError::field("serversTransport", name, format!("rootCAs[{i}]"), m)
            });
        }
        for (i, c) in t.certificates.iter_mut().enumerate() {
            one(&mut c.cert_file, &mut |m| {
                ConfigError::field(
                    "serversTransport",
                    name,
                    format!("certificates[{i}].certFile"),
                    m,
                )
            });
            one(&mut c.key_file, &mut |m| {
                ConfigError::field(
                    "serversTransport",
                    name,
                    format!("certificates[{i}].keyFile"),
                    m,
                )
            });
        }
    }
    for name in cfg
        .tcp
        .servers_transports
        .keys()
        .cloned()
        .collect::<Vec<_>>()
    {
        let Some(t) = cfg.tcp.servers_transports.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        let Some(tls) = &mut t.tls else { continue };
        let k = crate::tcp::TRANSPORT;
        for (i, f) in tls.root_cas.iter_mut().enumerate() {
            one(f, &mut |m| {
                ConfigError::field(k, name, format!("tls.rootCAs[{i}]"), m)
            });
        }
        for (i, c) in tls.certificates.iter_mut().enumerate() {
            one(&mut c.cert_file, &mut |m| {
                ConfigError::field(k, name, format!("tls.certificates[{i}].certFile"), m)
            });
            one(&mut c.key_file, &mut |m| {
                ConfigError::field(k, name, format!("tls.certificates[{i}].keyFile"), m)
            });
        }
    }
    for name in cfg
        .certificates_resolvers
        .keys()
        .cloned()
        .collect::<Vec<_>>()
    {
        let Some(r) = cfg.certificates_resolvers.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        if let Some(acme) = &mut r.acme {
            for (i, f) in acme.ca_certificates.iter_mut().enumerate() {
                one(f, &mut |m| {
                    ConfigError::field(
                        "certificatesResolver",
                        name,
                        format!("acme.caCertificates[{i}]"),
                        m,
                    )
                });
            }
        }
    }
    for name in cfg.http.middlewares.keys().cloned().collect::<Vec<_>>() {
        let Some(m) = cfg.http.middlewares.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        if let crate::Middleware::ForwardAuth(f) = m {
            if let Some(tls) = &mut f.tls {
                for (field, v) in [
                    ("forwardAuth.tls.ca", &mut tls.ca),
                    ("forwardAuth.tls.cert", &mut tls.cert),
                    ("forwardAuth.tls.key", &mut tls.key),
                ] {
                    one(v, &mut |m| ConfigError::field("middleware", name, field, m));
                }
            }
        }
    }
    // basicAuth users files: inline content always ends with a newline, a path never does.
    for name in cfg.http.middlewares.keys().cloned().collect::<Vec<_>>() {
        let Some(m) = cfg.http.middlewares.get_mut(&name) else {
            continue;
        };
        let name = name.as_str();
        let (field, v) = match m {
            crate::Middleware::BasicAuth(b) => ("basicAuth.usersFile", &mut b.users_file),
            crate::Middleware::DigestAuth(d) => ("digestAuth.usersFile", &mut d.users_file),
            _ => continue,
        };
        {
            if v.trim().is_empty() || v.contains('\n') || v == crate::REDACTED_KEY {
                continue;
            }
            match read(v) {
                Ok(mut text) => {
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    *v = text;
                    changed = true;
                }
                Err(e) => errors.push(ConfigError::field(
                    "middleware",
                    name,
                    field,
                    format!("cannot read {}: {e}", quote(v)),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(changed)
    } else {
        errors.sort();
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn paths_are_replaced_and_pem_passes_through() {
        let mut cfg = crate::parse_document(&format!(
            r#"
certificatesResolvers:
  le: {{acme: {{caCertificates: [acme-ca.pem]}}}}
http:
  serversTransports:
    t: {{rootCAs: [ca.pem, {PEM:?}], certificates: [{{certFile: c.pem, keyFile: c.key}}]}}
tls:
  certificates: [{{certFile: a.pem, keyFile: a.key}}, {{certFile: {PEM:?}, keyFile: {PEM:?}}}]
  stores: {{default: {{defaultCertificate: {{certFile: d.pem, keyFile: d.key}}}}}}
  options: {{o: {{clientAuth: {{caFiles: [client-ca.pem]}}}}}}
"#
        ))
        .unwrap();
        let mut seen = Vec::new();
        let changed = inline_files(&mut cfg, |p| {
            seen.push(p.to_string());
            Ok(format!("-----BEGIN X-----\n{p}\n"))
        })
        .unwrap();
        assert!(changed);
        seen.sort();
        assert_eq!(
            seen,
            [
                "a.key",
                "a.pem",
                "acme-ca.pem",
                "c.key",
                "c.pem",
                "ca.pem",
                "client-ca.pem",
                "d.key",
                "d.pem"
            ]
        );
        assert_eq!(
            cfg.tls.certificates[0].key_file,
            "-----BEGIN X-----\na.key\n"
        );
        assert_eq!(cfg.tls.certificates[1].cert_file, PEM);
        assert_eq!(cfg.http.servers_transports["t"].root_cas[1], PEM);
        // Nothing left to replace.
        assert!(!inline_files(&mut cfg, |_| panic!("no read expected")).unwrap());
    }

    #[test]
    fn read_errors_name_resource_and_field() {
        let mut cfg = crate::parse_document(
            "http:\n  serversTransports:\n    t: {rootCAs: [missing.pem]}\ntls:\n  certificates: [{certFile: a.pem, keyFile: a.key}]\n",
        )
        .unwrap();
        let e = inline_files(&mut cfg, |p| {
            if p == "a.pem" {
                Ok(PEM.into())
            } else {
                Err("No such file or directory".into())
            }
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(r#"serversTransport "t": rootCAs[0]: cannot read "missing.pem": No such file or directory"#),
            "{e}"
        );
        assert!(
            e.contains(r#"tls.certificates[0].keyFile: cannot read "a.key""#),
            "{e}"
        );
    }

    #[test]
    fn displayed_config_applies_back_with_its_keys() {
        let key = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
        let cur = crate::parse_document(&format!(
            "http:\n  serversTransports:\n    t: {{certificates: [{{certFile: {PEM:?}, keyFile: {key:?}}}]}}\ntls:\n  certificates: [{{certFile: {PEM:?}, keyFile: {key:?}}}]\n  stores: {{default: {{defaultCertificate: {{certFile: {PEM:?}, keyFile: {key:?}}}}}}}\n"
        ))
        .unwrap();
        let shown = cur.for_display();
        assert!(!format!("{shown:?}").contains("secret"));
        let mut doc = shown.clone();
        assert!(!inline_files(&mut doc, |_| panic!("no read expected")).unwrap());
        assert_eq!(cur.merged(&doc), cur);
        assert_eq!(cur.replaced_by(&doc), cur);
    }
}

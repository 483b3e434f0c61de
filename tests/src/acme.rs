//! # ACME: pebble as the CA, pebble-challtestsrv as its DNS, and TLS clients
//!
//! * [`Pebble`] starts `pebble` and `pebble-challtestsrv` on ephemeral ports in their own
//!   temporary directory. Pebble serves its ACME API over TLS with a certificate made here by a
//!   test CA ([`Pebble::api_ca_pem`], what a resolver's `caCertificates` trusts); its DNS is
//!   challtestsrv, which answers every A query with `default_ipv4`, so the test decides which
//!   proxy the CA reaches. challtestsrv's own challenge listeners are disabled.
//!   [`Pebble::issued`] counts "Issued certificate" lines of pebble's log; [`Pebble::roots_pem`]
//!   is the root pebble issues under (`/roots/0`, regenerated per process).
//! * [`TlsConn`]: a blocking TLS client (rustls) that verifies the server against given roots,
//!   reports the served certificate and speaks HTTP/1.1 keep-alive.
//! * [`certs`]: `switchyard get certs -o json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use switchyard_acme::certinfo::{parse_der, CertInfo};
use tempfile::TempDir;

use crate::{append_log, cli, free_port, wait_until, CliError, START_TIMEOUT};

/// How to start pebble.
#[derive(Debug, Clone)]
pub struct PebbleOpts {
    /// `PEBBLE_VA_ALWAYS_VALID=1`: pebble does not validate challenges.
    pub always_valid: bool,
    /// Port pebble connects to for HTTP-01.
    pub http_port: u16,
    /// Port pebble connects to for TLS-ALPN-01.
    pub tls_port: u16,
    /// What challtestsrv answers for every A query (which proxy the CA reaches).
    pub default_ipv4: String,
}

/// A running pebble + challtestsrv pair.
pub struct Pebble {
    /// ACME directory URL.
    pub directory: String,
    /// Management address (`/roots/0`).
    pub management: String,
    /// challtestsrv's DNS server (`127.0.0.1:port`): pebble's resolver, a resolver for DNS-01
    /// propagation checks.
    pub dns: String,
    /// challtestsrv's management API (`/set-txt`, `/clear-txt`).
    pub chall_management: String,
    api_ca_pem: String,
    dir: Option<TempDir>,
    dir_path: PathBuf,
    pebble: Option<Child>,
    chall: Option<Child>,
}

fn spawn(bin: &str, args: &[String], env: &[(&str, &str)], log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    append_log(
        log,
        &format!("===== harness: {bin} {} =====", args.join(" ")),
    );
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().expect("log handle")))
        .stderr(Stdio::from(file));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap_or_else(|e| {
        panic!("spawning {bin}: {e} (install it with `apt-get install -y pebble`)")
    })
}

/// A test CA and a server certificate it signed for `localhost` / `127.0.0.1`.
fn api_certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "switchyard e2e pebble API CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

impl Pebble {
    pub fn start(opts: PebbleOpts) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-e2e-pebble-")
            .tempdir()
            .expect("temp dir for pebble");
        let dir_path = dir.path().to_path_buf();
        let (ca_pem, cert_pem, key_pem) = api_certificates();
        std::fs::write(dir_path.join("cert.pem"), &cert_pem).expect("write cert");
        std::fs::write(dir_path.join("key.pem"), &key_pem).expect("write key");
        let listen = format!("127.0.0.1:{}", free_port());
        let management = format!("127.0.0.1:{}", free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen,
                "managementListenAddress": management,
                "certificate": dir_path.join("cert.pem"),
                "privateKey": dir_path.join("key.pem"),
                "httpPort": opts.http_port,
                "tlsPort": opts.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir_path.join("pebble.json"), config.to_string()).expect("config");
        let dns = format!("127.0.0.1:{}", free_port());
        let chall_mgmt = format!("127.0.0.1:{}", free_port());
        let log = dir_path.join("challtestsrv.log");
        let chall = spawn(
            "pebble-challtestsrv",
            &[
                "-defaultIPv4".into(),
                opts.default_ipv4.clone(),
                "-defaultIPv6".into(),
                "".into(),
                "-dns01".into(),
                dns.clone(),
                "-http01".into(),
                "".into(),
                "-https01".into(),
                "".into(),
                "-tlsalpn01".into(),
                "".into(),
                "-management".into(),
                chall_mgmt.clone(),
            ],
            &[],
            &log,
        );
        let mut env = vec![("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")];
        if opts.always_valid {
            env.push(("PEBBLE_VA_ALWAYS_VALID", "1"));
        }
        let pebble = spawn(
            "pebble",
            &[
                "-config".into(),
                dir_path.join("pebble.json").display().to_string(),
                "-dnsserver".into(),
                dns.clone(),
            ],
            &env,
            &dir_path.join("pebble.log"),
        );
        let p = Pebble {
            directory: format!("https://{listen}/dir"),
            management,
            dns,
            chall_management: chall_mgmt.clone(),
            api_ca_pem: ca_pem,
            dir: Some(dir),
            dir_path,
            pebble: Some(pebble),
            chall: Some(chall),
        };
        for addr in [&listen, &p.management, &chall_mgmt] {
            wait_until(
                START_TIMEOUT,
                &format!("pebble listening on {addr}"),
                || TcpStream::connect(addr.as_str()),
            );
        }
        p
    }

    /// The CA that signed pebble's API certificate (PEM): a resolver's `caCertificates`.
    pub fn api_ca_pem(&self) -> &str {
        &self.api_ca_pem
    }

    /// The root pebble issues under (PEM).
    pub fn roots_pem(&self) -> String {
        let mut c = TlsConn::connect(&self.management, "127.0.0.1", &self.api_ca_pem, &[])
            .unwrap_or_else(|e| panic!("pebble management: {e}"));
        let (status, body) = c
            .get("127.0.0.1", "/roots/0")
            .unwrap_or_else(|e| panic!("pebble /roots/0: {e}"));
        assert_eq!(status, 200, "pebble /roots/0: {body}");
        body
    }

    /// pebble's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir_path.join("pebble.log")).unwrap_or_default()
    }

    /// How many certificates pebble issued.
    pub fn issued(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [self.pebble.take(), self.chall.take()]
            .into_iter()
            .flatten()
        {
            crate::kill_child(c);
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(40);
            eprintln!(
                "----- pebble log -----\n{}\n-----",
                lines[from..].join("\n")
            );
            if let Some(d) = self.dir.take() {
                eprintln!("pebble files kept in {}", d.keep().display());
            }
        }
    }
}

/// A loopback port free on every one of `ips` (e.g. 127.0.0.2 and 127.0.0.3), so that several
/// proxies can listen on the same port at different addresses.
pub fn port_free_on(ips: &[&str]) -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}")
}

/// A blocking TLS connection speaking HTTP/1.1 with keep-alive.
pub struct TlsConn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    reader_buf: Vec<u8>,
}

fn roots(pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots
            .add(der.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

impl TlsConn {
    /// Connects to `addr` with SNI `sni`, verifying against `roots_pem`, offering `alpn`.
    pub fn connect(
        addr: &str,
        sni: &str,
        roots_pem: &str,
        alpn: &[&str],
    ) -> Result<TlsConn, String> {
        Self::connect_offering(addr, sni, roots_pem, alpn, None)
    }

    /// [`TlsConn::connect`] offering only `schemes` as signature algorithms (all of rustls'
    /// when `None`), e.g. only RSA ones, as an old client would.
    pub fn connect_offering(
        addr: &str,
        sni: &str,
        roots_pem: &str,
        alpn: &[&str],
        schemes: Option<&[rustls::SignatureScheme]>,
    ) -> Result<TlsConn, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let roots = Arc::new(roots(roots_pem)?);
        let mut cfg = match schemes {
            None => builder.with_root_certificates(roots).with_no_client_auth(),
            Some(s) => {
                let inner =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| e.to_string())?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(OfferOnly {
                        inner,
                        schemes: s.to_vec(),
                    }))
                    .with_no_client_auth()
            }
        };
        cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake with {addr} ({sni}): {e}"))?;
        }
        Ok(TlsConn {
            stream,
            reader_buf: Vec::new(),
        })
    }

    /// The certificate the server presented (leaf).
    pub fn peer(&self) -> Result<CertInfo, String> {
        let certs = self
            .stream
            .conn
            .peer_certificates()
            .ok_or("no peer certificate")?;
        parse_der(certs.first().ok_or("empty chain")?).map_err(|e| e.to_string())
    }

    fn read_more(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 8192];
        let n = self.stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.reader_buf.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// `GET path` with `Host: host` on this connection; returns status and body.
    pub fn get(&mut self, host: &str, path: &str) -> Result<(u16, String), String> {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchyard-e2e\r\n\r\n");
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        self.stream.flush().map_err(|e| e.to_string())?;
        let head_end = loop {
            if let Some(i) = find(&self.reader_buf, b"\r\n\r\n") {
                break i;
            }
            self.read_more()?;
        };
        let head = String::from_utf8_lossy(&self.reader_buf[..head_end]).to_string();
        self.reader_buf.drain(..head_end + 4);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head}"))?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let body = if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok())
        {
            while self.reader_buf.len() < len {
                self.read_more()?;
            }
            self.reader_buf.drain(..len).collect::<Vec<u8>>()
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.reader_buf, b"\r\n") {
                        break i;
                    }
                    self.read_more()?;
                };
                let size_line = String::from_utf8_lossy(&self.reader_buf[..line_end]).to_string();
                self.reader_buf.drain(..line_end + 2);
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|e| format!("chunk size {size_line:?}: {e}"))?;
                while self.reader_buf.len() < size + 2 {
                    self.read_more()?;
                }
                body.extend(self.reader_buf.drain(..size));
                self.reader_buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            Vec::new()
        };
        Ok((status, String::from_utf8_lossy(&body).to_string()))
    }
}

/// A webpki verifier that offers only some signature schemes in the ClientHello.
#[derive(Debug)]
struct OfferOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    schemes: Vec<rustls::SignatureScheme>,
}

impl rustls::client::danger::ServerCertVerifier for OfferOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One HTTPS GET on a fresh connection: status, body and the served certificate.
pub fn https_get(
    addr: &str,
    host: &str,
    roots_pem: &str,
    path: &str,
) -> Result<(u16, String, CertInfo), String> {
    let mut c = TlsConn::connect(addr, host, roots_pem, &["http/1.1"])?;
    let peer = c.peer()?;
    let (status, body) = c.get(host, path)?;
    Ok((status, body, peer))
}

/// `switchyard get certs -o json` through `endpoints`: the `certificates` array.
pub fn certs(endpoints: &str) -> Result<Vec<Value>, CliError> {
    let out = cli(endpoints, &["-o", "json", "get", "certs"]);
    if !out.success() {
        return Err(CliError(format!("get certs failed: {}", out.stderr.trim())));
    }
    Ok(out.json()["certificates"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The `get certs` row named `name`.
pub fn cert(endpoints: &str, name: &str) -> Result<Value, String> {
    let all = certs(endpoints).map_err(|e| e.to_string())?;
    all.into_iter()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("certificate {name} not listed"))
}

/// Lines of a text file (for logs).
pub fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::File::open(path) {
        Ok(f) => BufReader::new(f).lines().map_while(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// A lego `httpreq` endpoint in front of challtestsrv: `POST /present {"fqdn","value"}` becomes
/// challtestsrv's `POST /set-txt {"host","value"}`, `/cleanup` becomes `/clear-txt`. Checks HTTP
/// basic authentication when given credentials, and counts the calls it forwarded.
pub struct HttpReqHook {
    addr: String,
    presents: Arc<std::sync::atomic::AtomicUsize>,
    cleanups: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

fn read_http_request(s: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    Some((path, head, body))
}

/// `POST path` with a JSON body over plain HTTP; the status.
pub fn post_json(addr: &str, path: &str, body: &Value) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let b = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer from {addr}: {out}"))
}

impl HttpReqHook {
    /// Listens on `127.0.0.1:<ephemeral>`, forwarding to challtestsrv at `chall_management`.
    pub fn start(chall_management: &str, basic_auth: Option<(&str, &str)>) -> HttpReqHook {
        use base64::Engine;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the httpreq hook");
        let addr = listener.local_addr().expect("addr").to_string();
        let presents = Arc::new(AtomicUsize::new(0));
        let cleanups = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let want_auth = basic_auth.map(|(u, p)| {
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let chall = chall_management.to_string();
        let (p, c, st) = (presents.clone(), cleanups.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let Some((path, head, body)) = read_http_request(&mut conn) else {
                    continue;
                };
                let authorized = want_auth.as_ref().is_none_or(|want| {
                    head.lines().any(|l| {
                        l.split_once(':').is_some_and(|(k, v)| {
                            k.trim().eq_ignore_ascii_case("authorization")
                                && v.trim().eq_ignore_ascii_case(want)
                        })
                    })
                });
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let host = req["fqdn"].as_str().unwrap_or("").to_string();
                let status = if !authorized {
                    401
                } else if host.is_empty() {
                    400
                } else if path == "/present" {
                    let value = req["value"].clone();
                    match post_json(
                        &chall,
                        "/set-txt",
                        &serde_json::json!({"host": host, "value": value}),
                    ) {
                        Ok(200) => {
                            p.fetch_add(1, Ordering::SeqCst);
                            200
                        }
                        _ => 502,
                    }
                } else if path == "/cleanup" {
                    match post_json(&chall, "/clear-txt", &serde_json::json!({"host": host})) {
                        Ok(200) => {
                            c.fetch_add(1, Ordering::SeqCst);
                            200
                        }
                        _ => 502,
                    }
                } else {
                    404
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        HttpReqHook {
            addr,
            presents,
            cleanups,
            stop,
        }
    }

    /// `http://127.0.0.1:port`: the provider's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Records published so far.
    pub fn presents(&self) -> usize {
        self.presents.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records removed so far.
    pub fn cleanups(&self) -> usize {
        self.cleanups.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HttpReqHook {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

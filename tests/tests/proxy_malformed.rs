//! Issue 8, "make the probing permanent": malformed traffic against a running
//! `switchyard-proxy`. Every case must end in the right status or a closed connection, the
//! proxy must serve normal requests throughout (a load loop runs beside every test and must see
//! no failure), and the backend must never see a request smuggled behind a malformed one.
//!
//! * HTTP/1.1: garbage, invalid methods, versions and header syntax (obs-fold, bare CR, NUL,
//!   space before the colon), missing or repeated `Host`, smuggling shapes (`Content-Length`
//!   with `Transfer-Encoding` in both orders, differing `Content-Length`s, unknown or
//!   non-final transfer codings, bad chunking), oversized URIs and heads, `Upgrade: h2c`.
//!   Each is sent with a second request right behind it in the same write (`/smuggled-…`).
//! * HTTP/2 (the `h2` crate as a client, and raw frames): rapid reset, a `CONTINUATION`
//!   flood, a header-count flood, an invalid HPACK block, a bad preface.
//! * Slow clients: a reader that never reads a large response is cut off at
//!   `--write-timeout`, a trickled head at `--read-timeout`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use switchyard_e2e::backends::{block_on, HttpBackend};
use switchyard_e2e::client::{fetch, LoadLoop, Req};
use switchyard_e2e::raw::{
    config_file_proxy, error_hits, limit_hits, open_fds, sockets_on_port, RawConn,
};
use switchyard_e2e::{wait_until, Proxy};

/// Upper bound for what should happen promptly, on a loaded machine.
const LATE: Duration = Duration::from_secs(15);

fn doc(backend: &HttpBackend) -> String {
    format!(
        r#"http:
  routers:
    app: {{rule: "PathPrefix(`/`)", service: app}}
  services:
    app:
      loadBalancer:
        servers: [{{url: "{}"}}]
"#,
        backend.url()
    )
}

/// A proxy with small limits, its backend (recording), and a load loop of normal requests.
fn stack(id: &str, args: &[&str]) -> (HttpBackend, Proxy, LoadLoop) {
    let b = HttpBackend::start("b");
    b.record(true);
    let p = config_file_proxy(id, &doc(&b), &["web"], args);
    let load = LoadLoop::start(
        &format!("{id}-normal"),
        p.web(),
        Req::get("app.test", "/normal"),
        Duration::from_millis(20),
    );
    load.wait_for_more(3, LATE);
    (b, p, load)
}

/// Lets the load loop complete a few more requests (after the attacks), stops it; every
/// normal request must have succeeded.
fn no_failures(load: LoadLoop) {
    load.wait_for_more(3, LATE);
    let (samples, _) = load.stop();
    let failed = samples.iter().filter(|s| s.outcome.is_err()).count();
    assert_eq!(
        failed,
        0,
        "normal requests failed: {}",
        LoadLoop::summary(&samples)
    );
    println!("normal requests beside the attacks: {} ok", samples.len());
}

/// What a malformed HTTP/1 case must end in.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// This status, then the connection is closed.
    Refused(u16),
    /// One of these statuses, then closed.
    RefusedAny(&'static [u16]),
    /// Served (this status) and the connection closed after it (nothing else read from it).
    ServedThenClosed(u16),
    /// A legitimate request after all: served, and the request behind it is a legitimate
    /// pipelined request (served too).
    Pipelined,
}

/// The request sent right behind each case (it closes the connection when it is served).
const SMUGGLED: &str = "GET /smuggled-{} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

fn cases() -> Vec<(&'static str, Vec<u8>, Want)> {
    let h = "Host: app.test\r\n";
    let mut v: Vec<(&'static str, Vec<u8>, Want)> = vec![
        ("garbage", b"\x00\x01\x02\x03 junk junk\r\n\r\n".to_vec(), Want::Refused(400)),
        ("text", b"hello proxy\r\n\r\n".to_vec(), Want::Refused(400)),
        ("bad-method", format!("G(T / HTTP/1.1\r\n{h}\r\n").into_bytes(), Want::Refused(400)),
        ("bad-version", format!("GET / HTTP/1.2\r\n{h}\r\n").into_bytes(), Want::Refused(400)),
        ("http3-version", format!("GET / HTTP/3.0\r\n{h}\r\n").into_bytes(), Want::Refused(400)),
        ("bad-protocol", format!("GET / FOO/1.1\r\n{h}\r\n").into_bytes(), Want::Refused(400)),
        ("http09", b"GET /\r\n\r\n".to_vec(), Want::RefusedAny(&[400])),
        ("no-host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n".to_vec(), Want::Refused(400)),
        (
            "two-hosts",
            format!("GET / HTTP/1.1\r\n{h}Host: other.test\r\n\r\n").into_bytes(),
            Want::Refused(400),
        ),
        ("obs-fold", format!("GET / HTTP/1.1\r\n{h}X-Fold: a\r\n b\r\n\r\n").into_bytes(), Want::Refused(400)),
        ("bare-cr", format!("GET / HTTP/1.1\r\n{h}X-Cr: a\rb\r\n\r\n").into_bytes(), Want::Refused(400)),
        ("nul", format!("GET / HTTP/1.1\r\n{h}X-Nul: a\0b\r\n\r\n").into_bytes(), Want::Refused(400)),
        ("space-before-colon", b"GET / HTTP/1.1\r\nHost : app.test\r\n\r\n".to_vec(), Want::Refused(400)),
        ("no-colon", format!("GET / HTTP/1.1\r\n{h}NoColonHere\r\n\r\n").into_bytes(), Want::Refused(400)),
        (
            "cl-te",
            format!("POST /cl-te HTTP/1.1\r\n{h}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            Want::ServedThenClosed(200),
        ),
        (
            "te-cl",
            format!("POST /te-cl HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n").into_bytes(),
            Want::ServedThenClosed(200),
        ),
        (
            "double-cl",
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc").into_bytes(),
            Want::Refused(400),
        ),
        (
            "cl-list",
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 3, 40\r\n\r\nabc").into_bytes(),
            Want::Refused(400),
        ),
        ("cl-sign", format!("POST / HTTP/1.1\r\n{h}Content-Length: +3\r\n\r\nabc").into_bytes(), Want::Refused(400)),
        ("cl-negative", format!("POST / HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\n").into_bytes(), Want::Refused(400)),
        (
            "cl-overflow",
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 99999999999999999999999\r\n\r\n").into_bytes(),
            Want::Refused(400),
        ),
        (
            "te-gzip",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: gzip\r\n\r\nabc").into_bytes(),
            Want::Refused(400),
        ),
        (
            "te-chunked-not-last",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n").into_bytes(),
            Want::Refused(400),
        ),
        (
            "te-xchunked",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n").into_bytes(),
            Want::Refused(400),
        ),
        (
            "te-http10",
            format!("POST / HTTP/1.0\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            Want::Refused(400),
        ),
        (
            "chunk-size-garbage",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n").into_bytes(),
            Want::RefusedAny(&[400]),
        ),
        (
            "chunk-size-overflow",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n").into_bytes(),
            Want::RefusedAny(&[400]),
        ),
        (
            "chunk-no-crlf",
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n").into_bytes(),
            Want::RefusedAny(&[400]),
        ),
        (
            "uri-too-long",
            format!("GET /{} HTTP/1.1\r\n{h}\r\n", "u".repeat(70_000)).into_bytes(),
            Want::RefusedAny(&[414, 431]),
        ),
        (
            "head-too-large",
            format!("GET / HTTP/1.1\r\n{h}X-Big: {}\r\n\r\n", "b".repeat(100_000)).into_bytes(),
            Want::Refused(431),
        ),
        (
            "connect",
            b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n".to_vec(),
            Want::Refused(501),
        ),
        (
            "bare-lf",
            b"GET /bare-lf HTTP/1.1\nHost: app.test\n\n".to_vec(),
            Want::Pipelined,
        ),
        (
            "same-cl-twice",
            format!("POST /same-cl HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc").into_bytes(),
            Want::Pipelined,
        ),
    ];
    let mut many = format!("GET / HTTP/1.1\r\n{h}");
    for i in 0..500 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    v.push(("too-many-headers", many.into_bytes(), Want::Refused(431)));
    v
}

#[test]
fn malformed_http1_requests_are_refused_and_nothing_is_smuggled() {
    let (b, p, load) = stack("malformed-h1", &["--max-header-bytes", "32768"]);
    let started = Instant::now();
    let mut failures = Vec::new();
    for (name, bytes, want) in cases() {
        let mut c = RawConn::connect(p.web()).unwrap();
        let mut all = bytes.clone();
        all.extend_from_slice(SMUGGLED.replace("{}", name).as_bytes());
        let _ = c.send(&all);
        let out = c.read_until_closed(LATE);
        let text = out.text();
        let responses = text.matches("HTTP/1.1 ").count();
        let ok = match want {
            Want::Refused(code) => out.status() == Some(code) && out.closed && responses == 1,
            Want::RefusedAny(codes) => {
                out.status().is_some_and(|s| codes.contains(&s)) && out.closed && responses == 1
            }
            Want::ServedThenClosed(code) => {
                out.status() == Some(code) && out.closed && responses == 1
            }
            Want::Pipelined => {
                // Served, and the request behind it too (which closes the connection).
                out.status() == Some(200) && responses == 2 && out.closed
            }
        };
        if !ok {
            failures.push(format!("{name}: want {want:?}, got {out}"));
        } else {
            println!(
                "{name:<22} -> {:?} closed={} ({} response)",
                out.status(),
                out.closed,
                responses
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The backend never saw a request that rode behind a refused or ambiguous one.
    let pipelined_ok = ["bare-lf", "same-cl-twice"];
    let seen = b.seen();
    for s in &seen {
        if let Some(name) = s.path_and_query.strip_prefix("/smuggled-") {
            assert!(
                pipelined_ok.contains(&name),
                "the backend saw a smuggled request: {} (after {name})",
                s.path_and_query
            );
        }
    }
    // CL+TE: the backend got the chunked (empty) body, without Content-Length.
    for path in ["/cl-te", "/te-cl"] {
        let s = seen
            .iter()
            .find(|s| s.path_and_query == path)
            .unwrap_or_else(|| panic!("backend did not see {path}"));
        assert_eq!(s.body_len, 0, "{path}: {s:?}");
        assert!(
            s.header("content-length").is_none_or(|v| v == "0"),
            "{path}: {s:?}"
        );
    }
    let m = p.metrics().unwrap();
    assert!(error_hits(&m, "bad_request") >= 3.0, "{m}");
    println!(
        "{} malformed HTTP/1.1 cases in {:.2?}",
        cases().len(),
        started.elapsed()
    );
    no_failures(load);
}

#[test]
fn h2c_upgrade_is_not_forwarded() {
    let (b, p, load) = stack("malformed-h2c", &[]);
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n").unwrap();
    let out = c.read_head(LATE);
    assert_eq!(out.status(), Some(200), "{out}");
    let s = b
        .seen()
        .into_iter()
        .find(|s| s.path_and_query == "/h2c")
        .unwrap();
    assert_eq!(s.header("upgrade"), None, "{s:?}");
    assert_eq!(s.header("http2-settings"), None, "{s:?}");
    no_failures(load);
}

/// Writes HTTP/2 frames.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// An HPACK "literal header field without indexing, new name".
fn literal(name: &str, value: &str) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127);
    let mut v = vec![0x00, name.len() as u8];
    v.extend_from_slice(name.as_bytes());
    v.push(value.len() as u8);
    v.extend_from_slice(value.as_bytes());
    v
}

/// The request pseudo-headers of `GET http://app.test/path` (HPACK, no Huffman).
fn pseudo(path: &str) -> Vec<u8> {
    let mut v = vec![0x82, 0x86]; // :method GET, :scheme http
    v.extend(literal(":path", path));
    v.extend(literal(":authority", "app.test"));
    v
}

#[test]
fn http2_floods_and_garbage_end_in_a_closed_connection() {
    let (b, p, load) = stack("malformed-h2", &[]);
    let pid = p.pid().unwrap();
    let port: u16 = p.web().rsplit(':').next().unwrap().parse().unwrap();
    let baseline = open_fds(pid).unwrap();
    let sockets = sockets_on_port(pid, port).unwrap();

    // CONTINUATION flood: a header block that never ends.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(PREFACE).unwrap();
    c.send(&frame(SETTINGS, 0, 0, &[])).unwrap();
    c.send(&frame(HEADERS, END_STREAM, 1, &pseudo("/flood")))
        .unwrap();
    let mut block = Vec::new();
    while block.len() < 16_000 {
        block.extend(literal("x-flood", &"f".repeat(100)));
    }
    let cont = frame(CONTINUATION, 0, 1, &block);
    let mut sent = 0usize;
    let t = Instant::now();
    while sent < 64 << 20 && t.elapsed() < LATE {
        if c.stream.write_all(&cont).is_err() {
            break;
        }
        sent += cont.len();
    }
    let out = c.read_until_closed(LATE);
    assert!(
        out.closed,
        "CONTINUATION flood: still open after {} bytes: {out}",
        sent
    );
    println!(
        "CONTINUATION flood: closed after {} KiB sent ({:.2?})",
        sent / 1024,
        t.elapsed()
    );
    assert!(sent < 64 << 20, "the proxy read 64 MiB of one header block");

    // An invalid HPACK block: a connection error.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(PREFACE).unwrap();
    c.send(&frame(SETTINGS, 0, 0, &[])).unwrap();
    c.send(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &[0xff; 64]))
        .unwrap();
    let out = c.read_until_closed(LATE);
    assert!(out.closed, "invalid HPACK: {out}");

    // A bad preface.
    let mut c = RawConn::connect(p.web()).unwrap();
    let _ = c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\ngarbage");
    let out = c.read_until_closed(LATE);
    assert!(out.closed, "bad preface: {out}");

    // A frame on stream 0 that must not be there, and one larger than the max frame size.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(PREFACE).unwrap();
    c.send(&frame(SETTINGS, 0, 0, &[])).unwrap();
    let _ = c.send(&frame(HEADERS, END_HEADERS, 0, &pseudo("/zero")));
    let out = c.read_until_closed(LATE);
    assert!(out.closed, "HEADERS on stream 0: {out}");
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(PREFACE).unwrap();
    let _ = c.send(&frame(HEADERS, END_HEADERS, 1, &vec![0u8; 70_000]));
    let out = c.read_until_closed(LATE);
    assert!(out.closed, "oversized frame: {out}");

    // Header count flood in one block: 431 on the stream, the connection goes on.
    let (flood, after) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.web()).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut b = http::Request::get("http://app.test/many");
        for i in 0..5000 {
            b = b.header(format!("x-{i}"), "v");
        }
        let mut send = send.ready().await.unwrap();
        let (resp, _) = send.send_request(b.body(()).unwrap(), true).unwrap();
        let flood = resp
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        let mut send = send.ready().await.unwrap();
        let req = http::Request::get("http://app.test/after")
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let after = resp
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        (flood, after)
    });
    assert_eq!(flood, Ok(431));
    assert_eq!(after, Ok(200));

    // Rapid reset: open and immediately cancel streams, as fast as possible.
    const N: usize = 5000;
    let reset_seen = || {
        b.seen()
            .iter()
            .filter(|s| s.path_and_query.starts_with("/reset-"))
            .count()
    };
    assert_eq!(reset_seen(), 0);
    let (opened, closed_by, took) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.web()).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        let t = Instant::now();
        let mut opened = 0usize;
        let mut send = Some(send);
        for i in 0..N {
            let Some(s) = send.take() else { break };
            let Ok(mut s) = s.ready().await else { break };
            let req = http::Request::post(format!("http://app.test/reset-{i}"))
                .body(())
                .unwrap();
            match s.send_request(req, false) {
                Ok((_resp, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    opened += 1;
                }
                Err(_) => break,
            }
            send = Some(s);
        }
        drop(send);
        let r = tokio::time::timeout(LATE, conn).await;
        let closed_by = match r {
            Ok(Ok(Ok(()))) => "closed".to_string(),
            Ok(Ok(Err(e))) => format!("{:?} ({e})", e.reason()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "still open".to_string(),
        };
        (opened, closed_by, t.elapsed())
    });
    println!(
        "rapid reset: {opened} streams opened and reset in {took:.2?} ({} complete requests reached the backend); connection: {closed_by}",
        reset_seen()
    );
    // The proxy ended the connection (GOAWAY ENHANCE_YOUR_CALM; the client sees that reason or
    // the reset that follows it) long before N streams, and counted it.
    assert!(
        closed_by != "closed" && closed_by != "still open",
        "rapid reset: connection {closed_by}"
    );
    assert!(
        opened < N,
        "{opened} streams reset without the proxy objecting"
    );
    // Counted when the connection has ended, which the client may see first.
    wait_until(LATE, "the rapid reset counted", || {
        let m = p.metrics()?;
        if limit_hits(&m, "web", "h2_resets") >= 1.0 {
            Ok(())
        } else {
            Err("h2_resets 0".to_string())
        }
    });
    // The proxy is fine: normal requests on new connections, descriptors back to the baseline.
    fetch(p.web(), &Req::get("app.test", "/after-attacks")).unwrap();
    // (Pooled backend connections of concurrent normal requests may add to the total.)
    wait_until(
        LATE,
        "the attack connections gone from the entry point",
        || {
            let n = sockets_on_port(pid, port)?;
            if n <= sockets {
                Ok(())
            } else {
                Err(format!("{n} sockets, baseline {sockets}"))
            }
        },
    );
    wait_until(LATE, "the proxy's fds back to the baseline", || {
        let n = open_fds(pid)?;
        if n <= baseline + 2 {
            Ok(())
        } else {
            Err(format!("{n} open, baseline {baseline}"))
        }
    });
    no_failures(load);
}

#[test]
fn slow_clients_are_cut_off() {
    let (_b, p, load) = stack(
        "malformed-slow",
        &["--read-timeout", "1s", "--write-timeout", "2s"],
    );
    // A reader that never reads a 64 MiB response.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"GET /download/67108864 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let _ = c.stream.set_read_timeout(Some(LATE));
    let t = Instant::now();
    // Do not read: wait until the proxy gives up on the connection (its peer resets or closes).
    let closed = wait_until(LATE, "the proxy closes the non-reading client", || {
        let mut info = [0u8; 1];
        match c.stream.peek(&mut info) {
            Ok(0) => Ok(t.elapsed()),
            Ok(_) | Err(_) => {
                // Still data pending (ours to not read); check the proxy's side instead.
                let m = p.metrics().map_err(|e| e.to_string())?;
                if limit_hits(&m, "web", "write_timeout") >= 1.0 {
                    Ok(t.elapsed())
                } else {
                    Err("still open".to_string())
                }
            }
        }
    });
    assert!(closed >= Duration::from_millis(1800), "{closed:?}");
    println!("non-reading client cut off after {closed:.2?} (writeTimeout 2s)");
    // A client sending its head one byte at a time.
    let mut c = RawConn::connect(p.web()).unwrap();
    let head = b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut out = None;
    for byte in head.iter() {
        if c.send(&[*byte]).is_err() {
            break;
        }
        let o = c.read_while(Duration::from_millis(150), |b| b.is_empty());
        if o.closed || !o.bytes.is_empty() {
            out = Some(o);
            break;
        }
    }
    let out = out.unwrap_or_else(|| c.read_until_closed(LATE));
    assert!(out.closed && out.status().is_none(), "slow head: {out}");
    no_failures(load);
}

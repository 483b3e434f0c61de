//! Issue 8, must-show 2: entry point limits through the real `switchyard-proxy` binary.
//!
//! * A client trickling a request body is cut off at `--read-timeout` with 408 and a closed
//!   connection; one trickling its request head is closed without an answer.
//! * An idle keep-alive connection (HTTP/1.1 and HTTP/2) is closed at `--idle-timeout`.
//! * 200 trickling connections are all closed, and the proxy's open file descriptors return to
//!   their baseline, while normal requests keep being served.
//! * `--max-header-bytes` / `--max-headers` answer 431 (HTTP/1.1 and HTTP/2),
//!   `--max-connections` closes connections over the limit, `--write-timeout` closes a
//!   response that takes too long; each hit is counted in
//!   `switchyard_proxy_entrypoint_limit_hits_total{entrypoint,limit}`.
//! * `--request-accept-grace-timeout`: after SIGTERM, `/readyz` answers 503 while requests are
//!   still served.
//!
//! Timeouts are small (1–2 s) so the suite is quick; assertions bound every closing time from
//! below (not before the limit) and from above (a generous deadline for a loaded machine).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use switchyard_e2e::backends::{block_on, HttpBackend, Mode};
use switchyard_e2e::client::{fetch, H2Client, LoadLoop, Req};
use switchyard_e2e::raw::{config_file_proxy, limit_hits, open_fds, sockets_on_port, RawConn};
use switchyard_e2e::{wait_until, Proxy};

/// Upper bound for anything that should happen "at" a 1–2 s timeout on a loaded machine.
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

fn ok(p: &Proxy, ep: &str) -> Result<(), String> {
    let r = fetch(p.entry(ep), &Req::get("app.test", "/ok"))?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("{r}"))
    }
}

fn hits(p: &Proxy, ep: &str, limit: &str) -> f64 {
    limit_hits(&p.metrics().unwrap(), ep, limit)
}

#[test]
fn slow_request_bodies_and_heads_are_cut_off_at_read_timeout() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "read",
        &doc(&b),
        &["web"],
        &["--read-timeout", "1s", "--idle-timeout", "30s"],
    );
    ok(&p, "web").unwrap();

    // A body trickled one byte every 200 ms: 408, then the connection is closed.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000\r\n\r\nstart")
        .unwrap();
    let out = loop {
        if c.send(b"x").is_err() {
            break c.read_until_closed(LATE);
        }
        let o = c.read_while(Duration::from_millis(200), |b| b.is_empty());
        if !o.bytes.is_empty() || o.closed {
            let rest = c.read_until_closed(LATE);
            break switchyard_e2e::raw::Outcome {
                bytes: [o.bytes, rest.bytes].concat(),
                closed: o.closed || rest.closed,
                elapsed: rest.elapsed,
            };
        }
        assert!(c.started.elapsed() < LATE, "still open after {LATE:?}");
    };
    assert_eq!(out.status(), Some(408), "trickled body: {out}");
    assert!(out.closed, "trickled body: connection not closed: {out}");
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "cut off before readTimeout: {out}"
    );
    println!("trickled body: 408 and closed after {:.2?}", out.elapsed);

    // A head trickled one byte every 200 ms: closed without an answer.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")
        .unwrap();
    let out = loop {
        if c.send(b"a").is_err() {
            break c.read_until_closed(LATE);
        }
        let o = c.read_while(Duration::from_millis(200), |b| b.is_empty());
        if !o.bytes.is_empty() || o.closed {
            break o;
        }
        assert!(c.started.elapsed() < LATE, "still open after {LATE:?}");
    };
    assert!(out.closed, "trickled head: {out}");
    assert_eq!(out.status(), None, "trickled head got an answer: {out}");
    assert!(out.elapsed >= Duration::from_millis(900), "{out}");
    println!("trickled head: closed after {:.2?}", out.elapsed);

    // HTTP/2: a stream whose body stops arriving gets 408; the connection goes on.
    let (status, took, after) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.web()).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let req = http::Request::post("http://app.test/h2-upload")
            .body(())
            .unwrap();
        let t = Instant::now();
        let (resp, mut body) = send.send_request(req, false).unwrap();
        body.send_data(bytes::Bytes::from_static(b"partial"), false)
            .unwrap();
        let status = tokio::time::timeout(LATE, resp)
            .await
            .expect("no answer to a stalled HTTP/2 body")
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        let took = t.elapsed();
        let mut send = send.ready().await.unwrap();
        let req = http::Request::get("http://app.test/h2-after")
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let after = resp
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        drop(body);
        (status, took, after)
    });
    assert_eq!(status, Ok(408), "stalled HTTP/2 body");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(after, Ok(200));
    println!("stalled HTTP/2 body: 408 after {took:.2?}, the connection goes on");

    let m = p.metrics().unwrap();
    assert!(limit_hits(&m, "web", "read_timeout") >= 3.0, "{m}");
    // A request that takes its time but finishes within readTimeout is fine.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the client's pace, not synchronisation
    c.send(b"cd").unwrap();
    let out = c.read_head(LATE);
    assert_eq!(out.status(), Some(200), "{out}");
    ok(&p, "web").unwrap();
}

#[test]
fn idle_keep_alive_connections_are_closed_at_idle_timeout() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "idle",
        &doc(&b),
        &["web"],
        &["--read-timeout", "10s", "--idle-timeout", "2s"],
    );
    // HTTP/1.1: one request, then silence.
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let head = c.read_head(LATE);
    assert_eq!(head.status(), Some(200), "{head}");
    let answered = Instant::now();
    let out = c.read_until_closed(LATE);
    let idle = answered.elapsed();
    assert!(out.closed, "idle HTTP/1.1 connection not closed: {out}");
    assert!(
        idle >= Duration::from_millis(1800),
        "closed too early: {idle:?}"
    );
    assert!(
        idle < Duration::from_secs(8),
        "closed by something else than idleTimeout: {idle:?}"
    );
    println!("HTTP/1.1 idle connection closed {idle:.2?} after its response");

    // HTTP/2: one stream, then silence: GOAWAY and close.
    let (closed_after, status) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.web()).await.unwrap();
        let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        let req = http::Request::get("http://app.test/h2").body(()).unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while body.data().await.is_some() {}
        let t = Instant::now();
        let r = tokio::time::timeout(LATE, conn).await;
        assert!(r.is_ok(), "HTTP/2 connection still open after {LATE:?}");
        (t.elapsed(), status)
    });
    assert_eq!(status, 200);
    assert!(
        closed_after >= Duration::from_millis(1800),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(8), "{closed_after:?}");
    println!("HTTP/2 idle connection closed {closed_after:.2?} after its stream");
    assert!(hits(&p, "web", "idle_timeout") >= 2.0);
}

#[test]
fn two_hundred_trickling_connections_are_closed_and_fds_return_to_baseline() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "fds",
        &doc(&b),
        &["web"],
        &["--read-timeout", "2s", "--idle-timeout", "30s"],
    );
    let pid = p.pid().unwrap();
    ok(&p, "web").unwrap();
    // Normal requests throughout (one keep-alive connection, counted in the baseline).
    let load = LoadLoop::start(
        "fds-normal",
        p.web(),
        Req::get("app.test", "/normal"),
        Duration::from_millis(20),
    );
    load.wait_for_more(3, LATE);
    let port: u16 = p.web().rsplit(':').next().unwrap().parse().unwrap();
    let baseline = open_fds(pid).unwrap();
    let sockets = sockets_on_port(pid, port).unwrap();
    let addr = p.web().to_string();
    let started = Instant::now();
    const N: usize = 200;
    let results = block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let addr = addr.clone();
            tasks.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(&addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                // Half trickle a body, half a head.
                let head: &[u8] = if i % 2 == 0 {
                    b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n"
                } else {
                    b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: "
                };
                s.write_all(head).await.map_err(|e| e.to_string())?;
                let mut buf = [0u8; 4096];
                loop {
                    if t.elapsed() > LATE {
                        return Err(format!("connection {i} still open after {LATE:?}"));
                    }
                    if s.write_all(b"z").await.is_err() {
                        return Ok(t.elapsed());
                    }
                    match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
                        Err(_) => {}
                        Ok(Ok(0)) | Ok(Err(_)) => return Ok(t.elapsed()),
                        Ok(Ok(_)) => {} // the 408; the close follows
                    }
                }
            });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    // While they trickled, and after, normal requests work.
    ok(&p, "web").unwrap();
    let closed: Vec<Duration> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(closed.len(), N);
    let max = closed.iter().max().copied().unwrap_or_default();
    let min = closed.iter().min().copied().unwrap_or_default();
    assert!(
        min >= Duration::from_millis(1800),
        "closed before readTimeout: {min:?}"
    );
    println!(
        "{N} trickling connections closed by the proxy {min:.2?}..{max:.2?} after connecting (readTimeout 2s); all done {:.2?} after the first connect",
        started.elapsed()
    );
    // Every client connection of the flood is gone from the entry point (its listener and
    // the load loop's connection remain), and the process holds no more descriptors than
    // before, but for pooled backend connections opened by concurrent normal requests.
    let after = wait_until(
        LATE,
        &format!("the entry point's sockets back to the baseline {sockets}"),
        || {
            let n = sockets_on_port(pid, port)?;
            if n <= sockets {
                Ok(n)
            } else {
                Err(format!("{n} sockets"))
            }
        },
    );
    let fds = wait_until(
        LATE,
        &format!("the proxy's open fds back to the baseline {baseline} (+2 pooled)"),
        || {
            let n = open_fds(pid)?;
            if n <= baseline + 2 {
                Ok(n)
            } else {
                Err(format!("{n} open"))
            }
        },
    );
    println!("entry point sockets: baseline {sockets}, after {after}");
    println!("open fds: baseline {baseline}, after {fds}");
    assert!(hits(&p, "web", "read_timeout") >= N as f64);
    ok(&p, "web").unwrap();
    let (samples, _) = load.stop();
    let failed = samples.iter().filter(|s| s.outcome.is_err()).count();
    assert_eq!(failed, 0, "{}", LoadLoop::summary(&samples));
    println!("normal requests during the flood: {} ok", samples.len());
}

#[test]
fn header_limits_answer_431_and_are_counted() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "headers",
        &doc(&b),
        &["web"],
        &[
            "--max-header-bytes",
            "16384",
            "--max-headers",
            "40",
            "--max-concurrent-streams",
            "web=7",
        ],
    );
    let addr = p.web().to_string();
    // Within the limits.
    let mut r = Req::get("app.test", "/fine");
    for i in 0..30 {
        r = r.header(&format!("x-h{i}"), "v");
    }
    let r = r.header("x-big", &"a".repeat(8000));
    assert_eq!(fetch(&addr, &r).unwrap().status, 200);
    // HTTP/1.1: too many fields, too many bytes.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut c = RawConn::connect(&addr).unwrap();
    c.send(many.as_bytes()).unwrap();
    let out = c.read_until_closed(LATE);
    assert_eq!(out.status(), Some(431), "60 fields: {out}");
    assert!(out.closed, "{out}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let mut c = RawConn::connect(&addr).unwrap();
    let _ = c.send(big.as_bytes());
    let out = c.read_until_closed(LATE);
    assert_eq!(out.status(), Some(431), "40 kB field: {out}");
    // hyper answers these itself; the proxy counts them when the connection ends, which the
    // client may see (FIN) a moment earlier.
    wait_until(LATE, "HTTP/1.1 431s counted by limit", || {
        let m = p.metrics()?;
        let (n, b) = (
            limit_hits(&m, "web", "headers"),
            limit_hits(&m, "web", "header_bytes"),
        );
        if n == 1.0 && b == 1.0 {
            Ok(())
        } else {
            Err(format!("headers {n}, header_bytes {b}"))
        }
    });

    // HTTP/2: the same limits, 431 on the stream; the connection goes on.
    let (a, bb, fine) = block_on(async {
        let c = H2Client::connect(&addr).await.unwrap();
        let mut r = Req::get("app.test", "/many");
        for i in 0..60 {
            r = r.header(&format!("x-h{i}"), "v");
        }
        let a = c.send(&r).await.unwrap().status;
        let r = Req::get("app.test", "/big").header("x-big", &"c".repeat(20_000));
        let bb = c.send(&r).await.unwrap().status;
        let fine = c.send(&Req::get("app.test", "/fine")).await.unwrap().status;
        (a, bb, fine)
    });
    assert_eq!((a, bb, fine), (431, 431, 200));
    let m = p.metrics().unwrap();
    assert_eq!(limit_hits(&m, "web", "headers"), 2.0, "{m}");
    assert_eq!(limit_hits(&m, "web", "header_bytes"), 2.0, "{m}");
    // --max-concurrent-streams reaches the client in SETTINGS.
    let streams = block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        // The server's SETTINGS have arrived once a response has.
        let req = http::Request::get("http://app.test/settings")
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        resp.await.unwrap();
        send.current_max_send_streams()
    });
    assert_eq!(streams, 7);
    assert!(b.hits() >= 2, "the backend saw the requests within limits");
}

#[test]
fn connections_over_max_connections_are_closed() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "conns",
        &doc(&b),
        &["web", "capped"],
        &["--max-connections", "capped=5"],
    );
    let capped = p.entry("capped").to_string();
    // Five keep-alive connections, each answered.
    let mut held: Vec<RawConn> = (0..5)
        .map(|_| {
            let mut c = RawConn::connect(&capped).unwrap();
            c.send(b"GET /k HTTP/1.1\r\nHost: app.test\r\n\r\n")
                .unwrap();
            let out = c.read_head(LATE);
            assert_eq!(out.status(), Some(200), "{out}");
            c
        })
        .collect();
    // The sixth is closed at once, without an answer.
    let mut c = RawConn::connect(&capped).unwrap();
    let _ = c.send(b"GET /k HTTP/1.1\r\nHost: app.test\r\n\r\n");
    let out = c.read_until_closed(LATE);
    assert!(
        out.closed && out.status().is_none(),
        "sixth connection: {out}"
    );
    assert!(hits(&p, "capped", "connections") >= 1.0);
    // Other entry points are not limited.
    let others: Vec<RawConn> = (0..8).map(|_| RawConn::connect(p.web()).unwrap()).collect();
    ok(&p, "web").unwrap();
    drop(others);
    // A slot frees when a connection closes.
    drop(held.pop());
    wait_until(LATE, "a new connection is served once one closed", || {
        let mut c = RawConn::connect(&capped).map_err(|e| e.to_string())?;
        c.send(b"GET /k HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")?;
        let out = c.read_head(Duration::from_secs(2));
        match out.status() {
            Some(200) => Ok(()),
            _ => Err(format!("{out}")),
        }
    });
}

#[test]
fn write_timeout_closes_a_response_that_takes_too_long() {
    let slow = HttpBackend::start("slow");
    slow.set_mode(Mode::Hang);
    let p = config_file_proxy(
        "write",
        &doc(&slow),
        &["web"],
        &["--write-timeout", "web=1s"],
    );
    let mut c = RawConn::connect(p.web()).unwrap();
    c.send(b"GET /hang HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let out = c.read_until_closed(LATE);
    assert!(out.closed && out.status().is_none(), "{out}");
    assert!(out.elapsed >= Duration::from_millis(900), "{out}");
    println!(
        "writeTimeout 1s: connection closed after {:.2?}",
        out.elapsed
    );
    assert_eq!(hits(&p, "web", "write_timeout"), 1.0);
    // HTTP/2: the stream is reset, the connection goes on.
    let (reset, took, closed) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.web()).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let t = Instant::now();
        let req = http::Request::get("http://app.test/hang").body(()).unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let reset = tokio::time::timeout(LATE, resp)
            .await
            .expect("no end to a hanging HTTP/2 stream")
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{:?}", e.reason()));
        let took = t.elapsed();
        (reset, took, conn.is_finished())
    });
    assert!(reset.is_err(), "HTTP/2 stream answered: {reset:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(!closed, "the HTTP/2 connection was closed, not the stream");
    println!("writeTimeout 1s: HTTP/2 stream reset after {took:.2?} ({reset:?})");
    assert_eq!(hits(&p, "web", "write_timeout"), 2.0);
}

#[test]
fn request_accept_grace_keeps_serving_while_readyz_says_503() {
    let b = HttpBackend::start("b");
    let p = config_file_proxy(
        "grace",
        &doc(&b),
        &["web"],
        &[
            "--request-accept-grace-timeout",
            "3s",
            "--drain-timeout",
            "1s",
        ],
    );
    let pid = p.pid().unwrap();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(LATE, "/readyz 503 after SIGTERM", || match p.readyz() {
        Ok((503, _)) => Ok(()),
        other => Err(format!("{other:?}")),
    });
    // Still accepting and serving during requestAcceptGraceTimeout.
    ok(&p, "web").unwrap();
    // Then it stops.
    wait_until(LATE, "the proxy gone after its grace periods", || {
        p.http("/healthz").is_err()
    });
}

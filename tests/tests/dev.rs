//! README's first command, `switchyard dev`, as a user runs it: a control node, a proxy and a demo
//! backend come up, and the sample route serves traffic through the proxy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use switchyard_e2e::{free_addr, switchyard_bin};

/// GET `path` from 127.0.0.1:`port` with the given Host header; returns the raw response.
fn get(port: u16, host: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn dev_serves_the_sample_route_through_a_real_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (api, peer, http, proxy, padmin, backend) = (
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
    );
    let mut child = Command::new(switchyard_bin())
        .args([
            "dev",
            "--data-dir",
            &dir.path().display().to_string(),
            "--api-addr",
            &api,
            "--peer-addr",
            &peer,
            "--http-addr",
            &http,
            "--proxy-addr",
            &proxy,
            "--proxy-admin-addr",
            &padmin,
            "--backend-addr",
            &backend,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard dev");
    // Read what dev prints until it says it is running (or exits).
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line.contains("Press Ctrl-C");
                printed.push(line);
                if done {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "dev did not come up ({e}); it printed:\n{}",
                    printed.join("\n")
                );
            }
        }
    }
    let text = printed.join("\n");
    let port: u16 = proxy
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("proxy port");
    assert!(
        text.contains(&format!("http://localhost:{port}/")),
        "dev should print the proxy URL:\n{text}"
    );

    // The sample config is on the proxy before dev says it is running.
    let hello = get(port, "localhost", "/hello");
    let api_users = get(port, "localhost", "/api/users");
    let other = get(port, "other.example", "/");
    let _ = child.kill();
    let _ = child.wait();

    assert!(hello.starts_with("HTTP/1.1 200"), "GET /hello:\n{hello}");
    assert!(
        hello
            .to_ascii_lowercase()
            .contains("x-served-by: switchyard"),
        "the demo router's headers middleware:\n{hello}"
    );
    assert!(hello.contains("\"path\": \"/hello\""), "{hello}");
    assert!(api_users.starts_with("HTTP/1.1 200"), "{api_users}");
    assert!(
        api_users.contains("\"path\": \"/users\""),
        "the demo-api router strips /api:\n{api_users}"
    );
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}

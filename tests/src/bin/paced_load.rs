//! A paced (open-loop) HTTP/1.1 keep-alive load generator for `scripts/bench-proxy.sh`'s
//! "p99 at 50% of nginx's max rate" row and `scripts/bench-observability.sh`'s paced rows (wrk2
//! is not in Debian; wrk has no `-R`).
//!
//! `paced_load ADDR RATE SECONDS [CONNS] [HOST]`: `CONNS` connections (default 32), each
//! sending `GET /` on its own fixed schedule so that all together send `RATE` requests per
//! second. Latency is measured from the time a request was *due* when the connection fell
//! behind its schedule (a slow answer delays the next request: coordinated omission is counted,
//! as wrk2 does), and from the time it was sent otherwise. Responses must carry
//! `Content-Length` (all targets of the benchmarks do). Prints one line:
//! `sent=N rps=R p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=… errors=E`.
//!
//! All connections are tasks on one current-thread tokio runtime (one epoll loop), like wrk2's
//! single event loop. The benchmarks pin this tool to the core that also runs the backend, so
//! its own cost per request decides whether it can hold the rate at all: the earlier design, a
//! blocking thread per connection sleeping until each request was due, cost ~23 µs of CPU per
//! request (two context switches each, mostly kernel time) and fell behind at ~30k req/s, which
//! made every target's p99 read as hundreds of milliseconds. Timers have tokio's 1 ms
//! resolution (wrk2's are milliseconds too): a connection whose next request is due within the
//! current millisecond sends it on the tick, and its latency counts from the send.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paced_load: runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("paced_load: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: paced_load ADDR RATE SECONDS [CONNS] [HOST]".into());
    }
    let addr = args[1].clone();
    let rate: f64 = args[2].parse().map_err(|e| format!("RATE: {e}"))?;
    let secs: f64 = args[3].parse().map_err(|e| format!("SECONDS: {e}"))?;
    let conns: usize = match args.get(4) {
        Some(c) => c.parse().map_err(|e| format!("CONNS: {e}"))?,
        None => 32,
    };
    let host = args.get(5).cloned().unwrap_or_else(|| addr.clone());
    if rate <= 0.0 || secs <= 0.0 || conns == 0 {
        return Err("RATE, SECONDS and CONNS must be positive".into());
    }
    let request: std::sync::Arc<[u8]> =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: paced_load\r\n\r\n")
            .into_bytes()
            .into();
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let addr = addr.clone();
        let request = request.clone();
        // Spread the connections' schedules evenly over one interval.
        let first = start + interval.mul_f64(i as f64 / conns as f64);
        tasks.spawn(async move { one_connection(&addr, &request, first, interval, end).await });
    }
    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0u64;
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.map_err(|_| "a connection task panicked")?;
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    println!(
        "sent={} rps={:.0} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} errors={}",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        lat.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
        errors
    );
    Ok(())
}

/// Latencies in µs of one connection's requests, and its errors.
async fn one_connection(
    addr: &str,
    request: &[u8],
    first: Instant,
    interval: Duration,
    end: Instant,
) -> (Vec<u32>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut conn: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut due = first;
    while due < end {
        let now = Instant::now();
        let started = if now < due {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            // Behind schedule: the wait since `due` counts.
            due
        };
        if conn.is_none() {
            conn = TcpStream::connect(addr).await.ok().inspect(|s| {
                let _ = s.set_nodelay(true);
            });
        }
        let ok = match conn.as_mut() {
            Some(s) => exchange(s, request, &mut buf).await.is_ok(),
            None => false,
        };
        if ok {
            let us = started.elapsed().as_micros();
            lat.push(u32::try_from(us).unwrap_or(u32::MAX));
        } else {
            errors += 1;
            conn = None;
        }
        due += interval;
    }
    (lat, errors)
}

/// Send one request and read its response (head + `Content-Length` body).
async fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> Result<(), String> {
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut have = 0;
    loop {
        if have == buf.len() {
            return Err("response head too large".into());
        }
        let n = s.read(&mut buf[have..]).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        have += n;
        let Some(head_end) = find(&buf[..have], b"\r\n\r\n") else {
            continue;
        };
        let head = &buf[..head_end];
        if !head.starts_with(b"HTTP/1.1 2") {
            return Err("non-2xx response".into());
        }
        let len = content_length(head).ok_or("response without Content-Length")?;
        let mut body = have - (head_end + 4);
        while body < len {
            let n = s.read(buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed in the body".into());
            }
            body += n;
        }
        return Ok(());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?.trim_end();
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

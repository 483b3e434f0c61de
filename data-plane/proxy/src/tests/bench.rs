//! A rough throughput probe (ignored; run with
//! `cargo test --release -p switchyard-proxy throughput -- --ignored --nocapture`). Load
//! generator, proxy and backend share the machine, so only the ratio is meaningful.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::*;

async fn load(addr: std::net::SocketAddr, conns: usize, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get("/")
                    .header("host", "bench.test")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let r = tx.send_request(req).await.unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn throughput() {
    let ok: Handler = Arc::new(|_req| Box::pin(async { Response::new(full("ok")) }));
    let b = Backend::start(ok).await;
    let (p, addr) = start_proxy().await;
    apply(
        &p,
        &format!(
            "http: {{routers: {{r: {{rule: \"Host(`bench.test`)\", service: s}}}}, services: {{s: {{loadBalancer: {{servers: [{{url: \"{}\"}}]}}}}}}}}",
            b.url()
        ),
    );
    let direct = load(b.addr, 32, 3).await;
    let proxied = load(addr, 32, 3).await;
    eprintln!(
        "direct {direct:.0} req/s, through the proxy {proxied:.0} req/s ({:.0}%)",
        100.0 * proxied / direct
    );
    p.shutdown().await;
}

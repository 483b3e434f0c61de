//! Issue 9, cluster-wide in-flight limits: `inFlightReq` with `scope: cluster` holds `amount`
//! for the requests in progress at all proxies together (each proxy reports what it wants and
//! holds to its control node and admits the whole slots it gets back; the error bound is one
//! request per proxy, ARCHITECTURE.md "Cluster-wide rate limits"), `scope: proxy` (Traefik's)
//! counts each proxy on its own, and without the control plane each proxy keeps its slots.
//!
//! Three proxies on one control node, a backend that holds every request 300 ms and counts
//! how many it holds at once, and seven concurrent clients per proxy (a client refused with
//! 429 tries again 20 ms later); `amount: 6`, all requests on one host (the default source).

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_e2e::backends::runtime;
use switchyard_e2e::proxy::{apply_to, Proxy, ProxySpec, PROXY_SETTLE};
use switchyard_e2e::{reserve_port, wait_until, Cluster};

const AMOUNT: u64 = 6;
const PROXIES: usize = 3;
const CLIENTS_PER_PROXY: usize = 7;
const HOLD: Duration = Duration::from_millis(300);

/// Requests the slow backend holds now, and the most it held at once since the last reset.
#[derive(Default)]
struct Held {
    now: AtomicU64,
    max: AtomicU64,
    served: AtomicU64,
}

impl Held {
    /// The most held at once since the previous call (and start again).
    fn take_max(&self) -> u64 {
        self.max
            .swap(self.now.load(Ordering::SeqCst), Ordering::SeqCst)
    }
}

/// A backend answering 200 after holding each request for [`HOLD`].
fn slow_backend(held: Arc<Held>) -> String {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    reserve_port(addr.port());
    runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let held = held.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let held = held.clone();
                    async move {
                        let n = held.now.fetch_add(1, Ordering::SeqCst) + 1;
                        held.max.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(HOLD).await;
                        held.now.fetch_sub(1, Ordering::SeqCst);
                        held.served.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Per proxy: (answered 200, refused with 429, other outcomes).
type Counts = Vec<(u64, u64, u64)>;

/// [`CLIENTS_PER_PROXY`] keep-alive clients per proxy address for `dur`, on `host`; each
/// sends its next request when the previous one is answered (20 ms later after a 429).
fn load(addrs: &[String], host: &str, dur: Duration) -> Counts {
    let end = tokio::time::Instant::now() + dur;
    let tasks: Vec<Vec<_>> = addrs
        .iter()
        .map(|addr| {
            (0..CLIENTS_PER_PROXY)
                .map(|_| {
                    let (addr, host) = (addr.clone(), host.to_string());
                    runtime().spawn(async move {
                        let mut counts = (0u64, 0u64, 0u64);
                        let mut conn = None;
                        while tokio::time::Instant::now() < end {
                            if conn.is_none() {
                                let Ok(tcp) = tokio::net::TcpStream::connect(&addr).await else {
                                    counts.2 += 1;
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    continue;
                                };
                                let Ok((send, c)) =
                                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
                                else {
                                    counts.2 += 1;
                                    continue;
                                };
                                tokio::spawn(c);
                                conn = Some(send);
                            }
                            let Some(send) = conn.as_mut() else { continue };
                            let req = Request::get("/")
                                .header("host", &host)
                                .body(Empty::<Bytes>::new())
                                .unwrap();
                            let res = tokio::time::timeout(Duration::from_secs(10), async {
                                let r = send.send_request(req).await?;
                                let status = r.status().as_u16();
                                r.into_body().collect().await?;
                                Ok::<u16, hyper::Error>(status)
                            })
                            .await;
                            match res {
                                Ok(Ok(200)) => counts.0 += 1,
                                Ok(Ok(429)) => {
                                    counts.1 += 1;
                                    // A refused client comes back a little later (the
                                    // client's pacing, not a synchronisation).
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                _ => {
                                    counts.2 += 1;
                                    conn = None;
                                }
                            }
                        }
                        counts
                    })
                })
                .collect()
        })
        .collect();
    tasks
        .into_iter()
        .map(|per_proxy| {
            per_proxy
                .into_iter()
                .map(|t| runtime().block_on(t).unwrap())
                .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2))
        })
        .collect()
}

#[test]
fn cluster_scope_holds_amount_across_proxies_and_without_the_control_plane() {
    let started = Instant::now();
    let mut c = Cluster::start(1);
    let held = Arc::new(Held::default());
    let backend = slow_backend(held.clone());
    let proxies: Vec<Proxy> = (1..=PROXIES)
        .map(|i| Proxy::start(ProxySpec::new(&format!("p{i}"), &c.endpoints())))
        .collect();
    let doc = format!(
        r#"http:
  routers:
    cl: {{rule: "Host(`cluster.test`)", service: svc, middlewares: [cl]}}
    pp: {{rule: "Host(`proxy.test`)", service: svc, middlewares: [pp]}}
  middlewares:
    cl: {{inFlightReq: {{amount: {AMOUNT}, scope: cluster}}}}
    pp: {{inFlightReq: {{amount: {AMOUNT}, scope: proxy}}}}
  services:
    svc: {{loadBalancer: {{servers: [{{url: "{backend}"}}]}}}}
"#
    );
    let v = apply_to(&c.endpoints(), &proxies[0], &doc);
    for p in &proxies {
        p.wait_version(v, PROXY_SETTLE);
    }
    let addrs: Vec<String> = proxies.iter().map(|p| p.web().to_string()).collect();
    let bound = AMOUNT + PROXIES as u64;

    // Cluster scope: warm-up (the first answers replace proxy-scope counting, the slots
    // converge), then the measured window.
    let warm = load(&addrs, "cluster.test", Duration::from_secs(2));
    let warm_max = held.take_max();
    eprintln!("scope cluster, warm-up: at most {warm_max} held at once, per proxy {warm:?}");
    let cl = load(&addrs, "cluster.test", Duration::from_secs(4));
    let cl_max = held.take_max();
    eprintln!("scope cluster: at most {cl_max} held at once, per proxy {cl:?}");
    assert!(
        cl_max <= bound,
        "cluster scope: {cl_max} requests in progress at once, over {AMOUNT} + one per proxy: {cl:?}"
    );
    assert!(
        cl_max >= AMOUNT - 1,
        "cluster scope: at most {cl_max} at once, expected ~{AMOUNT}: {cl:?}"
    );
    for (i, p) in cl.iter().enumerate() {
        assert!(p.0 > 0, "proxy {i} served nothing: {cl:?}");
        assert!(p.1 > 0, "proxy {i} refused nothing: {cl:?}");
    }

    // Proxy scope (Traefik's): each proxy admits 6 on its own.
    let pp = load(&addrs, "proxy.test", Duration::from_secs(3));
    let pp_max = held.take_max();
    eprintln!("scope proxy: at most {pp_max} held at once, per proxy {pp:?}");
    assert!(
        pp_max > bound && pp_max <= AMOUNT * PROXIES as u64,
        "proxy scope: {pp_max} at once, expected ~{}: {pp:?}",
        AMOUNT * PROXIES as u64
    );

    // The control plane goes away while the source is busy (an idle source's slots go back
    // to the others at the next report, so the kill comes in the middle of a run): each
    // proxy keeps its slots, limits and serves.
    let run = {
        let addrs = addrs.clone();
        std::thread::spawn(move || load(&addrs, "cluster.test", Duration::from_secs(7)))
    };
    let before = held.served.load(Ordering::SeqCst);
    wait_until(
        Duration::from_secs(30),
        "40 requests served before the kill",
        || held.served.load(Ordering::SeqCst) >= before + 40,
    );
    c.nodes[0].kill();
    held.take_max();
    let at_kill = held.served.load(Ordering::SeqCst);
    let gone = run.join().unwrap();
    let gone_max = held.take_max();
    let gone_served = held.served.load(Ordering::SeqCst) - at_kill;
    eprintln!(
        "control plane killed: at most {gone_max} held at once after the kill, {gone_served} served after it; whole run per proxy {gone:?}"
    );
    assert!(
        gone_max <= bound && gone_max >= AMOUNT - 1,
        "without the control plane: {gone_max} at once, expected ~{AMOUNT} and at most {bound}: {gone:?}"
    );
    assert!(gone_served > 0, "nothing served after the kill: {gone:?}");
    for (i, p) in gone.iter().enumerate() {
        assert!(p.0 > 0 && p.1 > 0, "proxy {i}: {gone:?}");
    }
    eprintln!(
        "backend served {}; suite took {:.1?}",
        held.served.load(Ordering::SeqCst),
        started.elapsed()
    );
}

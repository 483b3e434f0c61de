//! TCP relays between Raft peers, so a test can cut and heal links between control nodes.
//!
//! Why relays and not iptables: the suite must run unprivileged (CI, a developer's laptop) and
//! must not touch the host's firewall shared with other processes. Each node listens on its real
//! `--peer-addr`, and advertises (`--advertise-peer-addr`, `--initial-cluster`) a relay port
//! instead, so every Raft RPC, snapshot and forwarded admin call from node A to node B travels
//! through B's relay.
//!
//! A relay must know which node opened a connection to cut a *directed* link (A→B while B→A
//! stays up): all peers connect from `127.0.0.1`, so the relay looks the connection's source
//! port up in `/proc/net/tcp` and finds the node process holding that socket in
//! `/proc/PID/fd` (of the pids registered with [`Relays::set_pid`], else of the processes whose
//! command line has `--node-id N`) before it forwards a byte, on one thread of its own
//! ([`super::identify`]: why). That is Linux-only, like the rest of the suite's process handling.
//!
//! The multi-region lab also delays links ([`Relays::set_rtt`]); [`Relays::report`] shows
//! per directed link the bytes moved, how late the relay wrote them and how much was queued,
//! and how late the relays' runtime woke a timer (a stalled relay looks like a partition).
//!
//! A cut link behaves like a firewall dropping packets: established connections stop moving
//! bytes (RPCs on them time out), and new connections are accepted but never forwarded. When
//! the link heals, the stalled connections are closed and the nodes reconnect.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::identify::{Identifier, Source};

/// The shared link state every relay connection watches.
struct Links {
    /// Cut directed links `(from, to)`.
    blocked: Mutex<HashSet<(u64, u64)>>,
    /// Bumped on every change of `blocked`.
    changed: watch::Sender<u64>,
    /// Process id → node id.
    pids: Arc<Mutex<HashMap<u32, u64>>>,
    /// Finds the node behind each new connection.
    identifier: Identifier,
    /// Live connections whose source node could not be identified (closed unforwarded).
    unknown_sources: AtomicU64,
    /// Connections accepted.
    accepted: AtomicU64,
    /// One-way delays of directed links `(from, to)` (the multi-region lab); none: no delay.
    delays: Mutex<HashMap<(u64, u64), Duration>>,
    /// Traffic of the delayed directed links `(from, to)`.
    traffic: Mutex<HashMap<(u64, u64), LinkStats>>,
    /// The longest a 10 ms timer of the relays' runtime fired late (its starvation).
    max_tick_lag_us: AtomicU64,
    /// When that timer last fired (microseconds since `epoch`).
    last_tick_us: AtomicU64,
    epoch: std::time::Instant,
}

/// What went over one delayed directed link, and how late.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes forwarded.
    pub bytes: u64,
    /// Reads forwarded (each written `delay` after it was read).
    pub chunks: u64,
    /// The latest a chunk was written after its due time (the relay's own added delay).
    pub max_lag: Duration,
    /// Bytes read and not yet written now.
    pub queued: u64,
    /// The most bytes ever queued at once.
    pub max_queued: u64,
    /// When a chunk was last read (since the relays started).
    pub last_read: Duration,
    /// When a chunk was last written (since the relays started).
    pub last_write: Duration,
}

impl Links {
    fn delay(&self, from: u64, to: u64) -> Duration {
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    fn is_blocked(&self, from: Option<u64>, to: u64) -> bool {
        let Some(from) = from else { return false };
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(from, to))
    }

    /// Waits until the link's state is `blocked` (`from()`: the source node, once known).
    async fn wait_for(&self, from: &impl Fn() -> Option<u64>, to: u64, blocked: bool) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.is_blocked(from(), to) == blocked {
                return;
            }
            if rx.changed().await.is_err() {
                // The relays are shutting down: never resolve.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One relay per node, on a runtime of their own (so a busy workload cannot starve it), with
/// connections identified on a thread of their own.
pub struct Relays {
    rt: Runtime,
    links: Arc<Links>,
    /// Node id → (relay address the others use, the node's real peer address).
    addrs: HashMap<u64, (String, String)>,
}

impl Relays {
    /// Starts a relay for each `(node id, real peer address)` on a fresh loopback port.
    pub fn start(targets: &[(u64, String)]) -> Relays {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("chaos-relay")
            .build()
            .expect("building the relay runtime");
        let (changed, _) = watch::channel(0);
        let pids = Arc::new(Mutex::new(HashMap::new()));
        let links = Arc::new(Links {
            blocked: Mutex::new(HashSet::new()),
            changed,
            pids: Arc::clone(&pids),
            identifier: Identifier::start(pids),
            unknown_sources: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            delays: Mutex::new(HashMap::new()),
            traffic: Mutex::new(HashMap::new()),
            max_tick_lag_us: AtomicU64::new(0),
            last_tick_us: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        });
        rt.spawn(tick_probe(Arc::clone(&links)));
        let mut addrs = HashMap::new();
        for (node, target) in targets {
            let listener = rt
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .expect("binding a relay port");
            let local = listener.local_addr().expect("relay address");
            crate::reserve_port(local.port());
            addrs.insert(*node, (local.to_string(), target.clone()));
            rt.spawn(accept_loop(
                listener,
                *node,
                target.clone(),
                Arc::clone(&links),
            ));
        }
        Relays { rt, links, addrs }
    }

    /// The address the other nodes use to reach `node` (its relay).
    pub fn addr(&self, node: u64) -> String {
        self.addrs[&node].0.clone()
    }

    /// Delays every byte between `a` and `b` by half of `rtt` in each direction (connections
    /// opened from now on): a userspace stand-in for an inter-region link (`tc netem` needs a
    /// kernel module this machine does not have). Order is kept; throughput is not limited.
    pub fn set_rtt(&self, a: u64, b: u64, rtt: Duration) {
        let mut d = self.links.delays.lock().unwrap_or_else(|p| p.into_inner());
        d.insert((a, b), rtt / 2);
        d.insert((b, a), rtt / 2);
    }

    /// Records that process `pid` is node `node` (after every start of a node).
    pub fn set_pid(&self, pid: u32, node: u64) {
        let mut pids = self.links.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.retain(|_, n| *n != node);
        pids.insert(pid, node);
    }

    fn update(&self, f: impl FnOnce(&mut HashSet<(u64, u64)>)) {
        {
            let mut b = self.links.blocked.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut b);
        }
        self.links.changed.send_modify(|g| *g += 1);
    }

    /// Cuts the directed link `from` → `to` (connections `from` opens to `to`).
    pub fn cut(&self, from: u64, to: u64) {
        self.update(|b| {
            b.insert((from, to));
        });
    }

    /// Cuts every link between `node` and the other `nodes`, both ways.
    pub fn isolate(&self, node: u64, nodes: &[u64]) {
        self.update(|b| {
            for &other in nodes.iter().filter(|&&o| o != node) {
                b.insert((node, other));
                b.insert((other, node));
            }
        });
    }

    /// Heals every link.
    pub fn heal(&self) {
        self.update(|b| b.clear());
    }

    /// The cut directed links.
    pub fn blocked(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = self
            .links
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        v.sort();
        v
    }

    /// (connections accepted, connections whose source node was not identified).
    pub fn stats(&self) -> (u64, u64) {
        (
            self.links.accepted.load(Ordering::Relaxed),
            self.links.unknown_sources.load(Ordering::Relaxed),
        )
    }

    /// Traffic of every delayed directed link so far, by `(from, to)`.
    pub fn traffic(&self) -> Vec<((u64, u64), LinkStats)> {
        let mut v: Vec<_> = self
            .links
            .traffic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (*k, *s))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The longest the relays' runtime was late waking a 10 ms timer (how starved it was).
    pub fn max_tick_lag(&self) -> Duration {
        Duration::from_micros(self.links.max_tick_lag_us.load(Ordering::Relaxed))
    }

    /// One line on the relays' health: the runtime's worst lateness, and per delayed link the
    /// bytes moved, the worst lateness of a chunk and the most bytes ever queued.
    pub fn report(&self) -> String {
        let since_tick = self
            .links
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_micros(
                self.links.last_tick_us.load(Ordering::Relaxed),
            ));
        let (accepted, unknown) = self.stats();
        let mut s = format!(
            "relay runtime max timer lag {:?}, last tick {since_tick:?} ago; {accepted} \
             connections accepted, {unknown} of unknown source",
            self.max_tick_lag()
        );
        let now = self.links.epoch.elapsed();
        for ((a, b), t) in self.traffic() {
            s += &format!(
                "; {a}->{b}: {} B in {} chunks, max lag {:.0?}, max queued {} B, queued {} B, \
                 last read {:.0?} ago, last write {:.0?} ago",
                t.bytes,
                t.chunks,
                t.max_lag,
                t.max_queued,
                t.queued,
                now.saturating_sub(t.last_read),
                now.saturating_sub(t.last_write),
            );
        }
        s
    }

    /// The relays' runtime (for tests).
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// Measures how late the relays' runtime wakes a 10 ms timer, for ever.
async fn tick_probe(links: Arc<Links>) {
    loop {
        let due = tokio::time::Instant::now() + Duration::from_millis(10);
        tokio::time::sleep_until(due).await;
        let lag = due.elapsed().as_micros() as u64;
        links.max_tick_lag_us.fetch_max(lag, Ordering::Relaxed);
        let now = links.epoch.elapsed().as_micros() as u64;
        links.last_tick_us.store(now, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, node: u64, target: String, links: Arc<Links>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        links.accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay_connection(
            sock,
            peer,
            port,
            node,
            target.clone(),
            Arc::clone(&links),
        ));
    }
}

async fn relay_connection(
    mut inbound: TcpStream,
    peer: SocketAddr,
    relay_port: u16,
    to: u64,
    target: String,
    links: Arc<Links>,
) {
    // Which node connected, before a byte is forwarded.
    let from = match links.identifier.identify(peer.port(), relay_port).await {
        Source::Node(n) => n,
        // Fail closed: an unidentified connection could cross a cut. Usually its process just
        // died (a killed node) or gave up; otherwise the node reconnects and is identified then.
        Source::Gone => return,
        Source::Unknown => {
            links.unknown_sources.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let from_id = from;
    let from = Some(from);
    let src = || from;
    if links.is_blocked(from, to) {
        // A connection attempt across a cut link: never answered; closed when the link heals.
        links.wait_for(&src, to, false).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (there, back) = (links.delay(from_id, to), links.delay(to, from_id));
    if there.is_zero() && back.is_zero() {
        tokio::select! {
            biased;
            _ = links.wait_for(&src, to, true) => {
                // Cut: stop moving bytes, keep both ends open until the link heals, then close.
                links.wait_for(&src, to, false).await;
            }
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        }
        return;
    }
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    tokio::select! {
        biased;
        _ = links.wait_for(&src, to, true) => {
            links.wait_for(&src, to, false).await;
        }
        _ = async {
            tokio::join!(
                delayed_pump(in_r, out_w, there, (from_id, to), Arc::clone(&links)),
                delayed_pump(out_r, in_w, back, (to, from_id), Arc::clone(&links)),
            )
        } => {}
    }
}

/// Copies `r` to `w`, each chunk written `delay` after it was read (order kept), counting it in
/// `links`' traffic of the directed link `link`.
async fn delayed_pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    link: (u64, u64),
    links: Arc<Links>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let count = |f: &mut dyn FnMut(&mut LinkStats)| {
        let mut t = links.traffic.lock().unwrap_or_else(|p| p.into_inner());
        f(t.entry(link).or_default());
    };
    let reader = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = tokio::time::Instant::now() + delay;
                    let now = links.epoch.elapsed();
                    count(&mut |s| {
                        s.last_read = now;
                        s.queued += n as u64;
                        s.max_queued = s.max_queued.max(s.queued);
                    });
                    if tx.send((at, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer once the queued chunks are out.
        drop(tx);
    };
    let writer = async {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let lag = at.elapsed();
            let now = links.epoch.elapsed();
            count(&mut |s| {
                s.last_write = now;
                s.queued -= chunk.len() as u64;
                s.bytes += chunk.len() as u64;
                s.chunks += 1;
                s.max_lag = s.max_lag.max(lag);
            });
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on the relays' runtime; returns its address.
    fn echo(rt: &Runtime) -> String {
        let l = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        rt.spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Result<Vec<u8>, String> {
        s.write_all(msg).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(buf)
    }

    #[test]
    fn identifies_the_connecting_process() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let l = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let client = rt
            .block_on(TcpStream::connect(("127.0.0.1", port)))
            .expect("connect");
        let sport = client.local_addr().expect("addr").port();
        let inode = super::super::identify::tcp_sockets()[&(sport, port)];
        let me = HashMap::from([(std::process::id(), 7)]);
        assert_eq!(super::super::identify::fd_owners(&me).get(&inode), Some(&7));
        let other = HashMap::from([(1, 3)]);
        assert_eq!(super::super::identify::fd_owners(&other).get(&inode), None);
    }

    #[test]
    fn cut_and_heal_a_directed_link() {
        // "Node 1" (this process) talks to "node 2" (an echo server) through node 2's relay.
        let backend = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let target = echo(&backend);
        let relays = Relays::start(&[(2, target)]);
        relays.set_pid(std::process::id(), 1);
        let addr = relays.addr(2);
        let rt = relays.runtime();
        let mut s = rt.block_on(TcpStream::connect(&addr)).expect("connect");
        assert_eq!(
            rt.block_on(roundtrip(&mut s, b"ping")),
            Ok(b"ping".to_vec())
        );

        // The other direction being cut changes nothing.
        relays.cut(2, 1);
        assert_eq!(
            rt.block_on(roundtrip(&mut s, b"pong")),
            Ok(b"pong".to_vec())
        );

        // Cutting 1 → 2 stalls the established connection…
        relays.cut(1, 2);
        assert_eq!(relays.blocked(), vec![(1, 2), (2, 1)]);
        assert!(rt.block_on(roundtrip(&mut s, b"lost")).is_err());
        // …and a new one never answers.
        let mut s2 = rt.block_on(TcpStream::connect(&addr)).expect("connect");
        assert!(rt.block_on(roundtrip(&mut s2, b"lost")).is_err());

        // Healing closes the stalled connections; new ones work.
        relays.heal();
        let mut s3 = rt.block_on(TcpStream::connect(&addr)).expect("connect");
        assert_eq!(
            rt.block_on(roundtrip(&mut s3, b"back")),
            Ok(b"back".to_vec())
        );
        let mut buf = [0u8; 16];
        let n = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await
            })
            .expect("the stalled connection is closed at heal");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        let (accepted, unknown) = relays.stats();
        assert_eq!((accepted, unknown), (3, 0));
    }

    /// Relays for "node 2" (an echo server on its own runtime) with `rtt` between 1 (this
    /// process) and 2.
    fn delayed_echo(rtt: Duration) -> (Runtime, Relays, String) {
        let backend = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let target = echo(&backend);
        let relays = Relays::start(&[(2, target)]);
        relays.set_pid(std::process::id(), 1);
        relays.set_rtt(1, 2, rtt);
        let addr = relays.addr(2);
        (backend, relays, addr)
    }

    #[test]
    fn a_delayed_link_adds_its_round_trip_and_no_more() {
        let rtt = Duration::from_millis(300);
        let (_backend, relays, addr) = delayed_echo(rtt);
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let mut s = client.block_on(TcpStream::connect(&addr)).expect("connect");
        let mut times = Vec::new();
        for i in 0..10u8 {
            let t = std::time::Instant::now();
            let got = client.block_on(async {
                s.write_all(&[i; 100]).await.expect("write");
                let mut buf = [0u8; 100];
                tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
                    .await
                    .expect("an answer within 10 s")
                    .expect("read");
                buf
            });
            assert_eq!(got, [i; 100]);
            times.push(t.elapsed());
        }
        times.sort();
        // Never faster than the link; the median within a loaded machine's scheduling slack,
        // and below twice the link (a relay delaying both ways by the full round trip).
        assert!(times[0] >= rtt, "{times:?}");
        assert!(times[5] < rtt + Duration::from_millis(250), "{times:?}");
        let t = relays.traffic();
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t.iter().all(|(_, s)| s.bytes == 1000 && s.queued == 0),
            "{t:?}"
        );
    }

    #[test]
    fn a_sustained_stream_is_not_slowed_by_the_delay() {
        // 32 MiB one way over a 100 ms link, echoed back: a relay that slept the delay per read
        // (64 KiB) would need 512 × 2 × 50 ms ≈ 51 s; the pipe must stay full instead.
        let rtt = Duration::from_millis(100);
        let (_backend, relays, addr) = delayed_echo(rtt);
        let client = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        const TOTAL: usize = 32 << 20;
        let t = std::time::Instant::now();
        let first_byte = client.block_on(async {
            let s = TcpStream::connect(&addr).await.expect("connect");
            let (mut r, mut w) = s.into_split();
            let writer = tokio::spawn(async move {
                let chunk = vec![7u8; 256 * 1024];
                for _ in 0..TOTAL / chunk.len() {
                    w.write_all(&chunk).await.expect("write");
                }
                w
            });
            let mut buf = vec![0u8; 256 * 1024];
            let (mut got, mut first) = (0, None);
            while got < TOTAL {
                let n = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf))
                    .await
                    .expect("the stream never stalls for 10 s")
                    .expect("read");
                assert!(n > 0, "closed after {got} bytes");
                assert!(buf[..n].iter().all(|b| *b == 7));
                first.get_or_insert(t.elapsed());
                got += n;
            }
            drop(writer.await);
            first.expect("some bytes")
        });
        let total = t.elapsed();
        assert!(first_byte >= rtt, "first byte after {first_byte:?}");
        assert!(
            total < Duration::from_secs(20),
            "32 MiB each way took {total:?}: {}",
            relays.report()
        );
        let t = relays.traffic();
        assert!(
            t.iter()
                .all(|(_, s)| s.bytes == TOTAL as u64 && s.queued == 0),
            "{t:?}"
        );
    }

    #[test]
    fn two_minutes_of_raft_like_traffic_never_stall() {
        // A heartbeat-sized request every 50 ms on one connection and a bigger one every second,
        // on three links at once for 130 s (the lab's 5-minute failure showed after 30 s-4 min):
        // every answer arrives, none later than 2 s (the link adds 80-160 ms).
        let (_b1, relays, addr) = delayed_echo(Duration::from_millis(80));
        let client = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let worst = client.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let addr = addr.clone();
                tasks.push(tokio::spawn(async move {
                    let mut s = TcpStream::connect(&addr).await.expect("connect");
                    let start = tokio::time::Instant::now();
                    let (mut worst, mut n) = (Duration::ZERO, 0u64);
                    while start.elapsed() < Duration::from_secs(130) {
                        n += 1;
                        let len = if n % 20 == 0 { 40_000 } else { 300 };
                        let msg = vec![(n % 251) as u8; len];
                        let t = tokio::time::Instant::now();
                        s.write_all(&msg).await.expect("write");
                        let mut buf = vec![0u8; len];
                        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
                            .await
                            .unwrap_or_else(|_| panic!("request {n} stalled for 10 s"))
                            .expect("read");
                        assert_eq!(buf, msg);
                        worst = worst.max(t.elapsed());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    worst
                }));
            }
            let mut worst = Duration::ZERO;
            for t in tasks {
                worst = worst.max(t.await.expect("a client task"));
            }
            worst
        });
        assert!(
            worst < Duration::from_secs(2),
            "worst round trip {worst:?}: {}",
            relays.report()
        );
    }

    #[test]
    fn a_storm_of_abandoned_connections_does_not_stall_the_links() {
        // Nodes whose connections time out reconnect, and give up on a connection the relay
        // has not identified yet: each such socket is gone from /proc before the relay finds
        // its owner. 300 of them, from a process that is not registered (so identifying it
        // means scanning /proc), must not stall an established delayed link: the lab's
        // 5-minute failure (every link of every node silent for a minute, the relays' timer
        // late by up to 79 s, hundreds of threads scanning /proc).
        let (_backend, relays, addr) = delayed_echo(Duration::from_millis(40));
        let client = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let mut s = client.block_on(TcpStream::connect(&addr)).expect("connect");
        let ping = |s: &mut TcpStream| {
            let t = std::time::Instant::now();
            client.block_on(async {
                s.write_all(b"ping").await.expect("write");
                let mut buf = [0u8; 4];
                tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf))
                    .await
                    .expect("an answer within 30 s")
                    .expect("read");
            });
            t.elapsed()
        };
        assert!(ping(&mut s) >= Duration::from_millis(40));
        relays.set_pid(1, 1); // the registered "node 1" is now some other process
        let storm = std::thread::spawn({
            let addr = addr.clone();
            move || {
                for _ in 0..300 {
                    drop(std::net::TcpStream::connect(&addr));
                    std::thread::sleep(Duration::from_millis(5)); // the storm's pace
                }
            }
        });
        let mut worst = Duration::ZERO;
        while !storm.is_finished() {
            worst = worst.max(ping(&mut s));
        }
        for _ in 0..20 {
            worst = worst.max(ping(&mut s));
        }
        storm.join().expect("storm");
        // Before the fix the live link did not answer for over 30 s; the bounds leave room for a
        // loaded machine's scheduling.
        assert!(
            worst < Duration::from_secs(5),
            "worst round trip {worst:?} during the storm: {}",
            relays.report()
        );
        assert!(
            relays.max_tick_lag() < Duration::from_secs(3),
            "{}",
            relays.report()
        );
    }
}

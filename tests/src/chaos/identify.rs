//! Which node opened a connection to a relay ([`super::relays`]): the process holding the
//! socket, found through `/proc`, on one thread of its own.
//!
//! Why one thread, answering every waiting connection from one look at `/proc` per round: the
//! first design identified each connection on tokio's blocking pool, retrying 20 times with a
//! scan of every process's file descriptors when the owner was not a registered node. Under
//! load, nodes whose RPCs time out reconnect and give up on connections the relay has not
//! identified yet; each such connection then cost 20 full scans of `/proc` on a thread of its
//! own. In the lab's 5-minute run that grew into hundreds of threads reading `/proc`, the relays'
//! runtime (which spawns them) stalled for up to 79 s, every Raft link of every node went
//! silent, and the nodes campaigned in vain (`relays::tests::a_storm_of_abandoned_connections…`
//! reproduces it in seconds). Now a connection whose socket is gone is answered at once, the
//! work per round does not grow with the connections waiting, and the relays' runtime never
//! blocks on it.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What identification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Node `n` holds the connecting socket.
    Node(u64),
    /// The connecting socket is closed (its process gave up or died).
    Gone,
    /// The socket is open, but no node process was found holding it in time.
    Unknown,
}

/// How long a connection may wait for its owner to be found (a process that has just started
/// may not be registered, and `/proc` may lag the connect by a moment).
const PATIENCE: Duration = Duration::from_secs(2);
/// Between two rounds while connections are waiting.
const ROUND: Duration = Duration::from_millis(25);
/// Between two scans of every process (the fallback for unregistered nodes).
const FULL_SCAN_EVERY: Duration = Duration::from_millis(250);

struct Ask {
    sport: u16,
    dport: u16,
    since: Instant,
    reply: oneshot::Sender<Source>,
}

/// The identification thread (stops when dropped).
pub struct Identifier {
    tx: Mutex<Option<mpsc::Sender<Ask>>>,
}

impl Identifier {
    /// Starts the thread; `pids` maps registered processes to node ids.
    pub fn start(pids: Arc<Mutex<HashMap<u32, u64>>>) -> Identifier {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("relay-identify".into())
            .spawn(move || run(rx, pids))
            .expect("starting the relay identification thread");
        Identifier {
            tx: Mutex::new(Some(tx)),
        }
    }

    /// Who holds the socket from local port `sport` to `dport`.
    pub async fn identify(&self, sport: u16, dport: u16) -> Source {
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            sport,
            dport,
            since: Instant::now(),
            reply,
        };
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(ask).is_ok(),
            None => false,
        };
        if !sent {
            return Source::Unknown;
        }
        answer.await.unwrap_or(Source::Unknown)
    }
}

impl Drop for Identifier {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn run(rx: mpsc::Receiver<Ask>, pids: Arc<Mutex<HashMap<u32, u64>>>) {
    let mut waiting: Vec<Ask> = Vec::new();
    let mut last_full_scan: Option<Instant> = None;
    loop {
        let next = if waiting.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(ROUND)
        };
        match next {
            Ok(a) => waiting.push(a),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        waiting.extend(rx.try_iter());
        waiting.retain(|a| !a.reply.is_closed());
        if waiting.is_empty() {
            continue;
        }
        // One look at the sockets, and at the registered nodes' descriptors, for everyone.
        let sockets = tcp_sockets();
        let registered = pids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut owners = fd_owners(&registered);
        let unresolved = waiting.iter().any(|a| {
            sockets
                .get(&(a.sport, a.dport))
                .is_some_and(|i| !owners.contains_key(i))
        });
        if unresolved && last_full_scan.is_none_or(|t| t.elapsed() >= FULL_SCAN_EVERY) {
            owners.extend(node_sockets());
            last_full_scan = Some(Instant::now());
        }
        let mut still = Vec::new();
        for a in waiting.drain(..) {
            let answer = match sockets.get(&(a.sport, a.dport)) {
                None => Some(Source::Gone),
                Some(inode) => match owners.get(inode) {
                    Some(n) => Some(Source::Node(*n)),
                    None if a.since.elapsed() > PATIENCE => Some(Source::Unknown),
                    None => None,
                },
            };
            match answer {
                Some(s) => {
                    let _ = a.reply.send(s);
                }
                None => still.push(a),
            }
        }
        waiting = still;
    }
}

/// Every open TCP socket: (local port, remote port) → inode (orphaned sockets, whose process
/// closed them, have inode 0 and are left out).
pub fn tcp_sockets() -> HashMap<(u16, u16), u64> {
    let mut out = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port_of = |a: &str| {
                a.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if let (Some(l), Some(r), Ok(inode)) = (port_of(f[1]), port_of(f[2]), f[9].parse()) {
                if inode != 0 {
                    out.insert((l, r), inode);
                }
            }
        }
    }
    out
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: &str) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|fd| {
            let l = std::fs::read_link(fd.path()).ok()?;
            let l = l.to_str()?;
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Socket inode → node, for the registered processes.
pub fn fd_owners(pids: &HashMap<u32, u64>) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    for (pid, node) in pids {
        for inode in socket_inodes(&pid.to_string()) {
            out.insert(inode, *node);
        }
    }
    out
}

/// Socket inode → node, for every process whose command line has `--node-id N` (only this
/// cluster's nodes connect to its relays). Covers connections made before
/// [`super::relays::Relays::set_pid`] registered the node. Only those processes' descriptors
/// are read.
fn node_sockets() -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let Some(node) = args
            .windows(2)
            .find(|w| w[0] == b"--node-id")
            .and_then(|w| std::str::from_utf8(w[1]).ok()?.parse::<u64>().ok())
        else {
            continue;
        };
        for inode in socket_inodes(&name) {
            out.insert(inode, node);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_registered_owner_and_answers_gone_for_closed_sockets() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let sport = client.local_addr().expect("addr").port();
        let pids = Arc::new(Mutex::new(HashMap::from([(std::process::id(), 7)])));
        let id = Identifier::start(Arc::clone(&pids));
        assert_eq!(rt.block_on(id.identify(sport, port)), Source::Node(7));
        // Not a registered process, and no `--node-id` on this test's command line.
        pids.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let t = Instant::now();
        assert_eq!(rt.block_on(id.identify(sport, port)), Source::Unknown);
        assert!(t.elapsed() >= PATIENCE);
        // The client gave up: answered at once.
        drop(client);
        let t = Instant::now();
        assert_eq!(rt.block_on(id.identify(sport, port)), Source::Gone);
        assert!(t.elapsed() < PATIENCE);
    }
}

//! One DNS exchange over UDP (TCP when the answer is truncated), bounded in time and size.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one attempt waits for an answer.
const ATTEMPT: Duration = Duration::from_secs(3);
const ATTEMPTS: usize = 3;

/// Sends `msg` to `server` and returns the answer with the same id.
pub(crate) async fn exchange(server: SocketAddr, msg: &Message) -> Result<Message, String> {
    let bytes = msg
        .to_vec()
        .map_err(|e| format!("encoding a DNS message: {e}"))?;
    let id = msg.metadata.id;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("DNS socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("DNS server {server}: {e}"))?;
    let mut last = format!("no answer from DNS server {server}");
    for _ in 0..ATTEMPTS {
        if let Err(e) = sock.send(&bytes).await {
            last = format!("DNS server {server}: {e}");
            continue;
        }
        let deadline = tokio::time::Instant::now() + ATTEMPT;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    last = format!("DNS server {server}: {e}");
                    break;
                }
                Ok(Ok(n)) => n,
            };
            let Ok(answer) = Message::from_vec(&buf[..n]) else {
                continue; // garbage: keep waiting for the real answer
            };
            if answer.metadata.id != id {
                continue;
            }
            if answer.metadata.truncation {
                return exchange_tcp(server, &bytes, id).await;
            }
            return Ok(answer);
        }
    }
    Err(last)
}

async fn exchange_tcp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let fut = async {
        let mut s = TcpStream::connect(server)
            .await
            .map_err(|e| format!("DNS server {server} (TCP): {e}"))?;
        let len = u16::try_from(bytes.len()).map_err(|_| "DNS message too large".to_string())?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        s.write_all(&out)
            .await
            .map_err(|e| format!("DNS server {server} (TCP): {e}"))?;
        let n = s
            .read_u16()
            .await
            .map_err(|e| format!("DNS server {server} (TCP): {e}"))?;
        let mut buf = vec![0u8; usize::from(n)];
        s.read_exact(&mut buf)
            .await
            .map_err(|e| format!("DNS server {server} (TCP): {e}"))?;
        let answer =
            Message::from_vec(&buf).map_err(|e| format!("DNS server {server}: bad answer: {e}"))?;
        if answer.metadata.id != id {
            return Err(format!("DNS server {server}: answer for another query"));
        }
        Ok(answer)
    };
    tokio::time::timeout(ATTEMPT * 2, fut)
        .await
        .map_err(|_| format!("no answer from DNS server {server} (TCP)"))?
}

/// A recursive query for `name`/`ty` to `server`.
pub(crate) async fn query(
    server: SocketAddr,
    name: &hickory_proto::rr::Name,
    ty: hickory_proto::rr::RecordType,
) -> Result<Message, String> {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(name.clone(), ty));
    exchange(server, &m).await
}

/// The zone containing `fqdn` according to `server`: the owner of the SOA record in the answer
/// (or the authority section) of an SOA query for `fqdn`.
pub(crate) async fn find_zone(
    server: SocketAddr,
    fqdn: &hickory_proto::rr::Name,
) -> Result<hickory_proto::rr::Name, String> {
    use hickory_proto::rr::RecordType;
    let answer = query(server, fqdn, RecordType::SOA).await?;
    answer
        .answers
        .iter()
        .chain(answer.authorities.iter())
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.clone())
        .ok_or_else(|| format!("DNS server {server} knows no zone (SOA) for {fqdn}"))
}

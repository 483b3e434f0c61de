//! TCP middlewares: `ipAllowList` (`ipWhiteList`) closes connections from addresses outside
//! `sourceRange`; `inFlightConn` allows at most `amount` simultaneous connections per client
//! IP (Traefik counts per IP too). A [`ConnSlot`] holds one connection's place until dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use switchyard_config::middlewares::ip::Checker;
use switchyard_config::tcp::TcpMiddleware;

type Counts = Arc<Mutex<HashMap<IpAddr, i64>>>;

/// A compiled TCP middleware.
pub(crate) enum TcpMw {
    Allow(Checker),
    InFlight { amount: i64, counts: Counts },
}

/// One connection counted by `inFlightConn`; released on drop.
pub(crate) struct ConnSlot {
    counts: Counts,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n <= 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl TcpMw {
    /// Compile (validation has checked the values).
    pub(crate) fn compile(name: &str, m: &TcpMiddleware) -> Result<TcpMw, String> {
        if let Some(a) = m.ip_allow_list.as_ref().or(m.ip_white_list.as_ref()) {
            let mut errs = Vec::new();
            let c = Checker::parse("ipAllowList.sourceRange", &a.source_range, &mut errs);
            if let Some(e) = errs.first() {
                return Err(format!(
                    "tcpMiddleware {name:?}: {}: {}",
                    e.field, e.message
                ));
            }
            return Ok(TcpMw::Allow(c));
        }
        if let Some(f) = &m.in_flight_conn {
            return Ok(TcpMw::InFlight {
                amount: f.amount.unwrap_or(1).max(1),
                counts: Arc::default(),
            });
        }
        Err(format!("tcpMiddleware {name:?}: no middleware kind"))
    }

    /// Admit a connection from `ip`: `Err(())` to close it; `Ok(Some(slot))` to hold.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Option<ConnSlot>, ()> {
        let ip = ip.to_canonical();
        match self {
            TcpMw::Allow(c) => {
                if c.contains(&ip.to_string()) {
                    Ok(None)
                } else {
                    Err(())
                }
            }
            TcpMw::InFlight { amount, counts } => {
                let mut m = counts.lock().unwrap_or_else(PoisonError::into_inner);
                let n = m.entry(ip).or_insert(0);
                if *n >= *amount {
                    return Err(());
                }
                *n += 1;
                Ok(Some(ConnSlot {
                    counts: counts.clone(),
                    ip,
                }))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mw(yaml: &str) -> TcpMw {
        let cfg = switchyard_config::parse_document(yaml).unwrap();
        let (n, m) = cfg.tcp.middlewares.iter().next().unwrap();
        TcpMw::compile(n, m).unwrap()
    }

    #[test]
    fn allow_list_and_in_flight() {
        let a = mw("tcp:\n  middlewares:\n    m: {ipAllowList: {sourceRange: [\"10.0.0.0/8\"]}}\n");
        assert!(a.admit("10.1.2.3".parse().unwrap()).is_ok());
        assert!(a.admit("::ffff:10.1.2.3".parse().unwrap()).is_ok());
        assert!(a.admit("192.168.0.1".parse().unwrap()).is_err());
        let f = mw("tcp:\n  middlewares:\n    m: {inFlightConn: {amount: 2}}\n");
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let s1 = f.admit(ip).unwrap();
        let _s2 = f.admit(ip).unwrap();
        assert!(f.admit(ip).is_err());
        assert!(f.admit("10.0.0.2".parse().unwrap()).is_ok());
        drop(s1);
        assert!(f.admit(ip).is_ok());
    }
}

//! `inFlightReq`: at most `amount` requests in progress per source (default: the request
//! host). A [`Slot`] counts one request until it is dropped (the proxy holds it until the
//! response body is finished, as Traefik counts until its handler returns).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::ratelimit::{compile_source, Source};
use super::{FieldError, FieldErrors};
use crate::model::InFlightReq;

type Counts = Arc<Mutex<HashMap<String, i64>>>;

/// A compiled `inFlightReq` with its counters (entries at zero are removed, so the table
/// holds only sources with requests in progress).
#[derive(Debug)]
pub struct CompiledInFlight {
    /// Most requests in progress per source.
    pub amount: i64,
    /// Grouping.
    pub source: Source,
    counts: Counts,
}

/// One request in progress; released on drop.
#[derive(Debug)]
pub struct Slot {
    counts: Counts,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n <= 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl CompiledInFlight {
    /// A slot for `source`, or `None` when `amount` requests of it are in progress.
    pub fn acquire(&self, source: &str) -> Option<Slot> {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(source.to_string()).or_insert(0);
        if *n >= self.amount {
            if *n == 0 {
                m.remove(source);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.counts.clone(),
            key: source.to_string(),
        })
    }
}

/// Compile `inFlightReq`.
pub(crate) fn compile(r: &InFlightReq) -> Result<CompiledInFlight, FieldErrors> {
    let mut errs = FieldErrors::new();
    let amount = r.amount.unwrap_or(0);
    if amount < 0 {
        errs.push(FieldError::new(
            "inFlightReq.amount",
            format!("must be 0 or more, got {amount}"),
        ));
    }
    let source = compile_source(
        "inFlightReq",
        r.source_criterion.as_ref(),
        Source::Host,
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledInFlight {
        amount,
        source,
        counts: Arc::default(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_and_release() {
        let c = compile(&InFlightReq {
            amount: Some(2),
            source_criterion: None,
        })
        .unwrap();
        let a = c.acquire("h").unwrap();
        let b = c.acquire("h").unwrap();
        assert!(c.acquire("h").is_none());
        assert!(c.acquire("other").is_some());
        drop(a);
        let _c = c.acquire("h").unwrap();
        drop(b);
        drop(_c);
        assert!(c.counts.lock().unwrap().is_empty());
        assert!(compile(&InFlightReq {
            amount: Some(-1),
            source_criterion: None
        })
        .is_err());
    }
}

//! `retry`: a request that gets no response from the service (connection refused or reset,
//! timeout: the proxy would answer 502 or 504) is sent again, up to `attempts` in all, with an
//! exponential backoff starting at `initialInterval` (Traefik's `cenkalti/backoff`: ×1.5, ±50%
//! jitter). Only requests without a body are retried (nothing to replay); the response-status
//! options of recent Traefik versions are refused.

use std::time::Duration;

use super::{FieldError, FieldErrors};
use crate::model::Retry;

/// A compiled `retry`.
#[derive(Debug, Clone)]
pub struct CompiledRetry {
    /// Attempts in all.
    pub attempts: u32,
    /// First backoff interval (zero: none).
    pub initial_interval: Duration,
}

impl CompiledRetry {
    /// The wait before attempt `n + 1` (`n` ≥ 1 attempts made), before jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let f = 1.5f64.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX));
        self.initial_interval
            .mul_f64(f)
            .min(Duration::from_secs(60))
    }
}

/// Compile `retry`.
pub(crate) fn compile(r: &Retry) -> Result<CompiledRetry, FieldErrors> {
    let mut errs = FieldErrors::new();
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 1 {
        errs.push(FieldError::new(
            "retry.attempts",
            format!("must be 1 or more, got {attempts}"),
        ));
    }
    let initial_interval = match &r.initial_interval {
        None => Duration::ZERO,
        Some(d) => match d.as_nanos() {
            Ok(n) if n >= 0 => Duration::from_nanos(n as u64),
            Ok(_) => {
                errs.push(FieldError::new(
                    "retry.initialInterval",
                    format!("must not be negative, got \"{d}\""),
                ));
                Duration::ZERO
            }
            Err(e) => {
                errs.push(FieldError::new("retry.initialInterval", e));
                Duration::ZERO
            }
        },
    };
    const NOT: &str = "is not supported by this version of Switchyard";
    if r.timeout.is_some() {
        errs.push(FieldError::new("retry.timeout", NOT));
    }
    if !r.status.is_empty() {
        errs.push(FieldError::new("retry.status", NOT));
    }
    if r.disable_retry_on_network_error.unwrap_or(false) {
        errs.push(FieldError::new("retry.disableRetryOnNetworkError", NOT));
    }
    if r.retry_non_idempotent_method.unwrap_or(false) {
        errs.push(FieldError::new("retry.retryNonIdempotentMethod", NOT));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CompiledRetry {
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        initial_interval,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::duration::Duration as CfgDuration;

    #[test]
    fn options() {
        let r = compile(&Retry {
            attempts: Some(3),
            initial_interval: Some(CfgDuration::from_str_value("100ms")),
            ..Retry::default()
        })
        .unwrap();
        assert_eq!(r.attempts, 3);
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(150));
        assert_eq!(r.backoff(100), Duration::from_secs(60));
        let e = compile(&Retry {
            attempts: Some(0),
            status: vec!["500".into()],
            ..Retry::default()
        })
        .unwrap_err();
        assert_eq!(e[0].field, "retry.attempts");
        assert_eq!(e[1].field, "retry.status");
    }
}

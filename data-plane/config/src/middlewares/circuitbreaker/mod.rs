//! `circuitBreaker`: Traefik's breaker (`vulcand/oxy` `cbreaker`). It watches the responses
//! of what it wraps in a [`window::Window`] and evaluates its [`expr`] expression at most every
//! `checkPeriod` (after a response). States:
//!
//! * standby: requests pass; when the expression holds, it trips (the window is reset);
//! * tripped: every request gets the fallback (`responseCode`, default 503, with the status
//!   text as body) for `fallbackDuration`;
//! * recovering: for `recoveryDuration`, a growing share of requests passes (the share
//!   allowed so far stays under `0.5 × elapsed / recoveryDuration`, oxy's ratio controller);
//!   if the expression holds again it trips again, otherwise it returns to standby.
//!
//! Pure: the caller passes the time.

pub mod expr;
pub mod window;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::{FieldError, FieldErrors};
use crate::error::quote;
use crate::model::CircuitBreaker;
use expr::Predicate;
use window::Window;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests pass, responses are watched.
    Standby,
    /// Every request gets the fallback until the instant.
    Tripped(Instant),
    /// Part of the requests pass until the instant.
    Recovering(Instant),
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: Window,
    next_check: Option<Instant>,
    /// Recovery ramp: its start, requests allowed and denied.
    ramp: (Instant, u64, u64),
}

/// A compiled `circuitBreaker` with its state.
#[derive(Debug)]
pub struct CompiledCircuitBreaker {
    /// The expression as written.
    pub expression: String,
    /// The parsed expression.
    pub predicate: Predicate,
    /// How often the expression is evaluated.
    pub check_period: Duration,
    /// Time in the tripped state.
    pub fallback_duration: Duration,
    /// Time in the recovering state.
    pub recovery_duration: Duration,
    /// Status of the fallback answer.
    pub response_code: StatusCode,
    inner: Mutex<Inner>,
}

impl CompiledCircuitBreaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state at `now` (for tests and diagnostics).
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Whether a request arriving at `now` passes (`false`: answer the fallback).
    pub fn allow(&self, now: Instant) -> bool {
        let mut g = self.lock();
        loop {
            match g.state {
                State::Standby => return true,
                State::Tripped(until) => {
                    if now < until {
                        return false;
                    }
                    g.state = State::Recovering(now + self.recovery_duration);
                    g.ramp = (now, 0, 0);
                }
                State::Recovering(until) => {
                    if now > until {
                        g.state = State::Standby;
                        return true;
                    }
                    let (start, allowed, denied) = g.ramp;
                    let target = if self.recovery_duration.is_zero() {
                        1.0
                    } else {
                        0.5 * now.saturating_duration_since(start).as_secs_f64()
                            / self.recovery_duration.as_secs_f64()
                    };
                    let ratio = (allowed + 1) as f64 / (allowed + 1 + denied) as f64;
                    if ratio < target {
                        g.ramp.1 += 1;
                        return true;
                    }
                    g.ramp.2 += 1;
                    return false;
                }
            }
        }
    }

    /// Record the response to a request that passed (`latency`: from the request to the
    /// response head), then evaluate the expression if `checkPeriod` has passed.
    pub fn record(&self, status: u16, latency: Duration, now: Instant) {
        let mut g = self.lock();
        g.window.record(status, latency, now);
        if g.next_check.is_some_and(|t| now < t) {
            return;
        }
        g.next_check = Some(now + self.check_period);
        if matches!(g.state, State::Tripped(_)) {
            return;
        }
        if self.predicate.eval(&g.window.at(now)) {
            g.state = State::Tripped(now + self.fallback_duration);
            g.window.reset(now);
        }
    }
}

fn duration(
    field: &str,
    d: Option<&crate::duration::Duration>,
    default: Duration,
    errs: &mut FieldErrors,
) -> Duration {
    let Some(d) = d else { return default };
    match d.as_nanos() {
        // Traefik keeps oxy's default for 0.
        Ok(0) => default,
        Ok(n) if n > 0 => Duration::from_nanos(n as u64),
        Ok(_) => {
            errs.push(FieldError::new(
                field,
                format!("must not be negative, got {}", quote(&d.to_string())),
            ));
            default
        }
        Err(e) => {
            errs.push(FieldError::new(field, e));
            default
        }
    }
}

/// Compile `circuitBreaker`.
pub(crate) fn compile(c: &CircuitBreaker) -> Result<CompiledCircuitBreaker, FieldErrors> {
    let mut errs = FieldErrors::new();
    let predicate = match expr::parse(&c.expression) {
        Ok(p) => Some(p),
        Err(e) => {
            errs.push(FieldError::new(
                "circuitBreaker.expression",
                format!("invalid expression {}: {e}", quote(&c.expression)),
            ));
            None
        }
    };
    let check_period = duration(
        "circuitBreaker.checkPeriod",
        c.check_period.as_ref(),
        Duration::from_millis(100),
        &mut errs,
    );
    let fallback_duration = duration(
        "circuitBreaker.fallbackDuration",
        c.fallback_duration.as_ref(),
        Duration::from_secs(10),
        &mut errs,
    );
    let recovery_duration = duration(
        "circuitBreaker.recoveryDuration",
        c.recovery_duration.as_ref(),
        Duration::from_secs(10),
        &mut errs,
    );
    let code = c.response_code.unwrap_or(503);
    let response_code = match u16::try_from(code)
        .ok()
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(s) => s,
        None => {
            errs.push(FieldError::new(
                "circuitBreaker.responseCode",
                format!("invalid HTTP status code {code}"),
            ));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    match predicate {
        Some(predicate) if errs.is_empty() => {
            let now = Instant::now();
            Ok(CompiledCircuitBreaker {
                expression: c.expression.clone(),
                predicate,
                check_period,
                fallback_duration,
                recovery_duration,
                response_code,
                inner: Mutex::new(Inner {
                    state: State::Standby,
                    window: Window::new(now),
                    next_check: None,
                    ramp: (now, 0, 0),
                }),
            })
        }
        _ => Err(errs),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::duration::Duration as CfgDuration;

    fn cb(expression: &str) -> CompiledCircuitBreaker {
        compile(&CircuitBreaker {
            expression: expression.into(),
            ..CircuitBreaker::default()
        })
        .unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    // oxy cbreaker_test.go: TestStandbyCycle
    #[test]
    fn standby_cycle() {
        let c = cb("NetworkErrorRatio() > 0.5");
        let t0 = Instant::now();
        assert!(c.allow(t0));
        c.record(200, MS, t0);
        assert_eq!(c.state(), State::Standby);
    }

    // oxy cbreaker_test.go: TestFullCycle (tripped → recovering → standby)
    #[test]
    fn full_cycle() {
        let c = cb("NetworkErrorRatio() > 0.5");
        let t0 = Instant::now();
        // 60% network errors: the first check trips it.
        for i in 0..10 {
            c.record(if i < 6 { 502 } else { 200 }, MS, t0);
        }
        // The check ran on the first record (1 of 1 was an error).
        assert!(matches!(c.state(), State::Tripped(_)));
        let t = t0 + Duration::from_secs(1);
        assert!(!c.allow(t), "tripped: fallback");
        // After fallbackDuration (10s): recovering, the ramp starts at 0.
        let t = t0 + Duration::from_secs(11);
        assert!(!c.allow(t), "the ramp starts closed");
        assert!(matches!(c.state(), State::Recovering(_)));
        // Halfway through the recovery, about a quarter of requests pass.
        let t = t0 + Duration::from_secs(16);
        let passed = (0..100).filter(|_| c.allow(t)).count();
        assert!((20..=30).contains(&passed), "{passed}");
        // Responses are fine: the check does not trip it.
        c.record(200, MS, t);
        assert!(matches!(c.state(), State::Recovering(_)));
        // After recoveryDuration: standby.
        let t = t0 + Duration::from_secs(22);
        assert!(c.allow(t));
        assert_eq!(c.state(), State::Standby);
    }

    // oxy cbreaker_test.go: TestRedirectWithPath-like re-trip while recovering
    #[test]
    fn trips_again_while_recovering() {
        let c = cb("NetworkErrorRatio() > 0.5");
        let t0 = Instant::now();
        c.record(502, MS, t0);
        assert!(matches!(c.state(), State::Tripped(_)));
        let t = t0 + Duration::from_secs(15);
        let _ = c.allow(t);
        assert!(matches!(c.state(), State::Recovering(_)));
        c.record(502, MS, t);
        assert_eq!(c.state(), State::Tripped(t + Duration::from_secs(10)));
    }

    // oxy cbreaker_test.go: TestTripped (checkPeriod limits evaluation)
    #[test]
    fn check_period_limits_evaluation() {
        let c = compile(&CircuitBreaker {
            expression: "NetworkErrorRatio() > 0.5".into(),
            check_period: Some(CfgDuration::from_str_value("1s")),
            fallback_duration: Some(CfgDuration::from_str_value("2s")),
            recovery_duration: Some(CfgDuration::from_str_value("4s")),
            response_code: Some(429),
        })
        .unwrap();
        assert_eq!(c.response_code, StatusCode::TOO_MANY_REQUESTS);
        let t0 = Instant::now();
        c.record(200, MS, t0);
        // Errors within the check period are not evaluated yet.
        for _ in 0..5 {
            c.record(502, MS, t0 + Duration::from_millis(500));
        }
        assert_eq!(c.state(), State::Standby);
        c.record(502, MS, t0 + Duration::from_millis(1001));
        assert_eq!(
            c.state(),
            State::Tripped(t0 + Duration::from_millis(3001)),
            "fallbackDuration 2s"
        );
        assert!(!c.allow(t0 + Duration::from_millis(3000)));
        let _ = c.allow(t0 + Duration::from_millis(3002));
        assert_eq!(
            c.state(),
            State::Recovering(t0 + Duration::from_millis(7002)),
            "recoveryDuration 4s"
        );
    }

    #[test]
    fn latency_expression_trips() {
        let c = cb("LatencyAtQuantileMS(50.0) > 50");
        let t0 = Instant::now();
        c.record(200, Duration::from_millis(40), t0);
        assert_eq!(c.state(), State::Standby);
        for _ in 0..3 {
            c.record(
                200,
                Duration::from_millis(60),
                t0 + Duration::from_millis(200),
            );
        }
        c.record(
            200,
            Duration::from_millis(60),
            t0 + Duration::from_millis(400),
        );
        assert!(matches!(c.state(), State::Tripped(_)));
    }

    #[test]
    fn bad_options() {
        let e = compile(&CircuitBreaker {
            expression: "NetworkErrorRatio() >".into(),
            check_period: Some(CfgDuration::from_str_value("-1s")),
            fallback_duration: Some(CfgDuration::from_str_value("soon")),
            recovery_duration: None,
            response_code: Some(1000),
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "circuitBreaker.expression",
                "circuitBreaker.checkPeriod",
                "circuitBreaker.fallbackDuration",
                "circuitBreaker.responseCode"
            ]
        );
        assert!(e[0]
            .message
            .starts_with("invalid expression \"NetworkErrorRatio() >\": expected operand"));
        let e = compile(&CircuitBreaker::default()).unwrap_err();
        assert_eq!(
            e[0].message,
            "invalid expression \"\": the expression is empty"
        );
    }
}

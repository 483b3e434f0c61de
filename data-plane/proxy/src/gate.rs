//! [`Gated`]: a future that a `select!` polls only when it was woken itself.
//!
//! A `select!` polls every branch whenever its task wakes. A connection's task is woken a few
//! times per request by the connection's I/O, and its other branches (a client connection's
//! watchdog timer and drain signal, a backend connection's idle timer) would be polled each
//! time for nothing (a timer poll re-registers its waker). A gated branch gets its own waker
//! and is polled only after that waker fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A future polled only when something it waits on has woken it (or the task's waker
/// changed), not on every wake-up of the task that holds it.
pub(crate) struct Gated<F> {
    inner: Pin<Box<F>>,
    flag: Arc<GateWaker>,
    /// Our waker (wrapping `flag`), handed to `inner`.
    waker: Waker,
    /// The task waker last registered in `flag` (compared without taking its lock).
    task: Option<Waker>,
}

/// The wake-up flag of a [`Gated`] future, and the task to wake.
struct GateWaker {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for GateWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().ok().and_then(|t| t.clone());
        if let Some(t) = task {
            t.wake();
        }
    }
}

impl<F: Future> Gated<F> {
    pub(crate) fn new(inner: F) -> Gated<F> {
        let flag = Arc::new(GateWaker {
            // Polled once before anything can have woken it.
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Gated {
            inner: Box::pin(inner),
            waker: Waker::from(flag.clone()),
            flag,
            task: None,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let same_task = this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        if !same_task {
            let w = cx.waker().clone();
            if let Ok(mut t) = this.flag.task.lock() {
                *t = Some(w.clone());
            }
            this.task = Some(w);
        } else if !this.flag.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        this.flag.woken.store(false, Ordering::Release);
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls, then defers to a oneshot receiver.
    struct Counted(Arc<AtomicUsize>, tokio::sync::oneshot::Receiver<u8>);

    impl Future for Counted {
        type Output = u8;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.1).poll(cx).map(|r| r.unwrap())
        }
    }

    #[tokio::test]
    async fn polled_only_when_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut g = Gated::new(Counted(polls.clone(), rx));
        // Task wake-ups that are not the inner future's own do not poll it.
        for _ in 0..5 {
            let p = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut g).poll(cx))).await;
            assert!(p.is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        tx.send(7).unwrap();
        assert_eq!((&mut g).await, 7);
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}

//! The span queue: finished spans (request spans, and SDK spans through [`QueueProcessor`]) go
//! into a bounded queue (`try_send`, never waiting);
//! one task exports them in batches with a deadline. A full queue drops the span and counts it,
//! so a slow, black-holed or absent collector costs requests nothing.
//!
//! The export task is not woken per span: once it holds a span it waits up to [`DELAY`] for more
//! (OpenTelemetry's `scheduledDelay`, shortened from the SDK's 5 s so a trace shows up quickly),
//! and a sender wakes it early only when a whole batch is queued. Woken per span, a proxy at
//! 40k requests/s made thousands of small export calls a second (measured: tracing took 16–24%
//! of the throughput).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};

use crate::reqspan::Rec;

/// Most spans per export call.
const BATCH: usize = 512;

/// Longest time a finished span waits for its batch.
const DELAY: Duration = Duration::from_millis(200);

/// Counters of the exporter (register them in the process's Prometheus registry).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Spans dropped because the queue was full.
    pub dropped: Counter,
    /// Spans handed to the collector.
    pub exported: Counter,
    /// Spans lost in failed or timed-out exports.
    pub failed: Counter,
}

/// What the queue carries: an SDK span (control node, `config apply`) or a request span.
#[derive(Debug)]
pub(crate) enum Item {
    Sdk(Box<SpanData>),
    Fast(Box<Rec>),
}

/// Sends a batch (already gathered) to the collector.
pub(crate) trait Export: Send + Sync + 'static {
    fn export(&self, batch: Vec<Item>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The sending side of the queue, shared by the SDK processor and request spans.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: mpsc::Sender<Item>,
    dropped: Counter,
    /// Wakes the export task before [`DELAY`] when a whole batch is queued.
    full: Arc<Notify>,
    /// Free queue slots at or below which a batch is queued.
    wake_below: usize,
}

impl Queue {
    /// Start the export task on `handle`.
    pub(crate) fn start<E: Export>(
        exporter: E,
        capacity: usize,
        timeout: Duration,
        counters: Counters,
        handle: &tokio::runtime::Handle,
    ) -> Arc<Queue> {
        let capacity = capacity.max(1);
        let (tx, mut rx) = mpsc::channel::<Item>(capacity);
        let full = Arc::new(Notify::new());
        let c = counters.clone();
        let woken = full.clone();
        // A batch holds at most what the queue holds, so at most twice the queue is in
        // flight while an export hangs.
        let limit = BATCH.min(capacity);
        handle.spawn(async move {
            let mut batch = Vec::with_capacity(limit);
            while rx.recv_many(&mut batch, limit).await > 0 {
                if batch.len() < limit {
                    // Gather more for up to DELAY (or until a batch is queued), then take
                    // what is there.
                    let _ = tokio::time::timeout(DELAY, woken.notified()).await;
                    while batch.len() < limit {
                        match rx.try_recv() {
                            Ok(span) => batch.push(span),
                            Err(_) => break,
                        }
                    }
                }
                let n = batch.len() as u64;
                let spans = std::mem::replace(&mut batch, Vec::with_capacity(limit));
                match tokio::time::timeout(timeout, exporter.export(spans)).await {
                    Ok(Ok(())) => {
                        c.exported.inc_by(n);
                    }
                    Ok(Err(e)) => {
                        c.failed.inc_by(n);
                        tracing::debug!(error = %e, spans = n, "span export failed");
                    }
                    Err(_) => {
                        c.failed.inc_by(n);
                        tracing::debug!(spans = n, "span export timed out");
                    }
                }
            }
        });
        Arc::new(Queue {
            tx,
            dropped: counters.dropped,
            full,
            wake_below: capacity.saturating_sub(limit),
        })
    }

    /// Queues a finished span, or drops and counts it when the queue is full.
    pub(crate) fn push(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
            self.dropped.inc();
        }
        if self.tx.capacity() <= self.wake_below {
            self.full.notify_one();
        }
    }
}

/// The SDK's span processor: finished SDK spans go into the [`Queue`].
#[derive(Debug)]
pub(crate) struct QueueProcessor(pub(crate) Arc<Queue>);

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push(Item::Sdk(Box::new(span)));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

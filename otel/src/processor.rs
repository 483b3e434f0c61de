//! The span processor: finished spans go into a bounded queue (`try_send`, never waiting);
//! one task exports them in batches with a deadline. A full queue drops the span and counts it,
//! so a slow, black-holed or absent collector costs requests nothing.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// Most spans per export call.
const BATCH: usize = 512;

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

#[derive(Debug)]
pub(crate) struct QueueProcessor {
    tx: mpsc::Sender<SpanData>,
    dropped: Counter,
}

impl QueueProcessor {
    /// Start the export task on `handle`.
    pub(crate) fn start<E: SpanExporter + 'static>(
        exporter: E,
        capacity: usize,
        timeout: Duration,
        counters: Counters,
        handle: &tokio::runtime::Handle,
    ) -> QueueProcessor {
        let (tx, mut rx) = mpsc::channel::<SpanData>(capacity.max(1));
        let c = counters.clone();
        handle.spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let n = batch.len() as u64;
                let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
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
        QueueProcessor {
            tx,
            dropped: counters.dropped,
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

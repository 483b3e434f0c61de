//! Access logs (Traefik's `accessLog`): one line per request, Traefik's field names, `common`,
//! `genericCLF` or `json`, to a file or standard output.
//!
//! The request path only fills a [`Record`] (shared `Arc`s, and short copies of only the
//! request parts the configured fields show: [`Needs`], decided once per configuration; not
//! the request's `Uri`/`HeaderValue`s, which would keep hyper's read buffer shared until the
//! line is written, see [`Text`]) and offers it boxed to a bounded queue (`try_send`); a dedicated writer thread ([`writer`]) applies the filters,
//! formats and writes, in batches at most [`writer::TICK`] apart (a sender wakes it early when
//! the queue is half full). A full queue drops the line and counts it in
//! `switchyard_proxy_accesslog_dropped_total`; written lines are counted in
//! `switchyard_proxy_accesslog_lines_total`. SIGUSR1 reopens the file (log rotation). A router
//! with `observability.accessLogs: false` writes no line.

pub mod config;
pub(crate) mod line;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

pub use config::{AccessLogOptions, Fields, Filters, Format, HeaderMode};
pub(crate) use line::{request_path, Needs, Record, Text};
use switchyard_otel::recycle::{Home, Homed, Local};
use writer::{Msg, Writer};

use crate::errors::ProxyError;
use crate::metrics::Metrics;

/// The running access log of a proxy.
pub(crate) struct AccessLog {
    tx: mpsc::Sender<Msg>,
    /// Which headers a line shows (the request path selects them).
    pub fields: Fields,
    /// Which parts of the request the lines show (the request path copies only those).
    pub needs: Needs,
    dropped: Counter,
    count: AtomicU64,
    /// The writer thread, woken when the queue is half full.
    writer: std::thread::Thread,
    /// Free queue slots below which a sender wakes the writer.
    wake_below: usize,
}

impl AccessLog {
    /// Open the file (a bad path fails here), start the writer thread and, for a file, the
    /// SIGUSR1 listener.
    pub(crate) fn start(
        opts: &AccessLogOptions,
        metrics: &Metrics,
        handle: &tokio::runtime::Handle,
    ) -> Result<Arc<AccessLog>, ProxyError> {
        let file = match &opts.file_path {
            Some(p) => Some((
                p.clone(),
                writer::open(p).map_err(|e| {
                    ProxyError::Options(format!("access log file {}: {e}", p.display()))
                })?,
            )),
            None => None,
        };
        let (tx, rx) = mpsc::channel(opts.capacity());
        let dropped = Counter::default();
        let lines = Counter::default();
        metrics.register(
            "accesslog_dropped",
            "Access log lines dropped because the writer's queue was full",
            dropped.clone(),
        );
        metrics.register("accesslog_lines", "Access log lines written", lines.clone());
        let w = Writer {
            format: opts.format,
            filters: opts.filters.clone(),
            fields: opts.fields.clone(),
            lines,
        };
        let capacity = opts.capacity();
        let writer = std::thread::Builder::new()
            .name("accesslog".into())
            .spawn(move || w.run(rx, file))
            .map_err(|e| ProxyError::Options(format!("access log writer: {e}")))?
            .thread()
            .clone();
        if opts.file_path.is_some() {
            let tx = tx.clone();
            handle.spawn(reopen_on_sigusr1(tx, writer.clone()));
        }
        Ok(Arc::new(AccessLog {
            tx,
            fields: opts.fields.clone(),
            needs: line::Layout::new(opts.format, &opts.fields).needs(),
            dropped,
            count: AtomicU64::new(0),
            writer,
            wake_below: capacity / 2,
        }))
    }

    /// Traefik's `RequestCount`: requests seen since start.
    pub(crate) fn next_count(&self) -> u64 {
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Queue a finished request's line (never waits: a full queue drops it, counted). The
    /// record goes boxed: sent by value (~450 bytes), it was copied three or four times on
    /// its way through the queue, which cost more (+0.9k instructions per line, callgrind)
    /// than the box saves. The writer sends the box back to the thread that made it
    /// ([`Line`]): freed by the writer thread, the next allocation on the request's thread
    /// missed glibc's per-thread cache (~330 instructions instead of ~50).
    pub(crate) fn submit(&self, r: Box<Line>) {
        if self.tx.try_send(Msg::Line(r)).is_err() {
            self.dropped.inc();
        }
        if self.tx.capacity() <= self.wake_below {
            self.writer.unpark();
        }
    }
}

/// A line's record in a box that goes back to the thread that made it once the writer has
/// formatted it ([`switchyard_otel::recycle`]): its fields are set in place on the request
/// path, not built on the stack and copied into a new box.
pub(crate) struct Line {
    pub r: Record,
    home: Option<Arc<Home<Line>>>,
}

impl std::ops::Deref for Line {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.r
    }
}

impl std::ops::DerefMut for Line {
    fn deref_mut(&mut self) -> &mut Record {
        &mut self.r
    }
}

impl Homed for Line {
    fn home(&self) -> Option<&Arc<Home<Line>>> {
        self.home.as_ref()
    }
}

thread_local! {
    static LINES: std::cell::RefCell<Local<Line>> = std::cell::RefCell::new(Local::default());
}

impl Line {
    /// A box whose record holds nothing of a previous request ([`Record::clear`]): the
    /// request-side fields are the caller's to set.
    pub(crate) fn take() -> Box<Line> {
        LINES
            .try_with(|l| {
                let mut l = l.borrow_mut();
                l.take().unwrap_or_else(|| {
                    Box::new(Line {
                        r: Record::blank(),
                        home: Some(l.home()),
                    })
                })
            })
            .unwrap_or_else(|_| {
                Box::new(Line {
                    r: Record::blank(),
                    home: None,
                })
            })
    }
}

#[cfg(unix)]
async fn reopen_on_sigusr1(tx: mpsc::Sender<Msg>, writer: std::thread::Thread) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut sig) = signal(SignalKind::user_defined1()) else {
        tracing::warn!("access log: cannot listen for SIGUSR1; the file is never reopened");
        return;
    };
    while sig.recv().await.is_some() {
        tracing::info!("SIGUSR1: reopening the access log file");
        if tx.send(Msg::Reopen).await.is_err() {
            return;
        }
        writer.unpark();
    }
}

#[cfg(not(unix))]
async fn reopen_on_sigusr1(_tx: mpsc::Sender<Msg>, _writer: std::thread::Thread) {}

//! The writer: a dedicated thread that formats and writes lines, so neither formatting nor
//! file I/O ever runs on the request path or a runtime worker. It takes what is queued in
//! batches, formats them into one batch buffer that is written to the file as is (no
//! `BufWriter` on top: it copied every byte once more) at 64 KiB and after each batch (Traefik's
//! `bufferingSize` behaviour without blocking a request when the disk is slow: a full queue
//! drops the line and counts it). `Reopen` (sent on SIGUSR1) closes the file and opens the
//! path again, so `logrotate` can rename the file and signal.
//!
//! The thread is not woken per line: a wake-up is a futex call and a context switch that cost
//! a busy proxy more than formatting the line (measured: the access log took 31–38% of the
//! throughput with a wake per line). It sleeps up to [`TICK`] between batches, and a sender
//! wakes it early only when the queue is half full ([`super::AccessLog::submit`]). A line is
//! therefore on disk at most [`TICK`] after its request ended.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::config::{Fields, Filters, Format};
use super::line::{Layout, Scratch};
use super::Line;

/// Longest time a queued line waits for the writer.
pub(crate) const TICK: Duration = Duration::from_millis(50);

/// Lines formatted per reading of the clock (their `time` field, whole seconds): a batch of
/// this many takes microseconds, so the field is still the second the line was written.
const CLOCK_EVERY: u32 = 32;

/// What the writer is sent.
pub(crate) enum Msg {
    Line(Box<Line>),
    Reopen,
}

/// Where lines go.
enum Out {
    Stdout,
    /// Written straight from the batch buffer (no second buffer: a `BufWriter` copied every
    /// byte once more).
    File(PathBuf, File),
}

/// Open (creating its directory) `path` for appending.
pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

pub(crate) struct Writer {
    pub format: Format,
    pub filters: Filters,
    pub fields: Fields,
    /// Lines written.
    pub lines: Counter,
}

impl Writer {
    /// Run until every sender is gone. `file`: the already opened file and its path.
    pub(crate) fn run(self, mut rx: mpsc::Receiver<Msg>, file: Option<(PathBuf, File)>) {
        let mut out = match file {
            Some((p, f)) => Out::File(p, f),
            None => Out::Stdout,
        };
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut failing = false;
        let layout = Layout::new(self.format, &self.fields);
        let mut scratch = Scratch::default();
        // Formatted lines' boxes, sent back to the request threads after each batch.
        let mut back = switchyard_otel::recycle::Returns::default();
        loop {
            let mut wrote = false;
            let mut lines = 0u32;
            let closed = loop {
                let msg = match rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                };
                wrote = true;
                match msg {
                    Msg::Line(mut r) => {
                        if lines.is_multiple_of(CLOCK_EVERY) {
                            scratch.read_clock();
                        }
                        lines = lines.wrapping_add(1);
                        if self.filters.keep(r.status, r.retries, r.duration) {
                            r.write_with(&layout, &mut scratch, &mut buf);
                            self.lines.inc();
                        }
                        r.clear();
                        back.push(r);
                    }
                    Msg::Reopen => {
                        write_out(&mut out, &mut buf, &mut failing);
                        if let Out::File(path, w) = &mut out {
                            match open(path) {
                                Ok(f) => *w = f,
                                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                                    "access log: reopening failed; still writing the old file"),
                            }
                        }
                    }
                }
                if buf.len() >= 64 * 1024 {
                    write_out(&mut out, &mut buf, &mut failing);
                }
            };
            if wrote {
                back.send();
                write_out(&mut out, &mut buf, &mut failing);
                if let Out::Stdout = out {
                    note(std::io::stdout().flush(), &mut failing);
                }
            }
            if closed {
                return;
            }
            std::thread::park_timeout(TICK);
        }
    }
}

fn write_out(out: &mut Out, buf: &mut Vec<u8>, failing: &mut bool) {
    if buf.is_empty() {
        return;
    }
    let r = match out {
        Out::File(_, w) => w.write_all(buf),
        Out::Stdout => std::io::stdout().lock().write_all(buf),
    };
    buf.clear();
    note(r, failing);
}

/// Log a write failure once (until writes succeed again).
fn note(r: std::io::Result<()>, failing: &mut bool) {
    match r {
        Ok(()) => *failing = false,
        Err(e) => {
            if !*failing {
                tracing::warn!(error = %e, "access log: write failed");
            }
            *failing = true;
        }
    }
}

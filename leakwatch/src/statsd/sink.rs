//! The sink under the queue: a buffered UDP sink that paces itself and counts what it passed on.
//!
//! It runs on cadence's queue worker thread only, never on the caller's: sleeping here to
//! pace a burst costs the application nothing (the bounded queue absorbs it, and what does
//! not fit is refused and counted by the exporter).

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cadence::{MetricSink, SinkStats, UdpMetricSink};

use super::batch::unframe;
use crate::event::EventCounter;
use crate::registry::Registry;

/// Name of the [`EventCounter`] (metric `count.statsd.refused`) that counts sends the
/// socket refused because nothing listens at the daemon's address: the kernel learns it from
/// an ICMP "port unreachable" answering an earlier datagram and reports it on the next send.
/// Each refusal means at least one datagram was lost besides the refused chunk (whose lines
/// are counted in `statsd.dropped`). Created at the first refusal, so a healthy setup
/// exports no such series.
pub(crate) const REFUSED_COUNTER: &str = "statsd.refused";

/// Progress shared between the worker (which writes it) and `flush` (which waits on it).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Queue entries (chunks) handed to the UDP buffer (sent or failed), i.e. no longer in the queue or in
    /// flight on the worker. cadence's own `drained()` is bumped *before* the wrapped sink
    /// runs, so it cannot tell `flush` that the last line reached the buffer.
    pub(crate) passed: AtomicU64,
    /// Lines accepted by the queue (written by the exporter) and lines handed to the UDP
    /// buffer (by the worker): their difference is what a shutdown that timed out loses.
    pub(crate) submitted_lines: AtomicU64,
    pub(crate) passed_lines: AtomicU64,
    /// Set when the last exporter handle is dropped: the program may be about to exit, so
    /// the backlog goes out at full speed rather than be cut off at the flush timeout.
    pub(crate) unpaced: AtomicBool,
}

/// Pacing window: long enough that sleeping costs little CPU (a sleep per millisecond
/// cost ~8 ms of CPU per 40 000 lines), short enough that one window's burst (1 000 lines,
/// ~60 KB at the default rate, plus at most one datagram sent before the pause) fits the
/// daemon's default 208 KiB receive buffer.
const WINDOW: Duration = Duration::from_millis(10);

/// A [`UdpMetricSink`] that sends about `lines_per_window` lines per [`WINDOW`] at most.
///
/// Each queue entry is one datagram already (see `batch`), so it goes out as it is: one
/// `send` per entry, with no second buffer to copy it into and flush.
///
/// Node's statsd cannot drain a socket as fast as Rust fills it: a burst of 200 000 lines
/// lost 79 % in the research runs, while ~170 000 lines/s arrived intact. Pacing keeps a large
/// export (10 000 series) from overflowing the daemon's receive buffer.
pub(crate) struct PacedSink {
    inner: UdpMetricSink,
    progress: Arc<Progress>,
    /// `statsd.dropped`: lines of a chunk whose send failed are counted here, by line like
    /// every other drop (an error handler on cadence's queue would see one error per chunk).
    dropped: AssertUnwindSafe<EventCounter>,
    /// `statsd.refused`: sends refused with ECONNREFUSED (no daemon at the address),
    /// registered in `registry` at the first refusal.
    refused: AssertUnwindSafe<OnceLock<EventCounter>>,
    registry: AssertUnwindSafe<Registry>,
    lines_per_window: u64,
    start: Instant,
    /// Current window number (since `start`) and lines sent in it; only the worker touches
    /// these, atomics just keep the type `Sync`.
    window: AtomicU64,
    in_window: AtomicU64,
}

impl PacedSink {
    pub(crate) fn new(
        inner: UdpMetricSink,
        progress: Arc<Progress>,
        dropped: EventCounter,
        registry: Registry,
        lines_per_second: u64,
    ) -> Self {
        let per_window = lines_per_second.saturating_mul(WINDOW.as_millis() as u64) / 1000;
        PacedSink {
            inner,
            progress,
            // cadence wants an unwind-safe sink; a counter is consistent at any point.
            dropped: AssertUnwindSafe(dropped),
            refused: AssertUnwindSafe(OnceLock::new()),
            registry: AssertUnwindSafe(registry),
            lines_per_window: per_window.max(1),
            start: Instant::now(),
            window: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
        }
    }

    /// Counts `lines` just sent; past the window's budget, sleeps to the next window.
    fn pace(&self, lines: u64) {
        let window = (self.start.elapsed().as_nanos() / WINDOW.as_nanos()) as u64;
        if window != self.window.load(Ordering::Relaxed) {
            self.window.store(window, Ordering::Relaxed);
            self.in_window.store(0, Ordering::Relaxed);
        }
        let sent = self.in_window.fetch_add(lines, Ordering::Relaxed) + lines;
        if sent >= self.lines_per_window {
            // Sleep for the windows this chunk used up, from the start of the current one.
            // In nanoseconds: a `u32` window count would wrap after 497 days of uptime and
            // silently stop the pacing.
            let windows = window.saturating_add(sent / self.lines_per_window);
            let next = Duration::from_nanos(windows.saturating_mul(WINDOW.as_nanos() as u64));
            // In slices of a window: a slow pace can mean seconds of sleep for one chunk, and
            // a shutdown switching the pacing off must not wait for them.
            while !self.progress.unpaced.load(Ordering::Relaxed)
                && let Some(wait) = next.checked_sub(self.start.elapsed())
                && !wait.is_zero()
            {
                std::thread::sleep(wait.min(WINDOW));
            }
        }
    }
}

impl MetricSink for PacedSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        // A queue entry is a framed chunk of newline-joined lines: its header says how many
        // (see `batch`). A failed send is counted here, per line; the error still goes back
        // to cadence (its queue has no handler, so it goes no further).
        let (lines, datagram) = unframe(metric);
        let r = self.inner.emit(datagram);
        if let Err(e) = &r {
            self.dropped.add(lines);
            if e.kind() == io::ErrorKind::ConnectionRefused {
                self.refused
                    .get_or_init(|| EventCounter::new_in(&self.registry, REFUSED_COUNTER))
                    .incr();
            }
        }
        self.progress
            .passed_lines
            .fetch_add(lines, Ordering::Relaxed);
        self.progress.passed.fetch_add(1, Ordering::Release);
        if !self.progress.unpaced.load(Ordering::Relaxed) {
            self.pace(lines);
        }
        r
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    fn stats(&self) -> SinkStats {
        self.inner.stats()
    }
}

//! The queue between callers and the sending thread, and that thread: a bounded channel of
//! datagram-sized chunks, sent one UDP datagram each, paced, with their buffers handed back.
//!
//! Buffers go round: a caller fills a chunk, the sender thread sends it and returns the
//! emptied buffer through a second channel, and the next chunk is written into it. So an
//! export of 10 000 series allocates, copies and frees no chunk (cadence's queue, used
//! before, copied each chunk into a fresh `String` that the sender thread then freed: about a
//! fifth of that thread's time when every series changed, plus page faults on both sides).
//!
//! Sleeping to pace a burst happens on the sender thread only: it costs the application
//! nothing (the bounded queue absorbs the burst, and what does not fit is refused and
//! counted by the exporter).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::EventCounter;
use crate::registry::Registry;

/// Name of the [`EventCounter`] (metric `count.statsd.refused`) that counts sends the
/// socket refused because nothing listens at the daemon's address: the kernel learns it from
/// an ICMP "port unreachable" answering an earlier datagram and reports it on the next send.
/// Each refusal means at least one datagram was lost besides the refused chunk (whose lines
/// are counted in `statsd.dropped`). Created at the first refusal, so a healthy setup
/// exports no such series.
pub(crate) const REFUSED_COUNTER: &str = "statsd.refused";

/// Spare buffers kept for reuse, in bytes at most: enough for an export of 10 000 changed
/// series (~2.4 MB of lines), so a steady export allocates nothing; a bigger backlog's
/// extra buffers are freed once sent.
const POOL_BYTES: usize = 4 << 20;

/// Progress shared between the sender thread (which writes it) and the exporter.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Lines accepted by the queue (written by callers) and lines handed to the socket, sent
    /// or failed (by the sender thread): their difference is what a shutdown that timed out
    /// loses.
    pub(crate) submitted_lines: AtomicU64,
    pub(crate) passed_lines: AtomicU64,
    /// Set when the last exporter handle is dropped: the program may be about to exit, so
    /// the backlog goes out at full speed rather than be cut off at the flush timeout.
    pub(crate) unpaced: AtomicBool,
}

/// What travels to the sender thread.
enum Message {
    /// One datagram's text and its number of lines.
    Chunk(String, u64),
    /// Answer on the channel once every message before this one was handled (`flush`).
    Flush(Sender<()>),
}

/// Pacing window: long enough that sleeping costs little CPU (a sleep per millisecond
/// cost ~8 ms of CPU per 40 000 lines), short enough that one window's burst (1 000 lines,
/// ~60 KB at the default rate) fits the daemon's default 208 KiB receive buffer.
const WINDOW: Duration = Duration::from_millis(10);

/// The callers' side: a bounded queue of chunks and the pool of emptied buffers.
pub(crate) struct ChunkQueue {
    /// Dropping it disconnects the channel, which ends the sender thread once it has sent
    /// what is queued.
    tx: Sender<Message>,
    pool: Receiver<String>,
    progress: Arc<Progress>,
    datagram_size: usize,
}

impl ChunkQueue {
    /// Starts the sender thread on `socket`, which sends to `target`, or, when that is
    /// `None`, to the address it is connected to (see the exporter's `build`).
    pub(crate) fn start(
        socket: UdpSocket,
        target: Option<SocketAddr>,
        capacity: usize,
        datagram_size: usize,
        sender: SenderCounters,
        lines_per_second: u64,
    ) -> io::Result<ChunkQueue> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let spare = (POOL_BYTES / datagram_size).clamp(1, capacity);
        let (pool_tx, pool) = crossbeam_channel::bounded(spare);
        let progress = Arc::new(Progress::default());
        let per_window = lines_per_second.saturating_mul(WINDOW.as_millis() as u64) / 1000;
        let mut thread = SenderThread {
            socket,
            target,
            progress: progress.clone(),
            counters: sender,
            pool: pool_tx,
            datagram_size,
            lines_per_window: per_window.max(1),
            start: Instant::now(),
            window: 0,
            in_window: 0,
        };
        std::thread::Builder::new()
            .name("leakwatch-statsd-send".into())
            .spawn(move || thread.run(rx))?;
        Ok(ChunkQueue {
            tx,
            pool,
            progress,
            datagram_size,
        })
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// An empty buffer for the next chunk: one the sender thread handed back, else a new one.
    pub(crate) fn buffer(&self) -> String {
        self.pool
            .try_recv()
            .unwrap_or_else(|_| String::with_capacity(self.datagram_size))
    }

    /// Queues `chunk` (`lines` newline-joined lines) without waiting; a full queue gives it
    /// back.
    pub(crate) fn try_send(&self, chunk: String, lines: u64) -> Result<(), String> {
        // Counted before the send so the sender's `passed_lines` never overtakes it.
        self.progress
            .submitted_lines
            .fetch_add(lines, Ordering::Relaxed);
        match self.tx.try_send(Message::Chunk(chunk, lines)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => {
                self.progress
                    .submitted_lines
                    .fetch_sub(lines, Ordering::Relaxed);
                match m {
                    Message::Chunk(chunk, _) => Err(chunk),
                    Message::Flush(_) => unreachable!("a chunk was sent"),
                }
            }
        }
    }

    /// Chunks waiting in the queue.
    pub(crate) fn len(&self) -> usize {
        self.tx.len()
    }

    /// Waits (at most `timeout`; one too long for the clock: no limit) until every chunk
    /// queued before this call was handed to the socket. A marker goes through the queue
    /// behind them, so the answer is exact whichever threads queued them, and waiting costs
    /// no polling.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let deadline = Instant::now().checked_add(timeout);
        let sent = match deadline {
            Some(d) => self.tx.send_deadline(Message::Flush(done_tx), d).is_ok(),
            None => self.tx.send(Message::Flush(done_tx)).is_ok(),
        };
        sent && match deadline {
            Some(d) => done.recv_deadline(d).is_ok(),
            None => done.recv().is_ok(),
        }
    }
}

/// The counters the sender thread writes besides [`Progress`].
pub(crate) struct SenderCounters {
    /// `statsd.dropped`: lines of a chunk whose send failed, counted by line like every
    /// other drop.
    pub(crate) dropped: EventCounter,
    /// Where `statsd.refused` is registered at the first refusal.
    pub(crate) registry: Registry,
}

/// The sender thread's state: it owns the socket.
struct SenderThread {
    socket: UdpSocket,
    /// `None`: the socket is connected (it then hears refusals, and skips a route lookup).
    target: Option<SocketAddr>,
    progress: Arc<Progress>,
    counters: SenderCounters,
    pool: Sender<String>,
    datagram_size: usize,
    lines_per_window: u64,
    start: Instant,
    /// Current window number (since `start`) and lines sent in it.
    window: u64,
    in_window: u64,
}

impl SenderThread {
    /// Sends until every `ChunkQueue` handle is gone and the queue is empty.
    fn run(&mut self, rx: Receiver<Message>) {
        let mut refused: Option<EventCounter> = None;
        for message in rx {
            let (mut chunk, lines) = match message {
                Message::Chunk(chunk, lines) => (chunk, lines),
                Message::Flush(done) => {
                    let _ = done.try_send(());
                    continue;
                }
            };
            if let Err(e) = self.send(chunk.as_bytes()) {
                self.counters.dropped.add(lines);
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    refused
                        .get_or_insert_with(|| {
                            EventCounter::new_in(&self.counters.registry, REFUSED_COUNTER)
                        })
                        .incr();
                }
            }
            self.progress
                .passed_lines
                .fetch_add(lines, Ordering::Relaxed);
            // Only full-size buffers go back (an alert's one-line chunk would have to grow);
            // past the pool's bound the buffer is freed here.
            if chunk.capacity() >= self.datagram_size {
                chunk.clear();
                let _ = self.pool.try_send(chunk);
            }
            if !self.progress.unpaced.load(Ordering::Relaxed) {
                self.pace(lines);
            }
        }
    }

    /// One datagram; on a connected socket, a refusal the kernel heard comes back here.
    fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        match self.target {
            None => self.socket.send(datagram),
            Some(target) => self.socket.send_to(datagram, target),
        }
    }

    /// Counts `lines` just sent; past the window's budget, sleeps to the next window.
    ///
    /// Node's statsd cannot drain a socket as fast as Rust fills it: a burst of 200 000
    /// lines lost 79 % in the research runs, while ~170 000 lines/s arrived intact. Pacing
    /// keeps a large export (10 000 series) from overflowing the daemon's receive buffer.
    fn pace(&mut self, lines: u64) {
        let window = (self.start.elapsed().as_nanos() / WINDOW.as_nanos()) as u64;
        if window != self.window {
            self.window = window;
            self.in_window = 0;
        }
        self.in_window += lines;
        if self.in_window >= self.lines_per_window {
            // Sleep for the windows this chunk used up, from the start of the current one.
            // In nanoseconds: a `u32` window count would wrap after 497 days of uptime and
            // silently stop the pacing.
            let windows = window.saturating_add(self.in_window / self.lines_per_window);
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

//! One SSE stream: its queue, its task, and the `Drop` guard that is the single place where
//! everything a stream owns is released.
//!
//! Once the request head is parsed, the stream owns its socket directly (no HTTP framework on
//! the stream path): an idle stream then costs its task, this module's small shared state and
//! the kernel's socket, not hyper's two 8 KB per-connection buffers (see README, "Memory").

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use crate::app::App;
use crate::fixture::{FlowIx, UserId};
use crate::frame;
use crate::hub::Resync;
use crate::lw::{AliveFlag, CloseReason, Connection, Scope, Subscription, Tracker};
use crate::presence::{PresenceEvent, Reservation};
use crate::raw;

/// A stream's id, unique within a server.
pub type StreamId = u64;

/// What [`StreamShared::push`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued for writing.
    Queued,
    /// The queue was full: the stream is closed as a slow consumer (its client resumes with
    /// Last-Event-ID).
    Overflow,
    /// The stream has closed.
    Closed,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// Extra room for a replay queued at subscribe time, given back at the first drain.
    allowance: usize,
    overflowed: bool,
    closed: bool,
}

/// The part of a stream that publishers reach: its bounded queue and wake-up.
#[cfg_attr(feature = "instrument", leakwatch::tracked(name = "stream.Shared"))]
pub struct StreamShared {
    id: StreamId,
    user: UserId,
    cap: usize,
    queue: Mutex<Queue>,
    notify: Notify,
    /// Signalled on overflow, so a write blocked on a full socket gives up at once.
    overflow: Notify,
    /// The newest presence id queued, so a change seen through two shared flows is sent once.
    last_presence: AtomicU64,
    /// Where the seed's buggy 1-to-1 completion keeps its registrations (see `faults`).
    late: Mutex<LateSubs>,
    // Read only by `#[tracked]`, which the uninstrumented build leaves out.
    #[cfg_attr(not(feature = "instrument"), allow(dead_code))]
    tracker: Tracker<Self>,
}

#[derive(Default)]
pub(crate) struct LateSubs {
    pub(crate) subs: Vec<Subscription>,
    /// How many of `subs` were made while the stream was open (counted as expected).
    pub(crate) counted: u64,
    pub(crate) closed: bool,
}

impl StreamShared {
    fn new(id: StreamId, user: UserId, cap: usize) -> StreamShared {
        StreamShared {
            id,
            user,
            cap: cap.max(1),
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            overflow: Notify::new(),
            last_presence: AtomicU64::new(0),
            late: Mutex::new(LateSubs::default()),
            tracker: Tracker::new(),
        }
    }

    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The stream's user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// Queues a frame; on overflow the stream is told to close.
    pub fn push(&self, frame: &Bytes) -> Push {
        let mut q = self.queue.lock();
        if q.closed {
            return Push::Closed;
        }
        let result = if q.frames.len() >= self.cap + q.allowance {
            if !q.overflowed {
                q.overflowed = true;
                self.overflow.notify_one();
            }
            Push::Overflow
        } else {
            q.frames.push_back(frame.clone());
            Push::Queued
        };
        drop(q);
        self.notify.notify_one();
        result
    }

    /// Queues the replay of a resume, ahead of any live frame.
    pub(crate) fn queue_replay(&self, frames: impl ExactSizeIterator<Item = Bytes>) {
        let mut q = self.queue.lock();
        q.allowance = frames.len();
        q.frames.extend(frames);
        drop(q);
        self.notify.notify_one();
    }

    /// Queues a presence change unless it is about this stream's own user or already queued.
    pub fn push_presence(&self, ev: &PresenceEvent) {
        if ev.user == self.user {
            return;
        }
        if self.last_presence.fetch_max(ev.frame.id, Ordering::AcqRel) >= ev.frame.id {
            return;
        }
        self.push(&ev.frame.bytes);
    }

    fn take(&self) -> Result<VecDeque<Bytes>, Cause> {
        let mut q = self.queue.lock();
        if q.overflowed {
            return Err(Cause::SlowConsumer);
        }
        q.allowance = 0;
        Ok(std::mem::take(&mut q.frames))
    }

    fn close(&self) {
        let mut q = self.queue.lock();
        q.closed = true;
        q.frames = VecDeque::new();
    }

    pub(crate) fn late(&self) -> parking_lot::MutexGuard<'_, LateSubs> {
        self.late.lock()
    }
}

/// Why a stream ended, counted as `count.streams.closed.<label>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The client closed its socket cleanly.
    ClientClosed,
    /// The peer reset or broke the connection.
    Aborted,
    /// Writes stalled for two heartbeats, or the kernel gave up on the peer.
    Dead,
    /// The queue overflowed.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// Answered 409 (resume impossible) before streaming.
    Resync,
    /// Ended by `POST /debug/streams/close`.
    Cut,
}

impl Cause {
    /// Every cause, for registering counters up front.
    pub const ALL: [Cause; 7] = [
        Cause::ClientClosed,
        Cause::Aborted,
        Cause::Dead,
        Cause::SlowConsumer,
        Cause::Shutdown,
        Cause::Resync,
        Cause::Cut,
    ];

    /// Counter label.
    pub fn label(self) -> &'static str {
        match self {
            Cause::ClientClosed => "client_closed",
            Cause::Aborted => "aborted",
            Cause::Dead => "dead",
            Cause::SlowConsumer => "slow_consumer",
            Cause::Shutdown => "shutdown",
            Cause::Resync => "resync",
            Cause::Cut => "cut",
        }
    }

    fn reason(self) -> CloseReason {
        match self {
            Cause::ClientClosed | Cause::Shutdown | Cause::Resync | Cause::Cut => {
                CloseReason::Normal
            }
            Cause::Aborted => CloseReason::Aborted,
            Cause::Dead => CloseReason::Dead,
            Cause::SlowConsumer => CloseReason::Error,
        }
    }
}

/// What a parsed, authorised stream request asks for.
pub struct OpenStream {
    /// The user.
    pub user: UserId,
    /// The flows, resolved.
    pub flows: Vec<FlowIx>,
    /// Starts active?
    pub active: bool,
    /// Resume after this id.
    pub resume: Option<u64>,
    /// The user's stream slot (per-user limit).
    pub slot: Reservation,
    /// The client's address (for logs).
    pub peer: SocketAddr,
}

/// Owns everything a stream holds; dropping it releases all of it, whichever way the stream
/// ended. The close-race fault is the one path that keeps it (see `faults`).
pub(crate) struct StreamGuard {
    app: Arc<App>,
    shared: Arc<StreamShared>,
    flows: Vec<FlowIx>,
    subs: Vec<Subscription>,
    /// `Some(active)` once the user was counted online through this stream.
    online: Option<bool>,
    cause: Cause,
    scope: Scope,
    conn: Connection,
    slot: Option<Reservation>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let app = &self.app;
        app.hub.unsubscribe(self.shared.id, &self.flows);
        self.shared.close();
        let late = {
            let mut late = self.shared.late();
            late.closed = true;
            app.metrics.expected_callbacks_sub(late.counted);
            late.counted = 0;
            std::mem::take(&mut late.subs)
        };
        drop(late);
        app.metrics.expected_callbacks_sub(self.subs.len() as u64);
        self.subs.clear();
        if let Some(active) = self.online.take() {
            app.presence.stream_closed(self.shared.user, active);
        }
        drop(self.slot.take());
        self.scope.close();
        if self.conn.close(self.cause.reason()) {
            app.metrics.closed(self.cause);
        }
    }
}

/// Marks the socket gone when the stream's task ends, whatever happened to the guard: the
/// reaper's liveness check.
struct SocketAlive(AliveFlag);

impl Drop for SocketAlive {
    fn drop(&mut self) {
        self.0.set_dead();
    }
}

/// The response head and the first bytes of every stream (`retry:`, see [`frame::RETRY`]).
const HEAD_200: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n";

/// Serves one stream on `sock` until it ends.
pub async fn run(app: Arc<App>, mut sock: TcpStream, open: OpenStream) {
    let OpenStream {
        user,
        flows,
        active,
        resume,
        slot,
        peer,
    } = open;
    // Declared before the guard, so dropped after it: a normally closing stream is closed
    // before it reads as dead, and the reaper never takes it.
    let alive = AliveFlag::new();
    let _socket_alive = SocketAlive(alive.clone());
    let conn = app.metrics.streams.open(alive.checker());
    let shared = Arc::new(StreamShared::new(
        app.next_stream_id(),
        user,
        app.config.queue_frames,
    ));
    let mut guard = StreamGuard {
        app: app.clone(),
        shared: shared.clone(),
        flows: Vec::new(),
        subs: Vec::new(),
        online: None,
        cause: Cause::ClientClosed,
        scope: Scope::builder("stream")
            .registry(&app.metrics.registry)
            .open(),
        conn,
        slot: Some(slot),
    };
    {
        // If this stream's close never arrives (the close-race fault), the reaper finds its
        // socket gone and drops the guard that was left behind.
        let lost = Arc::downgrade(&app.lost);
        let id = shared.id;
        guard.conn.on_reap(move || {
            if let Some(lost) = lost.upgrade() {
                let guard = lost.lock().remove(&id);
                drop(guard);
            }
        });
    }

    // The 1-to-1 lookup starts at once and runs concurrently with the resume check below, so
    // a fast 409 can end the stream before it completes: the seed's second bug lives here.
    let (tx, mut lookup_rx) = oneshot::channel::<Vec<UserId>>();
    tokio::spawn(crate::conversations::lookup_for_stream(
        app.clone(),
        shared.clone(),
        tx,
    ));

    if let Err(resync) = app.hub.subscribe(&shared, &flows, resume) {
        guard.cause = Cause::Resync;
        app.metrics.resync(resync);
        let _ = write_with_timeout(&mut sock, &resync_response(resync, resume), &app).await;
        return;
    }
    guard.flows = flows;
    if let Err(cause) = write_with_timeout(&mut sock, HEAD_200, &app).await {
        guard.cause = cause;
        return;
    }
    app.metrics.status(200);
    app.presence.stream_opened(user, active);
    guard.online = Some(active);
    for &f in &guard.flows {
        let s = shared.clone();
        match app
            .presence
            .flow_callbacks(f)
            .register_in(&guard.scope, move |ev: &PresenceEvent| s.push_presence(ev))
        {
            Ok(sub) => guard.subs.push(sub),
            // The scope closes only when this guard drops, so this cannot happen here; the
            // scope would report it if it did.
            Err(_) => tracing::warn!(stream = shared.id, "presence registration refused"),
        }
    }
    app.metrics.expected_callbacks_add(guard.subs.len() as u64);
    tracing::debug!(stream = shared.id, user, %peer, "stream open");

    let mut shutdown = app.shutdown.clone();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + app.config.heartbeat,
        app.config.heartbeat,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lookup_pending = true;
    let mut scratch = [0u8; 64];
    let already_down = *shutdown.borrow_and_update();
    let mut cut = app.cut.subscribe();
    guard.cause = loop {
        if already_down {
            break Cause::Shutdown;
        }
        tokio::select! {
            biased;
            // Only ever changes to true (or the server is gone): either way, stop.
            _ = shutdown.changed() => break Cause::Shutdown,
            _ = cut.changed() => break Cause::Cut,
            _ = shared.notify.notified() => {
                let frames = match shared.take() {
                    Ok(f) => f,
                    Err(cause) => break cause,
                };
                if let Err(cause) = write_frames(&mut sock, frames, &app, &shared).await {
                    break cause;
                }
            }
            ready = sock.readable() => {
                if ready.is_err() {
                    break Cause::Aborted;
                }
                match sock.try_read(&mut scratch) {
                    Ok(0) => break Cause::ClientClosed,
                    // A client has nothing to say on an event stream; bytes are ignored.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => break io_cause(&e),
                }
            }
            _ = heartbeat.tick() => {
                if let Err(cause) = write_with_timeout(&mut sock, frame::HEARTBEAT, &app).await {
                    break cause;
                }
            }
            partners = &mut lookup_rx, if lookup_pending => {
                lookup_pending = false;
                if let Ok(partners) = partners {
                    register_one_to_ones(&app, &shared, &mut guard, &partners);
                }
            }
        }
    };

    if guard.cause == Cause::Aborted && app.faults.loses_close() {
        // FAULT close-race (io.js #1309): the close notification of this aborted stream never
        // arrives, so nothing releases what it holds. Only the reaper can find it now.
        let id = shared.id;
        app.lost.lock().insert(id, guard);
    }
}

/// The correct completion of the 1-to-1 lookup: on the stream's own task, in its scope, so a
/// registration can never outlive the stream.
fn register_one_to_ones(
    app: &Arc<App>,
    shared: &Arc<StreamShared>,
    guard: &mut StreamGuard,
    partners: &[UserId],
) {
    let mut n = 0u64;
    for &p in partners {
        let Some(cbs) = app.presence.one_to_one_callbacks(p) else {
            continue;
        };
        let s = shared.clone();
        if let Ok(sub) =
            cbs.register_in(&guard.scope, move |ev: &PresenceEvent| s.push_presence(ev))
        {
            guard.subs.push(sub);
            n += 1;
        }
    }
    app.metrics.expected_callbacks_add(n);
}

fn io_cause(e: &io::Error) -> Cause {
    match e.kind() {
        io::ErrorKind::TimedOut => Cause::Dead,
        _ => Cause::Aborted,
    }
}

async fn write_frames(
    sock: &mut TcpStream,
    frames: VecDeque<Bytes>,
    app: &App,
    shared: &StreamShared,
) -> Result<(), Cause> {
    let write = async {
        match frames.len() {
            0 => Ok(()),
            1 => write_with_timeout(sock, &frames[0], app).await,
            _ => {
                let mut buf = Vec::with_capacity(frames.iter().map(|f| f.len()).sum());
                for f in &frames {
                    buf.extend_from_slice(f);
                }
                write_with_timeout(sock, &buf, app).await
            }
        }
    };
    // A client that stops reading blocks this write once the kernel's buffers are full; the
    // queue then overflows, and the stream closes as a slow consumer without waiting for
    // the write timeout.
    tokio::select! {
        r = write => r,
        _ = shared.overflow.notified() => Err(Cause::SlowConsumer),
    }
}

/// Writes all of `bytes`; a write that does not finish within two heartbeats means the peer
/// stopped reading or vanished.
async fn write_with_timeout(sock: &mut TcpStream, bytes: &[u8], app: &App) -> Result<(), Cause> {
    match tokio::time::timeout(app.config.heartbeat * 2, sock.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(io_cause(&e)),
        Err(_) => Err(Cause::Dead),
    }
}

fn resync_response(resync: Resync, last: Option<u64>) -> Vec<u8> {
    raw::json_response(
        409,
        &serde_json::json!({
            "error": "resync",
            "reason": resync.label(),
            "message": resync.message(),
            "last_event_id": last,
            "reconnect_without_last_event_id": true,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_with_the_retry_field_after_a_complete_response_head() {
        let text = std::str::from_utf8(HEAD_200).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Type: text/event-stream"));
        assert_eq!(body.as_bytes(), frame::RETRY);
    }
}

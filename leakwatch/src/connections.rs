//! Connection tracking with closes by reason and a dead-connection reaper.
//!
//! In the seed story the HTTP server sometimes never fired `close` for an aborted response, so
//! per-connection cleanup never ran. The fix was a timer that asks each open connection whether
//! it is still alive and closes the dead ones. [`Connections`] does that: every open connection
//! has a liveness check, [`Connections::reap_now`] (or the [`Reaper`] thread) closes the dead
//! ones with [`CloseReason::Dead`], counts them as `reaped`, and runs their reap hook so the
//! owner can clean up.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use crate::series::Series;
use crate::series::{Extra, SeriesKind};
use crate::token::Token;

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The exchange finished as intended.
    Normal,
    /// The peer went away mid-exchange and we noticed.
    Aborted,
    /// Found dead by a liveness check (the close event never came).
    Dead,
    /// Closed because of an error on our side.
    Error,
}

impl CloseReason {
    fn extra(self) -> Extra {
        match self {
            CloseReason::Normal => Extra::ClosedNormal,
            CloseReason::Aborted => Extra::ClosedAborted,
            CloseReason::Dead => Extra::ClosedDead,
            CloseReason::Error => Extra::ClosedError,
        }
    }
}

/// Shared so the reaper can call checks after letting go of the `open` lock: they are user
/// code and may use the tracker themselves.
type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;
type ReapHook = Box<dyn FnOnce() + Send>;

struct ConnState {
    /// Present while open; taking it out is what closes the connection (exactly once).
    token: Mutex<Option<Token>>,
    on_reap: Mutex<Option<ReapHook>>,
    /// Held here, not only by the tracker, so a connection that outlives its tracker still
    /// closes and counts.
    series: Arc<Series>,
}

impl ConnState {
    fn close(&self, reason: CloseReason) -> bool {
        let token = self.token.lock().take();
        match token {
            Some(t) => {
                self.series.bump(reason.extra(), 1);
                drop(t);
                true
            }
            None => false,
        }
    }
}

struct Open {
    liveness: Liveness,
    state: Arc<ConnState>,
}

struct Shared {
    series: Arc<Series>,
    open: Mutex<BTreeMap<u64, Open>>,
    next_id: AtomicU64,
    hook_panics: AtomicU64,
}

/// A tracker of open connections under one name.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use leakwatch::{CloseReason, Connections};
///
/// let reg = leakwatch::Registry::new();
/// let streams = Connections::new_in(&reg, "http.streams");
/// let socket_alive = Arc::new(AtomicBool::new(true));
/// let alive = socket_alive.clone();
/// let conn = streams.open(move || alive.load(Ordering::Relaxed));
/// assert_eq!(streams.open_count(), 1);
///
/// socket_alive.store(false, Ordering::Relaxed); // the peer vanished, no close event came
/// assert_eq!(streams.reap_now(), 1);
/// assert_eq!(conn.closed(), true);
/// let s = reg.snapshot();
/// assert_eq!(s.get("http.streams").unwrap().extra("reaped"), 1);
/// ```
#[derive(Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("name", &self.shared.series.name)
            .field("open", &self.open_count())
            .finish()
    }
}

impl Connections {
    /// A tracker counted under `name` in the global registry.
    pub fn new(name: &str) -> Self {
        Self::new_in(Registry::global(), name)
    }

    /// A tracker counted under `name` in `registry`.
    pub fn new_in(registry: &Registry, name: &str) -> Self {
        Connections {
            shared: Arc::new(Shared {
                series: registry.series(SeriesKind::Connections, name),
                open: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                hook_panics: AtomicU64::new(0),
            }),
        }
    }

    /// Opens a connection. `liveness` is asked by the reaper whether the peer is still there
    /// (e.g. "is the socket's sender still open?"); it must be cheap and must not block.
    #[track_caller]
    pub fn open(&self, liveness: impl Fn() -> bool + Send + Sync + 'static) -> Connection {
        let token = Token::for_series(self.shared.series.clone(), Location::caller());
        let state = Arc::new(ConnState {
            token: Mutex::new(Some(token)),
            on_reap: Mutex::new(None),
            series: self.shared.series.clone(),
        });
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.open.lock().insert(
            id,
            Open {
                liveness: Arc::new(liveness),
                state: state.clone(),
            },
        );
        Connection {
            id,
            state,
            owner: Arc::downgrade(&self.shared),
        }
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.shared.open.lock().len()
    }

    /// Reap hooks that panicked (caught; the reaper carries on).
    pub fn hook_panics(&self) -> u64 {
        self.shared.hook_panics.load(Ordering::Relaxed)
    }

    /// Asks every open connection whether it is alive and closes the dead ones as
    /// [`CloseReason::Dead`], counting them as reaped and running their reap hooks.
    /// Returns how many were reaped.
    pub fn reap_now(&self) -> usize {
        reap(&self.shared)
    }

    /// Starts a background thread that calls [`reap_now`](Self::reap_now) every `interval`
    /// (clamped to 1 ms ..= 1 day, see [`clamp_spawn_interval`](crate::watchdog::clamp_spawn_interval)).
    /// The thread stops when the returned [`Reaper`] is dropped or the tracker is gone.
    pub fn start_reaper(&self, interval: Duration) -> Reaper {
        let interval = crate::interval::clamp_spawn_interval(interval);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let weak = Arc::downgrade(&self.shared);
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("leakwatch-reaper-{}", self.shared.series.name))
            .spawn(move || {
                let (lock, cv) = &*stop2;
                let mut stopped = lock.lock();
                loop {
                    if *stopped {
                        return;
                    }
                    cv.wait_for(&mut stopped, interval);
                    if *stopped {
                        return;
                    }
                    let Some(shared) = weak.upgrade() else {
                        return;
                    };
                    parking_lot::MutexGuard::unlocked(&mut stopped, || {
                        reap(&shared);
                    });
                }
            })
            .expect("spawn the leakwatch reaper thread");
        Reaper {
            stop,
            thread: Some(thread),
        }
    }
}

fn reap(shared: &Shared) -> usize {
    // Every piece of user code (liveness checks, reap hooks, and the drop of a check that owns
    // other connections) runs with no lock held: any of them may call back into the tracker.
    let candidates: Vec<(u64, Liveness, Arc<ConnState>)> = {
        let open = shared.open.lock();
        open.iter()
            .map(|(id, o)| (*id, o.liveness.clone(), o.state.clone()))
            .collect()
    };
    let mut reaped = 0;
    for (id, check, state) in candidates {
        // A panicking liveness check counts as dead: we cannot trust the connection.
        let alive = std::panic::catch_unwind(AssertUnwindSafe(|| check())).unwrap_or(false);
        if alive {
            continue;
        }
        let removed = shared.open.lock().remove(&id);
        if removed.is_none() {
            continue; // closed by its owner while we were asking
        }
        if state.close(CloseReason::Dead) {
            reaped += 1;
            shared.series.bump(Extra::Reaped, 1);
            let hook = state.on_reap.lock().take();
            if let Some(hook) = hook
                && std::panic::catch_unwind(AssertUnwindSafe(hook)).is_err()
            {
                shared.hook_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(removed);
        drop(check);
    }
    reaped
}

/// Stops its reaper thread when dropped.
pub struct Reaper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Stops the reaper and waits for its thread to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Reaper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper").finish_non_exhaustive()
    }
}

/// One open connection. Close it with [`Connection::close`]; dropping it while still open
/// closes it as [`CloseReason::Normal`].
pub struct Connection {
    id: u64,
    state: Arc<ConnState>,
    owner: Weak<Shared>,
}

impl Connection {
    /// Sets what to run if the reaper finds this connection dead, e.g. cancelling the task that
    /// serves it. Runs at most once, on the reaper's thread.
    pub fn on_reap(&self, hook: impl FnOnce() + Send + 'static) {
        *self.state.on_reap.lock() = Some(Box::new(hook));
    }

    /// Closes with `reason`. Returns false if it was already closed (e.g. reaped).
    pub fn close(&self, reason: CloseReason) -> bool {
        if let Some(shared) = self.owner.upgrade() {
            // Dropped after the lock is released: the check may own other connections.
            let removed = shared.open.lock().remove(&self.id);
            drop(removed);
        }
        self.state.close(reason)
    }

    /// Whether the connection has been closed (by its owner or the reaper).
    pub fn closed(&self) -> bool {
        self.state.token.lock().is_none()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close(CloseReason::Normal);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("closed", &self.closed())
            .finish()
    }
}

/// A liveness flag for connections whose transport tells you when it dies: keep the
/// [`AliveFlag`] in the transport, pass [`AliveFlag::checker`] to [`Connections::open`].
#[derive(Clone, Debug, Default)]
pub struct AliveFlag(Arc<AtomicBool>);

impl AliveFlag {
    /// A flag that starts alive.
    pub fn new() -> Self {
        AliveFlag(Arc::new(AtomicBool::new(true)))
    }

    /// Marks the connection dead.
    pub fn set_dead(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether still alive.
    pub fn is_alive(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// A liveness check reading this flag.
    pub fn checker(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let f = self.0.clone();
        move || f.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_counted_by_reason_once() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "conns");
        let a = c.open(|| true);
        let b = c.open(|| true);
        let d = c.open(|| true);
        assert!(a.close(CloseReason::Aborted));
        assert!(!a.close(CloseReason::Normal), "second close is a no-op");
        b.close(CloseReason::Error);
        drop(d);
        let snap = reg.snapshot();
        let s = snap.get("conns").unwrap();
        assert_eq!((s.created, s.live), (3, 0));
        assert_eq!(s.extra("closed_aborted"), 1);
        assert_eq!(s.extra("closed_error"), 1);
        assert_eq!(s.extra("closed_normal"), 1);
        drop(a);
        assert_eq!(
            reg.snapshot().get("conns").unwrap().extra("closed_normal"),
            1
        );
    }

    #[test]
    fn reaper_thread_closes_dead_connections_and_runs_hooks() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "streams");
        let flag = AliveFlag::new();
        let conn = c.open(flag.checker());
        let (tx, rx) = std::sync::mpsc::channel();
        conn.on_reap(move || tx.send(()).unwrap());
        let _healthy = c.open(|| true);
        let reaper = c.start_reaper(Duration::from_millis(10));
        flag.set_dead();
        rx.recv_timeout(Duration::from_secs(5)).expect("hook ran");
        assert!(conn.closed());
        assert_eq!(c.open_count(), 1);
        reaper.stop();
        let s = reg.snapshot();
        let s = s.get("streams").unwrap();
        assert_eq!(
            (s.extra("reaped"), s.extra("closed_dead"), s.live),
            (1, 1, 1)
        );
    }

    /// Runs `f` on its own thread; fails (instead of hanging) if it deadlocks.
    fn finishes<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()).unwrap());
        rx.recv_timeout(Duration::from_secs(5))
            .expect("deadlock: user code ran under a Connections lock")
    }

    #[test]
    fn a_zero_reaper_interval_does_not_spin() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "zero");
        let checks = Arc::new(AtomicU64::new(0));
        let n = checks.clone();
        let _conn = c.open(move || {
            n.fetch_add(1, Ordering::Relaxed);
            true
        });
        let reaper = c.start_reaper(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(50));
        reaper.stop();
        // At 1 ms at most ~50 checks (a spinning reaper makes hundreds of thousands); the bound
        // is loose so a slow machine cannot fail it.
        assert!(checks.load(Ordering::Relaxed) < 5_000, "{checks:?}");
    }

    #[test]
    fn liveness_checks_may_use_the_tracker() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "reentrant");
        let c2 = c.clone();
        // A check that looks at the tracker itself (or opens/closes another connection).
        let conn = c.open(move || c2.open_count() > 5);
        let reaped = finishes(move || c.reap_now());
        assert_eq!(reaped, 1);
        assert!(conn.closed());
    }

    #[test]
    fn dropping_a_reaped_check_that_owns_a_connection_does_not_deadlock() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "owned");
        // The check owns another connection of the same tracker (e.g. a session object holding
        // its upstream connection): reaping drops the check, which closes that connection.
        let upstream = c.open(|| true);
        let dead = c.open(move || {
            let _keep = &upstream;
            false
        });
        // The reap hook re-arms itself through the connection handle it was given.
        let dead = Arc::new(dead);
        let handle = dead.clone();
        dead.on_reap(move || handle.on_reap(|| {}));
        let c2 = c.clone();
        assert_eq!(finishes(move || c2.reap_now()), 1);
        assert_eq!(
            c.open_count(),
            0,
            "the upstream closed when its owner was dropped"
        );
        let s = reg.snapshot();
        let s = s.get("owned").unwrap();
        assert_eq!(
            (s.live, s.extra("closed_dead"), s.extra("closed_normal")),
            (0, 1, 1)
        );
    }

    #[test]
    fn close_after_the_tracker_is_gone_still_closes_and_counts() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "orphan");
        let conn = c.open(|| true);
        drop(c);
        assert!(conn.close(CloseReason::Aborted), "it was open");
        assert!(conn.closed());
        assert!(!conn.close(CloseReason::Normal));
        let s = reg.snapshot();
        let s = s.get("orphan").unwrap();
        assert_eq!((s.live, s.extra("closed_aborted")), (0, 1));
    }

    #[test]
    fn panicking_checks_and_hooks_do_not_stop_the_reaper() {
        let reg = Registry::new();
        let c = Connections::new_in(&reg, "x");
        let a = c.open(|| panic!("liveness bug"));
        a.on_reap(|| panic!("hook bug"));
        let b = c.open(|| false);
        assert_eq!(c.reap_now(), 2);
        assert_eq!(c.hook_panics(), 1);
        assert!(a.closed() && b.closed());
    }
}

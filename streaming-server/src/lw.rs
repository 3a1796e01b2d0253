//! leakwatch, or nothing: the one place the server's modules take their leakwatch types from.
//!
//! With the `instrument` feature (the default) this re-exports leakwatch's types. Without it
//! (`--no-default-features`) the counting types are replaced by shims with the same API
//! subset that count nothing, so the same server code runs with leakwatch's per-stream and
//! per-event work compiled out: the build the instrumentation bench compares against
//! (`cargo bench -p streaming-server --bench serve`, README "Streaming server: speed and
//! memory").
//!
//! What stays the same in both builds, and why:
//! - [`Registry`], [`Gauge`] and [`CloseReason`] are leakwatch's own in both: `Registry` is in
//!   [`Server::start`](crate::server::Server::start)'s signature, which the binary, the tests
//!   and the demo call with `leakwatch::Registry::global()`; a handle nothing registers into
//!   costs nothing. So leakwatch stays a dependency; only its work is switched off.
//! - [`Callbacks`] is a working callback registry without the counting: presence is delivered
//!   through it, so it must call what is registered.
//! - [`Connections`] still counts open connections (shutdown waits on that count), but has no
//!   reaper: without instrumentation nothing asks a stream's [`AliveFlag`], and the only
//!   closes that never arrive are the `close-race` fault's.
//!
//! The two `#[tracked]` structs carry the attribute only with the feature:
//! `#[cfg_attr(feature = "instrument", leakwatch::tracked(name = "..."))]`; their
//! `Tracker<Self>` field is zero-sized either way.

pub use leakwatch::{CloseReason, Gauge, Registry};

#[cfg(feature = "instrument")]
pub use leakwatch::{
    AliveFlag, Callbacks, Connection, Connections, EventCounter, Reaper, Scope, ScopeBuilder,
    ScopeClosed, Subscription, Tracker,
};

#[cfg(not(feature = "instrument"))]
pub use off::{
    AliveFlag, Callbacks, Connection, Connections, EventCounter, Reaper, Scope, ScopeBuilder,
    ScopeClosed, Subscription, Tracker,
};

/// The shims of the uninstrumented build.
#[cfg(not(feature = "instrument"))]
mod off {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use parking_lot::RwLock;

    use super::{CloseReason, Registry};

    /// A registered callback; `alive` is cleared on unsubscribe so an emit that copied the
    /// list before the unsubscribe skips it (the same rule as leakwatch's).
    struct Entry<F: ?Sized> {
        alive: AtomicBool,
        f: F,
    }

    type Callback<E> = Arc<Entry<dyn Fn(&E) + Send + Sync>>;

    struct Shared<E> {
        subscribers: RwLock<BTreeMap<u64, Callback<E>>>,
        next_id: AtomicU64,
    }

    trait Unsubscribe: Send + Sync {
        fn unsubscribe(&self, id: u64);
    }

    impl<E: 'static> Unsubscribe for Shared<E> {
        fn unsubscribe(&self, id: u64) {
            let removed = self.subscribers.write().remove(&id);
            if let Some(entry) = &removed {
                entry.alive.store(false, Ordering::Release);
            }
            // Dropped with the lock released: the closure may own another subscription.
            drop(removed);
        }
    }

    /// leakwatch's `Callbacks` without the counting: same registration and emit semantics.
    pub struct Callbacks<E> {
        shared: Arc<Shared<E>>,
    }

    impl<E> Clone for Callbacks<E> {
        fn clone(&self) -> Self {
            Callbacks {
                shared: self.shared.clone(),
            }
        }
    }

    impl<E> fmt::Debug for Callbacks<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let registered = self.shared.subscribers.read().len();
            f.debug_struct("Callbacks")
                .field("registered", &registered)
                .finish()
        }
    }

    impl<E: 'static> Callbacks<E> {
        /// A registry (the name is not kept).
        pub fn new(_name: &str) -> Self {
            Callbacks {
                shared: Arc::new(Shared {
                    subscribers: RwLock::new(BTreeMap::new()),
                    next_id: AtomicU64::new(0),
                }),
            }
        }

        /// A registry (neither registry nor name is kept).
        pub fn new_in(_registry: &Registry, name: &str) -> Self {
            Self::new(name)
        }

        /// Registers `f` until the returned subscription is dropped.
        pub fn register(&self, f: impl Fn(&E) + Send + Sync + 'static) -> Subscription {
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            let entry: Callback<E> = Arc::new(Entry {
                alive: AtomicBool::new(true),
                f,
            });
            self.shared.subscribers.write().insert(id, entry);
            let owner: Weak<dyn Unsubscribe> = Arc::downgrade(&self.shared) as Weak<Shared<E>>;
            Subscription { id, owner }
        }

        /// Registers `f` unless `scope` has closed.
        pub fn register_in(
            &self,
            scope: &Scope,
            f: impl Fn(&E) + Send + Sync + 'static,
        ) -> Result<Subscription, ScopeClosed> {
            if scope.is_closed() {
                return Err(ScopeClosed);
            }
            Ok(self.register(f))
        }

        /// Calls every registered callback with `event`; returns how many were called.
        pub fn emit(&self, event: &E) -> usize {
            let callbacks: Vec<Callback<E>> =
                self.shared.subscribers.read().values().cloned().collect();
            let mut n = 0;
            for cb in &callbacks {
                if cb.alive.load(Ordering::Acquire) {
                    (cb.f)(event);
                    n += 1;
                }
            }
            n
        }

        /// Number of registered callbacks.
        pub fn len(&self) -> usize {
            self.shared.subscribers.read().len()
        }

        /// Whether no callback is registered.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    /// A registration; dropping it unregisters the callback.
    #[must_use = "dropping a Subscription unregisters its callback at once"]
    pub struct Subscription {
        id: u64,
        owner: Weak<dyn Unsubscribe>,
    }

    impl Drop for Subscription {
        fn drop(&mut self) {
            if let Some(owner) = self.owner.upgrade() {
                owner.unsubscribe(self.id);
            }
        }
    }

    impl fmt::Debug for Subscription {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Subscription")
                .field("id", &self.id)
                .finish()
        }
    }

    /// Registering on a scope that has already closed.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    #[error("cannot register on a closed scope")]
    pub struct ScopeClosed;

    /// A scope that only remembers whether it closed.
    #[derive(Debug, Default)]
    pub struct Scope {
        closed: AtomicBool,
    }

    /// Options for opening a [`Scope`] (all ignored).
    #[derive(Debug)]
    pub struct ScopeBuilder;

    impl ScopeBuilder {
        /// Ignored.
        pub fn registry(self, _registry: &Registry) -> Self {
            self
        }

        /// Ignored.
        pub fn grace(self, _grace: Duration) -> Self {
            self
        }

        /// Opens the scope.
        pub fn open(self) -> Scope {
            Scope::default()
        }
    }

    impl Scope {
        /// Opens a scope.
        pub fn open(_name: &str) -> Scope {
            Scope::default()
        }

        /// Options for a scope.
        pub fn builder(_name: &str) -> ScopeBuilder {
            ScopeBuilder
        }

        /// Ends the scope; false if it was already closed.
        pub fn close(&self) -> bool {
            !self.closed.swap(true, Ordering::AcqRel)
        }

        /// Whether the scope has closed.
        pub fn is_closed(&self) -> bool {
            self.closed.load(Ordering::Acquire)
        }
    }

    /// Open connections, counted only as a number (shutdown waits for it to reach zero).
    #[derive(Clone, Debug, Default)]
    pub struct Connections {
        open: Arc<AtomicUsize>,
    }

    impl Connections {
        /// A tracker (the name is not kept).
        pub fn new(_name: &str) -> Self {
            Connections::default()
        }

        /// A tracker (neither registry nor name is kept).
        pub fn new_in(_registry: &Registry, _name: &str) -> Self {
            Connections::default()
        }

        /// Opens a connection; `liveness` is dropped (there is no reaper to ask it).
        pub fn open(&self, _liveness: impl Fn() -> bool + Send + Sync + 'static) -> Connection {
            self.open.fetch_add(1, Ordering::Relaxed);
            Connection {
                open: self.open.clone(),
                closed: AtomicBool::new(false),
            }
        }

        /// Connections open now.
        pub fn open_count(&self) -> usize {
            self.open.load(Ordering::Relaxed)
        }

        /// No reaper in this build: returns a handle that does nothing.
        pub fn start_reaper(&self, _interval: Duration) -> Reaper {
            Reaper
        }
    }

    /// One open connection; closes on drop.
    #[derive(Debug)]
    pub struct Connection {
        open: Arc<AtomicUsize>,
        closed: AtomicBool,
    }

    impl Connection {
        /// Dropped at once: there is no reaper to run it.
        pub fn on_reap(&self, _hook: impl FnOnce() + Send + 'static) {}

        /// Closes; false if it was already closed.
        pub fn close(&self, _reason: CloseReason) -> bool {
            let first = !self.closed.swap(true, Ordering::AcqRel);
            if first {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
            first
        }

        /// Whether the connection has been closed.
        pub fn closed(&self) -> bool {
            self.closed.load(Ordering::Acquire)
        }
    }

    impl Drop for Connection {
        fn drop(&mut self) {
            self.close(CloseReason::Normal);
        }
    }

    /// The reaper's handle in a build without one.
    #[derive(Debug)]
    pub struct Reaper;

    impl Reaper {
        /// Does nothing.
        pub fn stop(self) {}
    }

    /// Nothing to stop; implemented so that dropping a reaper reads the same in both builds.
    impl Drop for Reaper {
        fn drop(&mut self) {}
    }

    /// A liveness flag nobody reads in this build.
    #[derive(Clone, Debug, Default)]
    pub struct AliveFlag;

    impl AliveFlag {
        /// A flag.
        pub fn new() -> Self {
            AliveFlag
        }

        /// Does nothing.
        pub fn set_dead(&self) {}

        /// Always true: nothing records a death in this build.
        pub fn is_alive(&self) -> bool {
            true
        }

        /// A check that always answers true.
        pub fn checker(&self) -> impl Fn() -> bool + Send + Sync + 'static {
            || true
        }
    }

    /// A counter that counts nothing.
    #[derive(Debug, Default)]
    pub struct EventCounter;

    impl EventCounter {
        /// A counter (the name is not kept).
        pub fn new(_name: &str) -> Self {
            EventCounter
        }

        /// A counter (neither registry nor name is kept).
        pub fn new_in(_registry: &Registry, _name: &str) -> Self {
            EventCounter
        }

        /// Does nothing.
        #[inline(always)]
        pub fn incr(&self) {}

        /// Does nothing.
        #[inline(always)]
        pub fn add(&self, _n: u64) {}
    }

    /// The zero-sized field of a `#[tracked]` struct, counting nothing.
    pub struct Tracker<T: ?Sized>(PhantomData<fn(&T)>);

    impl<T: ?Sized> Tracker<T> {
        /// A tracker.
        pub fn new() -> Self {
            Tracker(PhantomData)
        }
    }

    impl<T: ?Sized> Default for Tracker<T> {
        fn default() -> Self {
            Tracker::new()
        }
    }

    impl<T: ?Sized> Clone for Tracker<T> {
        fn clone(&self) -> Self {
            Tracker::new()
        }
    }

    impl<T: ?Sized> fmt::Debug for Tracker<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Tracker")
        }
    }
}

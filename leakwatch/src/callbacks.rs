//! Counted callback registries: `register` returns a [`Subscription`] that unregisters on drop.
//!
//! Each registry is a series: `live.<name>` is the number of registered callbacks, and
//! `delivered.<name>` counts deliveries (one per callback per emit), the figure whose curious
//! peak first pointed the seed story's team at leaking callbacks.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::registry::Registry;
use crate::scope::{Scope, ScopeClosed};
use crate::series::Series;
use crate::series::{Extra, SeriesKind};
use crate::site::SiteLocation;
use crate::token::{StaticSeries, Token};

/// A registered callback. `alive` is cleared on unsubscribe so that an emit which copied the
/// list before the unsubscribe skips it; generic over `F` only to build it unsized in place.
struct Entry<F: ?Sized> {
    alive: AtomicBool,
    f: F,
}

type Callback<E> = Arc<Entry<dyn Fn(&E) + Send + Sync>>;

struct Shared<E> {
    series: Arc<Series>,
    /// Registrations count here instead of in `series` (which keeps the emit totals) when the
    /// registry was made with [`Callbacks::with_series`].
    fast: Option<&'static StaticSeries>,
    subscribers: RwLock<BTreeMap<u64, Callback<E>>>,
    next_id: AtomicU64,
}

/// Removes one subscriber; type-erased so [`Subscription`] is not generic.
trait Unsubscribe: Send + Sync {
    fn unsubscribe(&self, id: u64);
}

impl<E: 'static> Unsubscribe for Shared<E> {
    fn unsubscribe(&self, id: u64) {
        let removed = self.subscribers.write().remove(&id);
        if let Some(entry) = &removed {
            entry.alive.store(false, Ordering::Release);
        }
        // Dropped only now, with the lock released: the closure may own another subscription
        // of this registry, or hold something whose `Drop` emits or asks for `len`, and either
        // would deadlock on the write lock.
        drop(removed);
    }
}

/// A named, counted set of callbacks for events of type `E`.
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let presence = leakwatch::Callbacks::<String>::new_in(&reg, "presence.callbacks");
/// let sub = presence.register(|who: &String| println!("{who} is online"));
/// assert_eq!(presence.emit(&"ann".to_string()), 1);
/// assert_eq!(reg.snapshot().live("presence.callbacks"), 1);
/// drop(sub); // unregisters
/// assert_eq!(presence.emit(&"bob".to_string()), 0);
/// assert_eq!(reg.snapshot().get("presence.callbacks").unwrap().extra("delivered"), 1);
/// ```
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
        // Read first: a guard in the chain would stay alive while the formatter's writer runs.
        let registered = self.shared.subscribers.read().len();
        f.debug_struct("Callbacks")
            .field("name", &self.shared.series.name)
            .field("registered", &registered)
            .finish()
    }
}

impl<E: 'static> Callbacks<E> {
    /// A registry counted under `name` in the global registry.
    pub fn new(name: &str) -> Self {
        Self::new_in(Registry::global(), name)
    }

    /// A registry counted under `name` in `registry`.
    pub fn new_in(registry: &Registry, name: &str) -> Self {
        Self::make(registry, name, None)
    }

    /// A registry whose registrations count in a `static` series (global registry): a
    /// registration then costs no more counting than a `#[tracked]` value, where
    /// [`new`](Self::new) takes a lock for its creation-site table on every register and
    /// unregister. Deliveries and emits are counted as with `new`.
    ///
    /// ```
    /// use leakwatch::{Callbacks, StaticSeries};
    ///
    /// static PRESENCE: StaticSeries = StaticSeries::callbacks("docs.presence.callbacks");
    ///
    /// let presence = Callbacks::<u32>::with_series(&PRESENCE);
    /// let sub = presence.register(|user| assert_eq!(*user, 7));
    /// assert_eq!(presence.emit(&7), 1);
    /// let snap = leakwatch::snapshot();
    /// let s = snap.get("docs.presence.callbacks").unwrap();
    /// assert_eq!((s.live, s.extra("delivered")), (1, 1));
    /// drop(sub);
    /// assert_eq!(PRESENCE.counts().live, 0);
    /// ```
    pub fn with_series(series: &'static StaticSeries) -> Self {
        Self::make(Registry::global(), series.name(), Some(series))
    }

    fn make(registry: &Registry, name: &str, fast: Option<&'static StaticSeries>) -> Self {
        Callbacks {
            shared: Arc::new(Shared {
                series: registry.series(SeriesKind::Callbacks, name),
                fast,
                subscribers: RwLock::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// A token for one registration created at the caller's location.
    #[track_caller]
    fn registration_token(&self) -> Token {
        match self.shared.fast {
            Some(fast) => fast.token(),
            None => Token::for_series(self.shared.series.clone(), Location::caller()),
        }
    }

    /// The registry's name.
    pub fn name(&self) -> &str {
        &self.shared.series.name
    }

    /// Registers `f`; it is called on every [`emit`](Self::emit) until the returned
    /// subscription is dropped. No call to `f` starts after the drop, not even from an emit
    /// already under way (e.g. one whose earlier callback dropped it); a call that another
    /// thread started before (or while racing with) the drop runs to its end.
    #[track_caller]
    pub fn register(&self, f: impl Fn(&E) + Send + Sync + 'static) -> Subscription {
        self.insert(
            Arc::new(Entry {
                alive: AtomicBool::new(true),
                f,
            }),
            self.registration_token(),
        )
    }

    /// Registers `f` bound to `scope`: refused with [`ScopeClosed`] (and counted as a late
    /// registration) if the scope has closed; reported as outlived if the subscription is still
    /// alive a grace period after the scope closes.
    #[track_caller]
    pub fn register_in(
        &self,
        scope: &Scope,
        f: impl Fn(&E) + Send + Sync + 'static,
    ) -> Result<Subscription, ScopeClosed> {
        let site: SiteLocation = Location::caller();
        let mut token = self.registration_token();
        // The token is created first so a refused attempt is visible as created+dropped.
        scope.bind_site(&mut token, site)?;
        Ok(self.insert(
            Arc::new(Entry {
                alive: AtomicBool::new(true),
                f,
            }),
            token,
        ))
    }

    fn insert(&self, f: Callback<E>, token: Token) -> Subscription {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.subscribers.write().insert(id, f);
        // One reference-count update (the weak count), not a clone, downgrade and drop.
        let owner: Weak<dyn Unsubscribe> = Arc::downgrade(&self.shared) as Weak<Shared<E>>;
        Subscription { id, owner, token }
    }

    /// Calls every registered callback with `event`; returns how many were called.
    ///
    /// Callbacks run outside the registry's lock, so they may register or drop subscriptions.
    /// One registered during the emit is first called by the next emit; one dropped during the
    /// emit is not called after its drop.
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
        self.shared.series.bump(Extra::Emitted, 1);
        self.shared.series.bump(Extra::Delivered, n as u64);
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

/// A registration in a [`Callbacks`] registry; dropping it unregisters the callback.
#[must_use = "dropping a Subscription unregisters its callback at once"]
pub struct Subscription {
    id: u64,
    owner: Weak<dyn Unsubscribe>,
    token: Token,
}

impl Subscription {
    /// The registry's name.
    pub fn name(&self) -> &str {
        self.token.name()
    }

    /// The token counting this registration (e.g. to inspect its creation site).
    pub fn token(&self) -> &Token {
        &self.token
    }
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
            .field("name", &self.token.name())
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `scenario` on its own thread so that a deadlock fails the test instead of hanging
    /// the whole run.
    fn finishes(scenario: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            scenario();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the scenario deadlocked or panicked");
    }

    /// Calls back into its registry when dropped.
    struct AsksLenOnDrop(Callbacks<()>, Arc<AtomicUsize>);

    impl Drop for AsksLenOnDrop {
        fn drop(&mut self) {
            self.1.store(self.0.len() + 100, Ordering::Relaxed);
            self.0.emit(&());
        }
    }

    #[test]
    fn dropping_a_callback_that_owns_another_subscription_does_not_deadlock() {
        finishes(|| {
            let reg = Registry::new();
            let cbs = Callbacks::<()>::new_in(&reg, "nested");
            let inner = cbs.register(|_| {});
            let outer = cbs.register(move |_| {
                let _keep = &inner;
            });
            assert_eq!(cbs.len(), 2);
            drop(outer);
            assert!(
                cbs.is_empty(),
                "the inner subscription went with the outer closure"
            );
        });
    }

    #[test]
    fn a_callback_whose_drop_calls_back_into_the_registry_does_not_deadlock() {
        finishes(|| {
            let reg = Registry::new();
            let cbs = Callbacks::<()>::new_in(&reg, "drop-calls-back");
            let seen = Arc::new(AtomicUsize::new(0));
            let guard = AsksLenOnDrop(cbs.clone(), seen.clone());
            let sub = cbs.register(move |_| {
                let _keep = &guard;
            });
            drop(sub);
            assert_eq!(
                seen.load(Ordering::Relaxed),
                100,
                "len was 0 once unregistered"
            );
        });
    }

    #[test]
    fn emit_reaches_live_subscribers_only() {
        let reg = Registry::new();
        let cbs = Callbacks::<u32>::new_in(&reg, "events");
        let sum = Arc::new(AtomicUsize::new(0));
        let s1 = {
            let sum = sum.clone();
            cbs.register(move |e| {
                sum.fetch_add(*e as usize, Ordering::Relaxed);
            })
        };
        let s2 = {
            let sum = sum.clone();
            cbs.register(move |e| {
                sum.fetch_add(10 * *e as usize, Ordering::Relaxed);
            })
        };
        assert_eq!(cbs.emit(&1), 2);
        drop(s1);
        assert_eq!(cbs.emit(&2), 1);
        assert_eq!(sum.load(Ordering::Relaxed), 1 + 10 + 20);
        let snap = reg.snapshot();
        let s = snap.get("events").unwrap();
        assert_eq!((s.live, s.created, s.dropped), (1, 2, 1));
        assert_eq!(s.extra("delivered"), 3);
        assert_eq!(s.extra("emitted"), 2);
        drop(s2);
        assert!(cbs.is_empty());
    }

    #[test]
    fn callbacks_may_unsubscribe_during_emit() {
        let reg = Registry::new();
        let cbs = Callbacks::<()>::new_in(&reg, "reentrant");
        let slot: Arc<parking_lot::Mutex<Option<Subscription>>> = Default::default();
        let s = {
            let slot = slot.clone();
            cbs.register(move |_| {
                slot.lock().take();
            })
        };
        *slot.lock() = Some(s);
        assert_eq!(cbs.emit(&()), 1);
        assert_eq!(cbs.emit(&()), 0);
    }

    #[test]
    fn a_callback_dropped_by_an_earlier_one_in_the_same_emit_is_not_called() {
        let reg = Registry::new();
        let cbs = Callbacks::<()>::new_in(&reg, "dropped-mid-emit");
        let victim: Arc<parking_lot::Mutex<Option<Subscription>>> = Default::default();
        let first = {
            let victim = victim.clone();
            cbs.register(move |_| drop(victim.lock().take()))
        };
        let victim_calls = Arc::new(AtomicUsize::new(0));
        *victim.lock() = Some({
            let calls = victim_calls.clone();
            cbs.register(move |_| {
                calls.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(cbs.emit(&()), 1, "only the first callback ran");
        assert_eq!(victim_calls.load(Ordering::Relaxed), 0);
        assert_eq!(
            reg.snapshot()
                .get("dropped-mid-emit")
                .unwrap()
                .extra("delivered"),
            1
        );
        drop(first);
    }

    #[test]
    fn register_in_closed_scope_is_refused() {
        let reg = Registry::new();
        let cbs = Callbacks::<()>::new_in(&reg, "presence");
        let scope = Scope::builder("stream").registry(&reg).open();
        let ok = cbs.register_in(&scope, |_| {}).unwrap();
        scope.close();
        let err = cbs.register_in(&scope, |_| {}).unwrap_err();
        assert_eq!(err.item, "presence");
        assert_eq!(cbs.len(), 1);
        drop(ok);
        assert_eq!(reg.snapshot().live("presence"), 0);
    }
}

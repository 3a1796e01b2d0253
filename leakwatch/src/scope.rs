//! Lifecycle scopes: registration after close is refused, and anything that outlives its scope
//! is reported.
//!
//! The seed story's second bug: a slow lookup finished *after* a 409 had closed the connection
//! and cleaned up, then re-added a callback that nothing would ever remove. With a scope per
//! connection, that registration returns [`ScopeClosed`] instead, so the buggy code cannot be
//! written without handling it, and the attempt is counted as a *late registration* with its
//! source location. Items bound to a scope that are still alive a grace period after it closed
//! are reported as having *outlived* it.

use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::counter::Half;
pub use crate::finding::{ScopeClosed, ScopeFinding, ScopeObserverId};
use crate::registry::{Registry, RegistryInner};
use crate::series::Series;
use crate::series::{Extra, SeriesKind};
use crate::site::{SiteLocation, fmt_location};
use crate::token::{Binding, BindingOwner, Named, StaticSeries, Token};
use crate::tracked::TypeStats;

/// Default time a closed scope's items get to go away before they are reported.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

struct BoundItem {
    name: String,
    site: SiteLocation,
    born: Instant,
    reported: bool,
}

struct ScopeState {
    closed_at: Option<Instant>,
    bound: HashMap<u64, BoundItem>,
    next_key: u64,
}

/// What a scope counts in: a registry's series, or a [`StaticSeries`](crate::StaticSeries).
enum ScopeSeries {
    Series(Arc<Series>),
    Static(&'static TypeStats),
}

/// The registry a scope reports to: shared, or the global one without a reference count to
/// update (scopes through static series open and close without touching a shared line).
enum RegistryRef {
    Shared(Arc<RegistryInner>),
    Global,
}

impl RegistryRef {
    fn get(&self) -> &RegistryInner {
        match self {
            RegistryRef::Shared(r) => r,
            RegistryRef::Global => &Registry::global().inner,
        }
    }

    fn registry(&self) -> Registry {
        match self {
            RegistryRef::Shared(r) => Registry { inner: r.clone() },
            RegistryRef::Global => Registry::global().clone(),
        }
    }
}

pub(crate) struct ScopeInner {
    series: ScopeSeries,
    registry: RegistryRef,
    grace: Duration,
    state: Mutex<ScopeState>,
}

impl ScopeInner {
    fn name(&self) -> &str {
        match &self.series {
            ScopeSeries::Series(s) => &s.name,
            ScopeSeries::Static(stats) => stats.name(),
        }
    }

    /// Adds to a per-kind total. A static series keeps its totals in the global registry's
    /// series of the same name, looked up here: late and outlived items are rare.
    fn bump(&self, extra: Extra) {
        match &self.series {
            ScopeSeries::Series(s) => s.bump(extra, 1),
            ScopeSeries::Static(stats) => Registry::global()
                .series(SeriesKind::Scope, stats.name())
                .bump(extra, 1),
        }
    }

    /// Binds an item created at `created`, or refuses (and reports `attempt`, where the bind
    /// was asked for) if the scope is closed.
    fn bind(
        self: &Arc<Self>,
        item: &str,
        attempt: SiteLocation,
        created: SiteLocation,
    ) -> Result<Binding, ScopeClosed> {
        let mut st = self.state.lock();
        if let Some(closed_at) = st.closed_at {
            drop(st);
            let after_close = closed_at.elapsed();
            self.bump(Extra::Late);
            self.registry
                .get()
                .findings
                .report(ScopeFinding::LateRegistration {
                    scope: self.name().to_owned(),
                    item: item.to_owned(),
                    site: fmt_location(attempt),
                    after_close_ms: after_close.as_millis() as u64,
                });
            return Err(ScopeClosed {
                scope: self.name().to_owned(),
                item: item.to_owned(),
                site: fmt_location(attempt),
                after_close,
            });
        }
        let key = st.next_key;
        st.next_key += 1;
        st.bound.insert(
            key,
            BoundItem {
                name: item.to_owned(),
                site: created,
                born: Instant::now(),
                reported: false,
            },
        );
        Ok(Binding::new(self.clone(), key))
    }

    fn close(self: &Arc<Self>) -> bool {
        let mut st = self.state.lock();
        if st.closed_at.is_some() {
            return false;
        }
        st.closed_at = Some(Instant::now());
        let has_items = !st.bound.is_empty();
        drop(st);
        match &self.series {
            ScopeSeries::Series(s) => s.items.incr(Half::Down),
            ScopeSeries::Static(stats) => stats.on_drop(),
        }
        // A grace too long to add to a clock (e.g. `Duration::MAX`) means "never report"; this
        // also runs from `Drop`, where a panic during unwinding would abort.
        if has_items && let Some(due) = Instant::now().checked_add(self.grace) {
            janitor().schedule(due, Arc::downgrade(self));
        }
        true
    }

    /// Reports bound items still alive a grace period after the close.
    fn check_outlived(&self, now: Instant) {
        let mut found = Vec::new();
        {
            let mut st = self.state.lock();
            let Some(closed_at) = st.closed_at else {
                return;
            };
            if now.saturating_duration_since(closed_at) < self.grace {
                return;
            }
            for item in st.bound.values_mut().filter(|i| !i.reported) {
                item.reported = true;
                found.push(ScopeFinding::Outlived {
                    scope: self.name().to_owned(),
                    item: item.name.clone(),
                    site: fmt_location(item.site),
                    age_ms: now.saturating_duration_since(item.born).as_millis() as u64,
                    since_close_ms: now.saturating_duration_since(closed_at).as_millis() as u64,
                });
            }
        }
        for f in found {
            self.bump(Extra::Outlived);
            self.registry.get().findings.report(f);
        }
    }
}

impl BindingOwner for ScopeInner {
    fn unbind(&self, key: u64) {
        self.state.lock().bound.remove(&key);
    }
}

struct ScopeHandle {
    inner: Arc<ScopeInner>,
}

impl Drop for ScopeHandle {
    fn drop(&mut self) {
        // The last handle going away ends the scope even if nobody called `close`.
        self.inner.close();
    }
}

/// A lifecycle scope, e.g. one per connection. Cloning gives another handle to the same
/// scope; the scope closes on [`Scope::close`] or when the last handle is dropped.
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let conn = leakwatch::Scope::builder("connection").registry(&reg).open();
/// let relay = conn.token("presence.relay").expect("scope is open");
/// conn.close();
/// drop(relay);
/// // A slow lookup finishing after the close is refused instead of leaking:
/// let late = conn.token("presence.relay");
/// assert!(late.is_err());
/// assert_eq!(reg.snapshot().get("connection").unwrap().extra("late"), 1);
/// ```
#[derive(Clone)]
pub struct Scope {
    handle: Arc<ScopeHandle>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Options for opening a [`Scope`].
#[derive(Debug)]
pub struct ScopeBuilder {
    name: String,
    registry: Registry,
    grace: Duration,
}

impl ScopeBuilder {
    /// Count the scope (and its findings) in `registry` instead of the global one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// How long bound items may outlive the close before they are reported
    /// (default [`DEFAULT_GRACE`]). `Duration::MAX` never reports them.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Opens the scope.
    pub fn open(self) -> Scope {
        let series = self.registry.series(SeriesKind::Scope, &self.name);
        series.items.incr(Half::Up);
        Scope::make(
            ScopeSeries::Series(series),
            RegistryRef::Shared(self.registry.inner.clone()),
            self.grace,
        )
    }
}

impl Scope {
    fn make(series: ScopeSeries, registry: RegistryRef, grace: Duration) -> Scope {
        Scope {
            handle: Arc::new(ScopeHandle {
                inner: Arc::new(ScopeInner {
                    series,
                    registry,
                    grace,
                    state: Mutex::new(ScopeState {
                        closed_at: None,
                        bound: HashMap::new(),
                        next_key: 0,
                    }),
                }),
            }),
        }
    }

    /// A scope counted in a static series (global registry, default grace); see
    /// [`StaticSeries::open_scope`](crate::StaticSeries::open_scope).
    pub(crate) fn open_static(stats: &'static TypeStats) -> Scope {
        stats.on_create();
        Scope::make(
            ScopeSeries::Static(stats),
            RegistryRef::Global,
            DEFAULT_GRACE,
        )
    }

    /// Opens a scope named `name` in the global registry.
    pub fn open(name: &str) -> Scope {
        Scope::builder(name).open()
    }

    /// Options for a scope named `name`.
    pub fn builder(name: &str) -> ScopeBuilder {
        ScopeBuilder {
            name: name.to_owned(),
            registry: Registry::global().clone(),
            grace: DEFAULT_GRACE,
        }
    }

    fn inner(&self) -> &Arc<ScopeInner> {
        &self.handle.inner
    }

    /// The scope's name (its series name).
    pub fn name(&self) -> &str {
        self.inner().name()
    }

    /// Ends the scope. Returns false if it was already closed. Later registrations are refused;
    /// items still bound after the grace period are reported as outlived.
    pub fn close(&self) -> bool {
        self.inner().close()
    }

    /// Whether the scope has closed.
    pub fn is_closed(&self) -> bool {
        self.inner().state.lock().closed_at.is_some()
    }

    /// Items currently bound and alive.
    pub fn bound(&self) -> usize {
        self.inner().state.lock().bound.len()
    }

    /// A new token counted under `name` and bound to this scope (same registry as the scope).
    #[track_caller]
    pub fn token(&self, name: &str) -> Result<Token, ScopeClosed> {
        let site = Location::caller();
        let binding = self.inner().bind(name, site, site)?;
        let registry = self.inner().registry.registry();
        let mut t = Token::create(&registry, SeriesKind::Token, name, site);
        t.set_binding(binding);
        Ok(t)
    }

    /// A named callback bound to this scope.
    #[track_caller]
    pub fn named<F>(&self, name: &str, f: F) -> Result<Named<F>, ScopeClosed> {
        Ok(Named::from_parts(f, self.token(name)?))
    }

    /// Binds an existing token (e.g. a subscription's) to this scope. A refusal names this
    /// call's location; an [`Outlived`](ScopeFinding::Outlived) report names where the token
    /// was created.
    #[track_caller]
    pub fn bind(&self, token: &mut Token) -> Result<(), ScopeClosed> {
        self.bind_site(token, Location::caller())
    }

    /// [`bind`](Self::bind) with the attempt's location given.
    pub(crate) fn bind_site(
        &self,
        token: &mut Token,
        attempt: SiteLocation,
    ) -> Result<(), ScopeClosed> {
        let binding = self.inner().bind(token.name(), attempt, token.site())?;
        token.set_binding(binding);
        Ok(())
    }

    /// Reports outlived items now instead of waiting for the background check. Returns
    /// nothing; findings go to observers and snapshots as usual.
    pub fn check_now(&self) {
        self.inner().check_outlived(Instant::now());
    }
}

/// Scope findings whose observers panicked in `registry` (caught, never propagated).
pub fn observer_panics(registry: &Registry) -> u64 {
    registry.inner.findings.observer_panics()
}

/// Scopes counted in a static series (the scope side of [`StaticSeries`], which knows nothing
/// of scopes).
impl StaticSeries {
    /// Opens a scope counted in this series (global registry, default grace period), without
    /// the name lookup and registry reference count of [`Scope::open`](crate::Scope::open).
    /// Late registrations and outlived items are counted in the global registry's series of
    /// the same name, as with `Scope::open(name)`.
    ///
    /// ```
    /// static STREAMS: leakwatch::StaticSeries = leakwatch::StaticSeries::scopes("docs.stream");
    ///
    /// let stream = STREAMS.open_scope();
    /// assert_eq!(STREAMS.counts().live, 1);
    /// stream.close();
    /// assert!(stream.token("late.relay").is_err());
    /// let s = leakwatch::snapshot();
    /// assert_eq!(s.get("docs.stream").unwrap().extra("late"), 1);
    /// assert_eq!(STREAMS.counts().live, 0);
    /// ```
    pub fn open_scope(&'static self) -> Scope {
        Scope::open_static(&self.stats)
    }
}

/// One background thread checks closed scopes when their grace period ends, so outlived
/// items are reported the moment the grace expires rather than at the next snapshot. It is
/// started only when a scope closes with items still bound.
struct Janitor {
    queue: Mutex<BinaryHeap<Due>>,
    wake: Condvar,
}

struct Due {
    at: Instant,
    scope: Weak<ScopeInner>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.at.cmp(&self.at)
    }
}

fn janitor() -> &'static Janitor {
    static J: OnceLock<&'static Janitor> = OnceLock::new();
    J.get_or_init(|| {
        let j: &'static Janitor = Box::leak(Box::new(Janitor {
            queue: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("leakwatch-scopes".into())
            .spawn(move || j.run())
            .expect("spawn the leakwatch scope checker thread");
        j
    })
}

impl Janitor {
    fn schedule(&self, at: Instant, scope: Weak<ScopeInner>) {
        self.queue.lock().push(Due { at, scope });
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut q = self.queue.lock();
        loop {
            let now = Instant::now();
            match q.peek().map(|d| d.at) {
                None => {
                    self.wake.wait(&mut q);
                }
                Some(at) if at > now => {
                    self.wake.wait_until(&mut q, at);
                }
                Some(_) => {
                    let due = q.pop().expect("peeked");
                    drop(q);
                    if let Some(scope) = due.scope.upgrade() {
                        scope.check_outlived(Instant::now());
                    }
                    q = self.queue.lock();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn removed_observers_see_nothing_and_watchdog_restarts_do_not_pile_up() {
        let reg = Registry::new();
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let id = reg.on_scope_finding(move |_| {
            s2.fetch_add(1, Ordering::Relaxed);
        });
        let late = |reg: &Registry| {
            let scope = Scope::builder("s").registry(reg).open();
            scope.close();
            assert!(scope.bind(&mut Token::new_in(reg, "t")).is_err());
        };
        late(&reg);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert!(reg.remove_scope_observer(id));
        assert!(!reg.remove_scope_observer(id), "already gone");
        late(&reg);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            1,
            "a removed observer is not called"
        );

        for _ in 0..5 {
            let wd = crate::Watchdog::builder().registry(&reg).start().unwrap();
            assert_eq!(reg.inner.findings.observer_count(), 1);
            drop(wd);
        }
        assert_eq!(reg.inner.findings.observer_count(), 0);
    }

    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;

    #[test]
    fn late_registration_is_refused_counted_and_observed() {
        let reg = Registry::new();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        reg.on_scope_finding(move |f| tx.lock().send(f.clone()).unwrap());
        let s = Scope::builder("conn").registry(&reg).open();
        s.close();
        let err = s.token("relay").unwrap_err();
        assert_eq!(err.scope, "conn");
        assert!(err.site.contains("scope.rs"), "{}", err.site);
        let f = rx.try_recv().expect("observer called at once");
        assert_eq!(f.kind(), "late_registration");
        assert_eq!(f.item(), "relay");
        let snap = reg.snapshot();
        assert_eq!(snap.get("conn").unwrap().extra("late"), 1);
        assert_eq!(snap.findings.len(), 1);
        assert_eq!(
            snap.live("relay"),
            0,
            "refused registration creates nothing"
        );
    }

    #[test]
    fn outlived_items_are_reported_after_grace_once() {
        let reg = Registry::new();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        reg.on_scope_finding(move |f| tx.lock().send(f.clone()).unwrap());
        let s = Scope::builder("conn")
            .registry(&reg)
            .grace(Duration::from_millis(50))
            .open();
        let kept = s.token("relay").unwrap();
        let released = s.token("other").unwrap();
        drop(released);
        s.close();
        let f = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("outlived finding");
        assert_eq!(f.kind(), "outlived");
        assert_eq!(f.item(), "relay");
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "reported once"
        );
        s.check_now();
        assert!(rx.try_recv().is_err(), "still only once");
        assert_eq!(reg.snapshot().get("conn").unwrap().extra("outlived"), 1);
        drop(kept);
    }

    #[test]
    fn an_outlived_bound_token_is_reported_at_its_creation_site() {
        let reg = Registry::new();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        reg.on_scope_finding(move |f| tx.lock().send(f.clone()).unwrap());
        let s = Scope::builder("conn")
            .registry(&reg)
            .grace(Duration::ZERO)
            .open();
        let mut t = Token::new_in(&reg, "relay");
        let created = fmt_location(t.site());
        s.bind(&mut t).unwrap();
        s.close();
        s.check_now();
        let f = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("outlived finding");
        assert_eq!((f.kind(), f.site()), ("outlived", created.as_str()));
        let err = s.bind(&mut Token::new_in(&reg, "late")).unwrap_err();
        assert_ne!(err.site, created, "a refusal names the bind call");
        drop(t);
    }

    #[test]
    fn nothing_reported_when_items_go_in_time() {
        let reg = Registry::new();
        let s = Scope::builder("conn")
            .registry(&reg)
            .grace(Duration::from_millis(20))
            .open();
        let t = s.token("relay").unwrap();
        s.close();
        drop(t);
        std::thread::sleep(Duration::from_millis(80));
        s.check_now();
        let snap = reg.snapshot();
        assert_eq!(snap.get("conn").unwrap().extra("outlived"), 0);
        assert!(snap.findings.is_empty());
    }

    #[test]
    fn an_endless_grace_never_reports_and_closes_without_panicking() {
        let reg = Registry::new();
        let s = Scope::builder("conn")
            .registry(&reg)
            .grace(Duration::MAX)
            .open();
        let kept = s.token("relay").unwrap();
        assert!(s.close());
        s.check_now();
        // The same close, from the last handle's `Drop`.
        let dropped = Scope::builder("conn2")
            .registry(&reg)
            .grace(Duration::MAX)
            .open();
        let kept2 = dropped.token("relay2").unwrap();
        drop(dropped);
        let snap = reg.snapshot();
        assert_eq!(snap.live("conn") + snap.live("conn2"), 0, "both closed");
        assert_eq!(snap.get("conn").unwrap().extra("outlived"), 0);
        assert!(snap.findings.is_empty());
        drop((kept, kept2));
    }

    #[test]
    fn dropping_last_handle_closes_and_counts() {
        let reg = Registry::new();
        let s = Scope::builder("conn").registry(&reg).open();
        let s2 = s.clone();
        assert_eq!(reg.snapshot().live("conn"), 1);
        drop(s);
        assert_eq!(reg.snapshot().live("conn"), 1);
        drop(s2);
        assert_eq!(reg.snapshot().live("conn"), 0);
    }

    #[test]
    fn panicking_observer_is_contained() {
        let reg = Registry::new();
        reg.on_scope_finding(|_| panic!("observer bug"));
        let s = Scope::builder("conn").registry(&reg).open();
        s.close();
        assert!(s.token("x").is_err());
        assert_eq!(observer_panics(&reg), 1);
    }
}

//! Counted tokens and named callbacks.
//!
//! A [`Token`] counts one live item under a name for exactly as long as it exists: put one in
//! any struct, closure or map entry whose lifetime you want to see. [`named`] attaches a token
//! to a closure, which is the cure for the seed story's problem: closures are anonymous in heap
//! dumps, but a named closure sitting in some map is counted under its name.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;

use crate::registry::Registry;
use crate::series::Series;
use crate::series::{Counts, SeriesKind};
use crate::site::SiteLocation;
use crate::tracked::TypeStats;

/// What a token can be bound to (a scope): told when the token goes, so it stops waiting
/// for it. A trait so that tokens need nothing of scopes.
pub(crate) trait BindingOwner: Send + Sync {
    /// The item bound under `key` is gone.
    fn unbind(&self, key: u64);
}

/// Ties an item's lifetime to its owner (a scope); dropping it unbinds.
pub(crate) struct Binding {
    owner: Arc<dyn BindingOwner>,
    key: u64,
}

impl Binding {
    pub(crate) fn new(owner: Arc<dyn BindingOwner>, key: u64) -> Binding {
        Binding { owner, key }
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        self.owner.unbind(self.key);
    }
}

/// A series declared once as a `static`: tokens, named callbacks and callback registrations
/// counted through it cost what a `#[tracked]` value costs (a thread-local stripe number and a
/// store in the static's own per-thread slot), instead of a lookup by name, a lock and a
/// reference count per creation.
///
/// ```
/// use leakwatch::StaticSeries;
///
/// static UPLOADS: StaticSeries = StaticSeries::tokens("docs.upload.buffer");
///
/// let t = UPLOADS.token();
/// assert_eq!(leakwatch::snapshot().live("docs.upload.buffer"), 1);
/// drop(t);
/// assert_eq!(UPLOADS.counts().live, 0);
/// ```
///
/// Static series are process-wide and appear in the global registry's snapshots (like
/// `#[tracked]` types), summed with any series of the same name and kind. The creation site
/// reported for their live items is where the `static` is declared, and its age is sampled
/// (from the first snapshot that saw items live); use [`Token::new`] where you need each
/// creation's own line.
pub struct StaticSeries {
    pub(crate) stats: TypeStats,
}

impl StaticSeries {
    /// A series of [`Token`]s and [`named`] values called `name`.
    #[track_caller]
    pub const fn tokens(name: &'static str) -> StaticSeries {
        StaticSeries {
            stats: TypeStats::for_series(name, SeriesKind::Token, Location::caller()),
        }
    }

    /// A series of callback registrations called `name`, for
    /// [`Callbacks::with_series`](crate::Callbacks::with_series).
    #[track_caller]
    pub const fn callbacks(name: &'static str) -> StaticSeries {
        StaticSeries {
            stats: TypeStats::for_series(name, SeriesKind::Callbacks, Location::caller()),
        }
    }

    /// A series of [`Scope`](crate::Scope)s called `name`, for
    /// [`open_scope`](Self::open_scope).
    #[track_caller]
    pub const fn scopes(name: &'static str) -> StaticSeries {
        StaticSeries {
            stats: TypeStats::for_series(name, SeriesKind::Scope, Location::caller()),
        }
    }

    /// The series name.
    pub fn name(&self) -> &'static str {
        self.stats.name()
    }

    /// The kind of series (token, callbacks or scope).
    pub fn kind(&self) -> SeriesKind {
        self.stats.kind()
    }

    /// Counts now.
    pub fn counts(&self) -> Counts {
        self.stats.counts()
    }

    /// A token counted in this series while it lives.
    #[track_caller]
    #[inline]
    pub fn token(&'static self) -> Token {
        self.stats.on_create();
        Token {
            counter: Counter::Static(&self.stats),
            site: Location::caller(),
            born: 0,
            binding: None,
        }
    }

    /// The leanest token: one pointer, no creation site kept, cannot be bound to a scope.
    /// Creating and dropping one costs what a `#[tracked]` value costs; a [`Token`] from
    /// [`token`](Self::token) is five words and keeps its creation site.
    ///
    /// ```
    /// static JOBS: leakwatch::StaticSeries = leakwatch::StaticSeries::tokens("docs.jobs");
    ///
    /// struct Job {
    ///     id: u64,
    ///     _counted: leakwatch::StaticToken,
    /// }
    /// let job = Job { id: 1, _counted: JOBS.static_token() };
    /// assert_eq!((job.id, JOBS.counts().live), (1, 1));
    /// ```
    #[inline]
    pub fn static_token(&'static self) -> StaticToken {
        self.stats.on_create();
        StaticToken { stats: &self.stats }
    }

    /// `f`, counted in this series while it lives (see [`named`]).
    #[track_caller]
    pub fn named<F>(&'static self, f: F) -> Named<F> {
        Named {
            f,
            token: self.token(),
        }
    }
}

impl fmt::Debug for StaticSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticSeries")
            .field("name", &self.name())
            .field("kind", &self.kind())
            .finish()
    }
}

/// A token of a [`StaticSeries`] that is only a count: see [`StaticSeries::static_token`].
#[must_use = "dropping a StaticToken uncounts it at once"]
pub struct StaticToken {
    stats: &'static TypeStats,
}

impl StaticToken {
    /// The name this token is counted under.
    pub fn name(&self) -> &'static str {
        self.stats.name()
    }
}

impl Clone for StaticToken {
    /// A clone is a new counted item.
    #[inline]
    fn clone(&self) -> Self {
        self.stats.on_create();
        StaticToken { stats: self.stats }
    }
}

impl Drop for StaticToken {
    #[inline]
    fn drop(&mut self) {
        self.stats.on_drop();
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("name", &self.name())
            .finish()
    }
}

/// What a token counts in: a registry's series (with a creation-site entry) or a static one.
enum Counter {
    Series(Arc<Series>),
    Static(&'static TypeStats),
}

/// Counts one live item under a name while it exists (RAII).
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let t = leakwatch::Token::new_in(&reg, "upload.buffer");
/// assert_eq!(reg.snapshot().live("upload.buffer"), 1);
/// drop(t);
/// assert_eq!(reg.snapshot().live("upload.buffer"), 0);
/// ```
pub struct Token {
    counter: Counter,
    site: SiteLocation,
    /// When it was created, as its series' site table counts it (0 for static series,
    /// which keep no sites).
    born: u64,
    binding: Option<Binding>,
}

impl Token {
    /// A token counted under `name` in the global registry.
    #[track_caller]
    pub fn new(name: &str) -> Token {
        Token::create(
            Registry::global(),
            SeriesKind::Token,
            name,
            Location::caller(),
        )
    }

    /// A token counted under `name` in `registry`.
    #[track_caller]
    pub fn new_in(registry: &Registry, name: &str) -> Token {
        Token::create(registry, SeriesKind::Token, name, Location::caller())
    }

    pub(crate) fn create(
        registry: &Registry,
        kind: SeriesKind,
        name: &str,
        site: SiteLocation,
    ) -> Token {
        let series = registry.series(kind, name);
        Token::for_series(series, site)
    }

    pub(crate) fn for_series(series: Arc<Series>, site: SiteLocation) -> Token {
        series.items.incr(crate::counter::Half::Up);
        let born = series.sites.add(site);
        Token {
            counter: Counter::Series(series),
            site,
            born,
            binding: None,
        }
    }

    /// The name this token is counted under.
    pub fn name(&self) -> &str {
        match &self.counter {
            Counter::Series(series) => &series.name,
            Counter::Static(stats) => stats.name(),
        }
    }

    /// Where this token was created.
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }

    /// Whether the token is bound to a [`Scope`](crate::Scope).
    pub fn is_bound(&self) -> bool {
        self.binding.is_some()
    }

    pub(crate) fn set_binding(&mut self, binding: Binding) {
        self.binding = Some(binding);
    }
}

impl Clone for Token {
    /// A clone is a new counted item under the same name, created at the clone's call site.
    /// It is not bound to the original's scope.
    #[track_caller]
    fn clone(&self) -> Self {
        match &self.counter {
            Counter::Series(series) => Token::for_series(series.clone(), Location::caller()),
            Counter::Static(stats) => {
                stats.on_create();
                Token {
                    counter: Counter::Static(stats),
                    site: Location::caller(),
                    born: 0,
                    binding: None,
                }
            }
        }
    }
}

impl Drop for Token {
    #[inline]
    fn drop(&mut self) {
        if let (Counter::Static(stats), None) = (&self.counter, &self.binding) {
            // The common cheap case, kept small enough to inline.
            stats.on_drop();
            return;
        }
        self.drop_slow();
    }
}

impl Token {
    #[inline(never)]
    fn drop_slow(&mut self) {
        // Unbind first so a scope never reports an item that is already gone.
        self.binding.take();
        match &self.counter {
            Counter::Series(series) => {
                series.sites.remove(self.site, self.born);
                series.items.incr(crate::counter::Half::Down);
            }
            Counter::Static(stats) => stats.on_drop(),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name())
            .field("site", &crate::site::fmt_location(self.site))
            .field("bound", &self.binding.is_some())
            .finish()
    }
}

/// A value (usually a closure) carrying a [`Token`]: counted under its name while it lives.
///
/// `Named<F>` dereferences to `F`, so a named closure is called like the closure itself.
/// To store it as a trait object, move it into a plain closure:
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let relay = leakwatch::named_in(&reg, "presence.relay", |user: &str| user.len());
/// assert_eq!(relay("ann"), 3);
/// let boxed: Box<dyn Fn(&str) -> usize> = Box::new(move |u| relay(u));
/// assert_eq!(reg.snapshot().live("presence.relay"), 1);
/// drop(boxed);
/// assert_eq!(reg.snapshot().live("presence.relay"), 0);
/// ```
pub struct Named<F> {
    f: F,
    token: Token,
}

/// Wraps `f` so it is counted under `name` (global registry) for as long as it lives.
#[track_caller]
pub fn named<F>(name: &str, f: F) -> Named<F> {
    Named {
        f,
        token: Token::create(
            Registry::global(),
            SeriesKind::Token,
            name,
            Location::caller(),
        ),
    }
}

/// Like [`named`], counted in `registry`.
#[track_caller]
pub fn named_in<F>(registry: &Registry, name: &str, f: F) -> Named<F> {
    Named {
        f,
        token: Token::create(registry, SeriesKind::Token, name, Location::caller()),
    }
}

impl<F> Named<F> {
    pub(crate) fn from_parts(f: F, token: Token) -> Named<F> {
        Named { f, token }
    }

    /// The token counting this value.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The name it is counted under.
    pub fn name(&self) -> &str {
        self.token.name()
    }

    /// Takes the value out; it stops being counted.
    pub fn into_inner(self) -> F {
        self.f
    }
}

impl<F> Deref for Named<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.f
    }
}

impl<F> DerefMut for Named<F> {
    fn deref_mut(&mut self) -> &mut F {
        &mut self.f
    }
}

impl<F> fmt::Debug for Named<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.token.name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_and_sites_are_reported() {
        let reg = Registry::new();
        let a = Token::new_in(&reg, "t");
        let b = a.clone();
        let snap = reg.snapshot();
        let s = snap.get("t").unwrap();
        assert_eq!((s.created, s.live), (2, 2));
        assert_eq!(
            s.sites.len(),
            2,
            "two distinct creation sites: {:?}",
            s.sites
        );
        assert!(
            s.sites
                .iter()
                .all(|site| site.location.contains("token.rs"))
        );
        drop((a, b));
        let s2 = reg.snapshot();
        assert_eq!(s2.get("t").unwrap().live, 0);
        assert!(s2.get("t").unwrap().sites.is_empty());
    }

    #[test]
    fn named_closure_is_callable_and_counted() {
        let reg = Registry::new();
        let mut hits = 0;
        {
            let mut f = named_in(&reg, "cb", |x: u32| hits += x);
            f(2);
            f(3);
            assert_eq!(reg.snapshot().live("cb"), 1);
        }
        assert_eq!(hits, 5);
        assert_eq!(reg.snapshot().live("cb"), 0);
    }

    static STATIC_TOKENS: StaticSeries = StaticSeries::tokens("token_test.static");

    #[test]
    fn static_series_tokens_count_in_the_global_snapshot_with_the_declaration_site() {
        let a = STATIC_TOKENS.token();
        let b = a.clone();
        let f = STATIC_TOKENS.named(|x: u32| x + 1);
        let lean = STATIC_TOKENS.static_token();
        let lean2 = lean.clone();
        assert_eq!(STATIC_TOKENS.counts().live, 5);
        drop((lean, lean2));
        assert_eq!(f(1), 2);
        assert_eq!(
            (a.name(), f.name()),
            ("token_test.static", "token_test.static")
        );
        let snap = Registry::global().snapshot();
        let s = snap.get("token_test.static").unwrap();
        assert_eq!((s.kind, s.created, s.live), (SeriesKind::Token, 5, 3));
        assert_eq!(s.sites.len(), 1);
        assert!(s.sites[0].location.contains("token.rs"), "{:?}", s.sites);
        assert_eq!(s.sites[0].live, 3);
        drop((a, b, f));
        let c = STATIC_TOKENS.counts();
        assert_eq!((c.created, c.dropped, c.live), (5, 5, 0));
        let snap = Registry::global().snapshot();
        assert!(snap.get("token_test.static").unwrap().sites.is_empty());
    }
}

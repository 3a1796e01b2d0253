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

use crate::registry::{Registry, Series};
use crate::scope::Binding;
use crate::site::SiteLocation;
use crate::snapshot::SeriesKind;

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
    series: Arc<Series>,
    site: SiteLocation,
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
        series.sites.add(site);
        Token {
            series,
            site,
            binding: None,
        }
    }

    /// The name this token is counted under.
    pub fn name(&self) -> &str {
        &self.series.name
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
        Token::for_series(self.series.clone(), Location::caller())
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // Unbind first so a scope never reports an item that is already gone.
        self.binding.take();
        self.series.sites.remove(self.site);
        self.series.items.incr(crate::counter::Half::Down);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.series.name)
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
}

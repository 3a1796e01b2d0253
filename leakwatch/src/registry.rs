//! The set of series leakwatch knows: the global registry, and isolated ones for tests.
//!
//! A registry maps series names to their counters. Tokens, callback registries, scopes and
//! connections are created *in* a registry (the global one unless you pass another), and
//! every series with the same name and kind shares one set of counters. `#[tracked]` types are
//! process-wide statics and appear only in the global registry's snapshots.
//!
//! Reading a registry ([`Registry::snapshot`]) lives in `snapshot`, and creating a gauge in
//! it ([`Registry::gauge`]) in `gauge`: the registry itself only holds things.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

use crate::finding::{FindingLog, ScopeFinding, ScopeObserverId};
use crate::series::{GaugeSet, Series, SeriesKind};

pub(crate) struct RegistryInner {
    pub(crate) global: bool,
    /// Keyed by (name, kind): iterating gives the snapshot's order, so snapshots need no sort.
    pub(crate) series: RwLock<BTreeMap<(String, SeriesKind), Arc<Series>>>,
    /// The same series in the same order as one array, rebuilt after a series was added
    /// (series are never removed, so a count that differs from the map's means stale): a
    /// snapshot walks 10 000 pointers in a row instead of the map's nodes.
    ordered: Mutex<Arc<[Arc<Series>]>>,
    pub(crate) findings: FindingLog,
    pub(crate) gauges: GaugeSet,
}

/// A set of series. [`Registry::global`] is where everything is counted by default;
/// [`Registry::new`] makes an isolated one so parallel tests do not see each other's counts.
///
/// Cloning a `Registry` gives another handle to the same set.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<RegistryInner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("global", &self.inner.global)
            .field("series", &self.inner.series.read().len())
            .finish()
    }
}

static GLOBAL: OnceLock<Registry> = OnceLock::new();
impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    fn make(global: bool) -> Registry {
        Registry {
            inner: Arc::new(RegistryInner {
                global,
                series: RwLock::new(BTreeMap::new()),
                ordered: Mutex::new(Arc::new([])),
                findings: FindingLog::default(),
                gauges: Default::default(),
            }),
        }
    }

    /// A new, empty, isolated registry. Its snapshots contain only the series created in it
    /// (no `#[tracked]` types, no process memory).
    pub fn new() -> Registry {
        Registry::make(false)
    }

    /// The process-wide registry used by everything that is not given another one.
    pub fn global() -> &'static Registry {
        GLOBAL.get_or_init(|| Registry::make(true))
    }

    /// Whether this is the process-wide registry.
    pub fn is_global(&self) -> bool {
        self.inner.global
    }

    /// The series `name` of `kind`, created on first use.
    pub(crate) fn series(&self, kind: SeriesKind, name: &str) -> Arc<Series> {
        // Fast path under the read lock: names are reused far more often than they are new.
        if let Some(s) = self
            .inner
            .series
            .read()
            .get(&(name.to_owned(), kind))
            .cloned()
        {
            return s;
        }
        self.inner
            .series
            .write()
            .entry((name.to_owned(), kind))
            .or_insert_with(|| Arc::new(Series::new(name, kind)))
            .clone()
    }

    /// Every series, sorted by name then kind.
    pub(crate) fn ordered_series(&self) -> Arc<[Arc<Series>]> {
        let map = self.inner.series.read();
        let mut ordered = self.inner.ordered.lock();
        if ordered.len() != map.len() {
            *ordered = map.values().cloned().collect();
        }
        ordered.clone()
    }

    /// Calls `observer` for every scope finding (late registration, outlived scope) in this
    /// registry the moment it is detected. Observers must be quick; a panicking observer is
    /// caught and counted, never propagated. The returned id removes it again
    /// ([`remove_scope_observer`](Self::remove_scope_observer)); ignoring it keeps the observer
    /// for the registry's lifetime.
    pub fn on_scope_finding(
        &self,
        observer: impl Fn(&ScopeFinding) + Send + Sync + 'static,
    ) -> ScopeObserverId {
        self.inner.findings.add_observer(Arc::new(observer))
    }

    /// Removes an observer added with [`on_scope_finding`](Self::on_scope_finding); false if it
    /// was already removed. It may still be running for a finding reported just before.
    pub fn remove_scope_observer(&self, id: ScopeObserverId) -> bool {
        self.inner.findings.remove_observer(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::Half;

    #[test]
    fn same_name_and_kind_share_a_series() {
        let r = Registry::new();
        let a = r.series(SeriesKind::Token, "x");
        let b = r.series(SeriesKind::Token, "x");
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.series(SeriesKind::Callbacks, "x");
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn isolated_registries_do_not_share() {
        let r1 = Registry::new();
        let r2 = Registry::new();
        r1.series(SeriesKind::Token, "x").items.incr(Half::Up);
        assert_eq!(r1.snapshot().get("x").unwrap().live, 1);
        assert!(r2.snapshot().get("x").is_none());
    }
}

//! The set of series leakwatch knows: the global registry, and isolated ones for tests.
//!
//! A registry maps series names to their counters. Tokens, callback registries, scopes and
//! connections are created *in* a registry (the global one unless you pass another), and
//! every series with the same name and kind shares one set of counters. `#[tracked]` types are
//! process-wide statics and appear only in the global registry's snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::counter::{BatchReader, Half, Pair, PairCounter};
use crate::scope::{FindingLog, ScopeFinding, ScopeObserverId};
use crate::site::SiteTable;
use crate::snapshot::{Extra, SeriesKind, SeriesSnapshot, Snapshot};
use crate::tracked::TypeStats;

/// A named series: the live items of one kind under one name, plus its per-kind totals.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) kind: SeriesKind,
    pub(crate) items: PairCounter,
    pub(crate) peak: AtomicU64,
    pub(crate) sites: SiteTable,
    /// Per-kind event totals, e.g. `delivered` for callbacks or `closed_aborted` for
    /// connections. Only the `Up` half is used.
    pub(crate) extras: Box<[(&'static str, PairCounter)]>,
}

impl Series {
    fn new(name: &str, kind: SeriesKind) -> Series {
        Series {
            name: name.to_owned(),
            kind,
            items: PairCounter::new(),
            peak: AtomicU64::new(0),
            sites: SiteTable::default(),
            extras: kind
                .extra_names()
                .iter()
                .map(|n| (*n, PairCounter::new()))
                .collect(),
        }
    }

    /// Adds `n` to the extra total `which` (one of the kind's [`SeriesKind::extras`]).
    pub(crate) fn bump(&self, which: Extra, n: u64) {
        // `extras` holds the kind's totals in the order of `SeriesKind::extras`.
        if let Some(i) = self.kind.extras().iter().position(|e| *e == which) {
            self.extras[i].1.add(Half::Up, n);
        } else {
            debug_assert!(false, "series kind {:?} has no extra {which:?}", self.kind);
        }
    }

    pub(crate) fn snapshot(
        &self,
        reader: &BatchReader,
        now: Instant,
        detail: Detail,
    ) -> SeriesSnapshot {
        let pair = reader.read(&self.items);
        let peak = record_peak(&self.peak, pair);
        SeriesSnapshot {
            name: self.name.clone(),
            kind: self.kind,
            created: pair.up,
            dropped: pair.down,
            live: pair.live(),
            peak,
            live_bytes: None,
            extra: self
                .extras
                .iter()
                .map(|(n, c)| ((*n).to_owned(), reader.read(c).up))
                .collect(),
            sites: match detail {
                Detail::WithSites => self.sites.snapshot(now),
                Detail::CountsOnly => Vec::new(),
            },
        }
    }
}

/// How much a snapshot reads besides the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Creation sites of live items too (a lock and a small sort per series).
    WithSites,
    /// Counts only: what samplers and exporters need every tick.
    CountsOnly,
}

/// Raises `peak` to the live count just read and returns the high-water mark.
pub(crate) fn record_peak(peak: &AtomicU64, pair: Pair) -> u64 {
    let live = pair.live();
    peak.fetch_max(live, Ordering::Relaxed).max(live)
}

pub(crate) struct RegistryInner {
    global: bool,
    series: RwLock<BTreeMap<(SeriesKind, String), Arc<Series>>>,
    pub(crate) findings: FindingLog,
    pub(crate) gauges: crate::gauge::GaugeSet,
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
/// Every `#[tracked]` type that has had at least one instance, in first-use order.
static TYPES: Mutex<Vec<&'static TypeStats>> = Mutex::new(Vec::new());

pub(crate) fn register_type(stats: &'static TypeStats) {
    let mut types = TYPES.lock();
    if types
        .iter()
        .any(|t| t.name() == stats.name() && t.kind() == stats.kind())
    {
        // Snapshots sum same-named types into one series; say so once per clash, as the
        // user probably meant two series.
        tracing::warn!(
            series = stats.name(),
            "two #[tracked] types share the series name {:?}; their counts are summed \
             (give one a distinct #[tracked(name = \"...\")])",
            stats.name()
        );
    }
    types.push(stats);
}

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
            .get(&(kind, name.to_owned()))
            .cloned()
        {
            return s;
        }
        self.inner
            .series
            .write()
            .entry((kind, name.to_owned()))
            .or_insert_with(|| Arc::new(Series::new(name, kind)))
            .clone()
    }

    /// Every series of this registry, read now, with the creation sites of live items.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(Detail::WithSites)
    }

    /// Like [`snapshot`](Self::snapshot) without creation sites: cheaper, for code that reads
    /// every series often (samplers, exporters).
    pub fn snapshot_counts(&self) -> Snapshot {
        self.snapshot_with(Detail::CountsOnly)
    }

    fn snapshot_with(&self, detail: Detail) -> Snapshot {
        let now = Instant::now();
        let reader = BatchReader::new();
        let mut series: Vec<SeriesSnapshot> = self
            .inner
            .series
            .read()
            .values()
            .map(|s| s.snapshot(&reader, now, detail))
            .collect();
        if self.inner.global {
            let types: Vec<&'static TypeStats> = TYPES.lock().clone();
            series.extend(types.iter().map(|t| t.snapshot(&reader)));
        }
        series.extend(self.inner.gauges.read());
        let memory = if self.inner.global {
            crate::memory::Memory::read()
        } else {
            crate::memory::Memory::default()
        };
        Snapshot::assemble(self.clone(), series, memory, self.inner.findings.recent())
    }

    /// Samples `read` at every snapshot of this registry as the series `name` (kind
    /// [`SeriesKind::Gauge`], metric `live.<name>`) until the returned handle is dropped.
    /// `read` returns `None` when it has no value (the series is then absent from that
    /// snapshot); it runs on the thread taking the snapshot, so it must be quick. See
    /// [`crate::process`] and, with the `tokio` feature, the `runtime` module for ready-made ones.
    pub fn gauge(
        &self,
        name: &str,
        read: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> crate::gauge::Gauge {
        crate::gauge::Gauge::register(self, name, Arc::new(read))
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

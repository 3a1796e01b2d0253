//! A series as counted and as read: what kind of thing it counts ([`SeriesKind`]), its
//! per-kind totals ([`Extra`]), the counters behind one name ([`Series`]) and one reading of
//! them ([`SeriesSnapshot`], [`Counts`]). Plain types shared by the counting handles, the
//! registry and snapshots, so none of those needs another for them.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;

use serde::{Deserialize, Serialize};

use crate::counter::{BatchReader, Half, Pair, PairCounter};
use crate::site::{Site, SiteTable};

/// What kind of thing a series counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Instances of a `#[tracked]` type.
    Type,
    /// [`Token`](crate::Token)s and [`named`](crate::named) callbacks.
    Token,
    /// Registrations in a [`Callbacks`](crate::Callbacks) registry.
    Callbacks,
    /// Open connections of a [`Connections`](crate::Connections) tracker.
    Connections,
    /// Open [`Scope`](crate::Scope)s.
    Scope,
    /// An [`EventCounter`](crate::EventCounter): only `created` (the total) is meaningful.
    Counter,
    /// A value sampled when the snapshot is taken ([`Registry::gauge`](crate::Registry::gauge)): open sockets, a
    /// runtime's alive tasks. Only `live` (the value read) is meaningful.
    Gauge,
}

/// A per-kind event total of a series (besides created/dropped): the one place these names
/// are spelled. Counting code names them by variant, so a typo does not compile instead of
/// silently counting nothing; the string is the snapshot's `extra` key and the metric name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extra {
    /// Callback calls made by emits.
    Delivered,
    /// Emits.
    Emitted,
    /// Connections closed normally.
    ClosedNormal,
    /// Connections whose response was aborted.
    ClosedAborted,
    /// Connections found dead by their liveness check.
    ClosedDead,
    /// Connections closed by an error.
    ClosedError,
    /// Connections the reaper closed.
    Reaped,
    /// Registrations refused because their scope had closed.
    Late,
    /// Bound items still alive a grace period after their scope closed.
    Outlived,
}

impl Extra {
    /// The name in snapshots (`extra`) and metrics (`<name>.<series>`).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Extra::Delivered => "delivered",
            Extra::Emitted => "emitted",
            Extra::ClosedNormal => "closed_normal",
            Extra::ClosedAborted => "closed_aborted",
            Extra::ClosedDead => "closed_dead",
            Extra::ClosedError => "closed_error",
            Extra::Reaped => "reaped",
            Extra::Late => "late",
            Extra::Outlived => "outlived",
        }
    }
}

/// The names of `extras`, in order, at compile time.
const fn extra_names<const N: usize>(extras: [Extra; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = extras[i].name();
        i += 1;
    }
    out
}

const CALLBACK_EXTRAS: [Extra; 2] = [Extra::Delivered, Extra::Emitted];
const CONNECTION_EXTRAS: [Extra; 5] = [
    Extra::ClosedNormal,
    Extra::ClosedAborted,
    Extra::ClosedDead,
    Extra::ClosedError,
    Extra::Reaped,
];
const SCOPE_EXTRAS: [Extra; 2] = [Extra::Late, Extra::Outlived];
static CALLBACK_NAMES: [&str; 2] = extra_names(CALLBACK_EXTRAS);
static CONNECTION_NAMES: [&str; 5] = extra_names(CONNECTION_EXTRAS);
static SCOPE_NAMES: [&str; 2] = extra_names(SCOPE_EXTRAS);

impl SeriesKind {
    /// The per-kind totals of this kind, in the order of [`extra_names`](Self::extra_names).
    pub(crate) fn extras(self) -> &'static [Extra] {
        match self {
            SeriesKind::Type | SeriesKind::Token | SeriesKind::Counter | SeriesKind::Gauge => &[],
            SeriesKind::Callbacks => &CALLBACK_EXTRAS,
            SeriesKind::Connections => &CONNECTION_EXTRAS,
            SeriesKind::Scope => &SCOPE_EXTRAS,
        }
    }

    /// The per-kind event totals a series of this kind carries besides created/dropped.
    pub fn extra_names(self) -> &'static [&'static str] {
        match self {
            SeriesKind::Type | SeriesKind::Token | SeriesKind::Counter | SeriesKind::Gauge => &[],
            SeriesKind::Callbacks => &CALLBACK_NAMES,
            SeriesKind::Connections => &CONNECTION_NAMES,
            SeriesKind::Scope => &SCOPE_NAMES,
        }
    }

    /// Whether `live` counts items that exist now and should eventually go away. False for
    /// [`Counter`](SeriesKind::Counter), whose `live` is its running total of events: a counter
    /// that moved is not a leak.
    pub fn has_live_items(self) -> bool {
        !matches!(self, SeriesKind::Counter)
    }

    /// Lower-case name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::Type => "type",
            SeriesKind::Token => "token",
            SeriesKind::Callbacks => "callbacks",
            SeriesKind::Connections => "connections",
            SeriesKind::Scope => "scope",
            SeriesKind::Counter => "counter",
            SeriesKind::Gauge => "gauge",
        }
    }
}

/// A series name, shared by the registry and every snapshot that reads the series: a snapshot
/// of 10 000 series copies 10 000 pointers instead of allocating 10 000 strings.
///
/// It reads like a `&str` (through `Deref`, `as_str`, `==` with `&str` and `String`,
/// `Display`) and serialises as a plain string.
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let _t = leakwatch::Token::new_in(&reg, "jobs");
/// let snap = reg.snapshot();
/// assert_eq!(snap.series[0].name, "jobs");
/// assert!(snap.series[0].name.starts_with("jo"));
/// let owned: String = snap.series[0].name.to_string();
/// assert_eq!(owned, "jobs");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesName(Arc<str>);

impl SeriesName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the very same shared name (not merely equal text): one pointer
    /// comparison, without reading either name.
    pub(crate) fn same(&self, other: &SeriesName) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for SeriesName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SeriesName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SeriesName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SeriesName {
    fn from(name: &str) -> Self {
        SeriesName(name.into())
    }
}

impl From<String> for SeriesName {
    fn from(name: String) -> Self {
        SeriesName(name.into())
    }
}

impl From<SeriesName> for String {
    fn from(name: SeriesName) -> Self {
        name.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SeriesName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SeriesName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SeriesName {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<SeriesName> for str {
    fn eq(&self, other: &SeriesName) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SeriesName> for &str {
    fn eq(&self, other: &SeriesName) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SeriesName> for String {
    fn eq(&self, other: &SeriesName) -> bool {
        self.as_str() == &*other.0
    }
}

impl Serialize for SeriesName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SeriesName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SeriesName::from)
    }
}

/// Counts of a `#[tracked]` type or any other series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counts {
    /// Items ever created (tracked instances, tokens, registrations, opened connections).
    pub created: u64,
    /// Items dropped, unregistered or closed.
    pub dropped: u64,
    /// `created - dropped`: items alive now.
    pub live: u64,
    /// Highest live count observed by any read (counts, snapshot, watchdog sample). Exact
    /// peaks would need a shared write on every creation; sampling keeps counting contention-free.
    pub peak: u64,
    /// Approximate heap/stack bytes held by live instances (`size_of::<T>() × live`), for
    /// tracked types.
    pub live_bytes: Option<u64>,
}

/// One series as read in a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    /// Series name, e.g. `presence.Watch` or `presence.relay` (shared with the registry, so
    /// reading it costs no allocation).
    pub name: SeriesName,
    /// What the series counts.
    pub kind: SeriesKind,
    /// Items ever created.
    pub created: u64,
    /// Items dropped.
    pub dropped: u64,
    /// Items alive.
    pub live: u64,
    /// Sampled high-water mark of `live`.
    pub peak: u64,
    /// `size_of × live` for tracked types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_bytes: Option<u64>,
    /// Per-kind totals (see [`SeriesKind::extra_names`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, u64>,
    /// Creation sites with live items, oldest first, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<Site>,
}

impl SeriesSnapshot {
    /// The counts of this series.
    pub fn counts(&self) -> Counts {
        Counts {
            created: self.created,
            dropped: self.dropped,
            live: self.live,
            peak: self.peak,
            live_bytes: self.live_bytes,
        }
    }

    /// An extra total such as `delivered` or `closed_aborted` (0 if absent).
    pub fn extra(&self, name: &str) -> u64 {
        self.extra.get(name).copied().unwrap_or(0)
    }
}

/// A named series: the live items of one kind under one name, plus its per-kind totals.
///
/// Laid out for the snapshot that reads 10 000 of them a tick, each in its own allocation
/// (cold by then: the detectors' state went through the cache in between): what a counts-only
/// reading touches (the name's pointer, the counter, the peak, the totals' pointer) comes
/// first, in 64 bytes, so a series costs at most two cache lines.
#[repr(C)]
pub(crate) struct Series {
    /// Allocated for this series alone (never shared with another series): a snapshot read
    /// into an earlier one recognises the series by this pointer (`snapshot::refill`).
    pub(crate) name: SeriesName,
    pub(crate) items: PairCounter,
    pub(crate) peak: AtomicU64,
    /// Per-kind event totals, e.g. `delivered` for callbacks or `closed_aborted` for
    /// connections. Only the `Up` half is used.
    pub(crate) extras: Box<[(&'static str, PairCounter)]>,
    pub(crate) kind: SeriesKind,
    pub(crate) sites: SiteTable,
}

// The line a counts-only reading touches: name (16), counter (24), peak (8), totals (16).
const _: () = assert!(std::mem::offset_of!(Series, kind) == 64);

impl Series {
    pub(crate) fn new(name: &str, kind: SeriesKind) -> Series {
        Series {
            name: name.into(),
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

impl Series {
    /// Reads this series' counts into `slot`, a reading of this same series from an earlier
    /// snapshot, leaving it as [`snapshot`](Self::snapshot) with [`Detail::CountsOnly`]
    /// would build it: nothing is allocated and the shared name is not touched (a watchdog
    /// reads 10 000 series a tick, and cloning and dropping 10 000 names cost a cache miss
    /// each on memory that the counts never need).
    pub(crate) fn read_into(&self, reader: &BatchReader, slot: &mut SeriesSnapshot) {
        // Each series has a name of its own, so the same name means the same series (and
        // kind): `kind`, outside the first cache line, is not read.
        debug_assert!(slot.name.same(&self.name) && slot.kind == self.kind);
        let pair = reader.read(&self.items);
        slot.created = pair.up;
        slot.dropped = pair.down;
        slot.live = pair.live();
        slot.peak = record_peak(&self.peak, pair);
        slot.live_bytes = None;
        slot.sites.clear();
        // The slot holds this kind's totals unless its owner changed them: then it gets
        // them anew.
        let same_keys = slot.extra.len() == self.extras.len()
            && self.extras.iter().all(|(n, _)| slot.extra.contains_key(*n));
        if !same_keys {
            slot.extra.clear();
        }
        for (n, c) in self.extras.iter() {
            let value = reader.read(c).up;
            match slot.extra.get_mut(*n) {
                Some(v) => *v = value,
                None => {
                    slot.extra.insert((*n).to_owned(), value);
                }
            }
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
    // Load first: the peak rarely rises, and an unconditional `fetch_max` is a locked
    // read-modify-write that dirties every series' cache line on every snapshot.
    let seen = peak.load(Ordering::Relaxed);
    if live <= seen {
        return seen;
    }
    peak.fetch_max(live, Ordering::Relaxed).max(live)
}

/// Reads a gauge's value (`None`: no value this time).
pub(crate) type Sampler = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

struct Entry {
    id: u64,
    name: SeriesName,
    sample: Sampler,
    peak: AtomicU64,
}

/// The gauges of one registry: sampled values read at each of its snapshots.
#[derive(Default)]
pub(crate) struct GaugeSet {
    entries: RwLock<Vec<Arc<Entry>>>,
    next_id: AtomicU64,
    /// Samplers that panicked: their reading is left out of that snapshot.
    panics: AtomicU64,
}

impl GaugeSet {
    pub(crate) fn add(&self, name: &str, sample: Sampler) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.entries.write().push(Arc::new(Entry {
            id,
            name: name.into(),
            sample,
            peak: AtomicU64::new(0),
        }));
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.entries.write().retain(|e| e.id != id);
    }

    /// Reads every gauge. Samplers run outside the lock, so one that registers or drops a
    /// gauge cannot deadlock, and a panicking one is caught, counted and left out.
    pub(crate) fn read(&self) -> Vec<SeriesSnapshot> {
        let entries: Vec<Arc<Entry>> = self.entries.read().clone();
        entries
            .iter()
            .filter_map(|e| {
                let value = match catch_unwind(AssertUnwindSafe(|| (e.sample)())) {
                    Ok(v) => v?,
                    Err(_) => {
                        self.panics.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                };
                let peak = e.peak.fetch_max(value, Ordering::Relaxed).max(value);
                Some(SeriesSnapshot {
                    name: e.name.clone(),
                    kind: SeriesKind::Gauge,
                    created: 0,
                    dropped: 0,
                    live: value,
                    peak,
                    live_bytes: None,
                    extra: Default::default(),
                    sites: Vec::new(),
                })
            })
            .collect()
    }

    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

//! Instance counting for `#[tracked]` types: one `static` [`TypeStats`] per type, bumped by the
//! zero-sized [`Tracker`] field that the user writes and the attribute finds.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::counter::{BatchReader, Half, Pair, PairCounter, StripedCounter};
use crate::series::record_peak;
use crate::series::{Counts, SeriesKind, SeriesSnapshot};

/// How a type's live bytes are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    /// Every instance has this `size_of`.
    Fixed(usize),
    /// Generic type: each instantiation adds its own `size_of` to `TypeStats::bytes`.
    PerInstance,
    /// `?Sized` or unsized tail: not reported.
    Unknown,
}

/// Counters of one `#[tracked]` type (the macro emits one `static` per type), or of one
/// [`StaticSeries`](crate::StaticSeries).
#[doc(hidden)]
pub struct TypeStats {
    name: &'static str,
    kind: SeriesKind,
    /// Where a `StaticSeries` was declared: reported as the creation site of its live items.
    site: Option<&'static Location<'static>>,
    /// Milliseconds after [`epoch`] + 1 at which a read first saw items live since the last
    /// read that saw none (0: none live). Sampled like `peak`.
    live_since: AtomicU64,
    size: Size,
    counter: StripedCounter,
    /// Set once the type is in the registry.
    registered: AtomicBool,
    /// Bytes created/dropped, used only by generic types (`Size::PerInstance`).
    bytes: PairCounter,
    peak: AtomicU64,
}

impl TypeStats {
    /// Counters for a type called `name` whose values are `size` bytes.
    pub const fn new(name: &'static str, size: usize) -> TypeStats {
        TypeStats::with_size(name, Size::Fixed(size))
    }

    /// Counters for a generic type: instantiations differ in size, so each instance reports its
    /// own ([`Tracked::__LEAKWATCH_INSTANCE_BYTES`]).
    pub const fn new_generic(name: &'static str) -> TypeStats {
        TypeStats::with_size(name, Size::PerInstance)
    }

    /// Counters for a type whose size is not known statically (live bytes not reported).
    pub const fn new_unsized(name: &'static str) -> TypeStats {
        TypeStats::with_size(name, Size::Unknown)
    }

    const fn with_size(name: &'static str, size: Size) -> TypeStats {
        TypeStats {
            name,
            kind: SeriesKind::Type,
            site: None,
            live_since: AtomicU64::new(0),
            size,
            counter: StripedCounter::new(),
            registered: AtomicBool::new(false),
            bytes: PairCounter::new_hot(),
            peak: AtomicU64::new(0),
        }
    }

    /// Counters for a [`StaticSeries`](crate::StaticSeries) of `kind` declared at `site`.
    pub(crate) const fn for_series(
        name: &'static str,
        kind: SeriesKind,
        site: &'static Location<'static>,
    ) -> TypeStats {
        let mut stats = TypeStats::with_size(name, Size::Unknown);
        stats.kind = kind;
        stats.site = Some(site);
        stats
    }

    /// The kind of series these counters are reported as.
    pub(crate) fn kind(&self) -> SeriesKind {
        self.kind
    }

    /// Series name of the type.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Counts one new instance.
    #[inline]
    pub fn on_create(&'static self) {
        // The increment already loaded the stripe's old total: 0 means this stripe never saw
        // an instance, the only time registration can be missing, at no extra load.
        match self.counter.try_incr(Half::Up) {
            Some(0) => self.ensure_registered(),
            Some(_) => {}
            None => self.create_slow(),
        }
    }

    /// Counts one dropped instance.
    #[inline]
    pub fn on_drop(&'static self) {
        if self.counter.try_incr(Half::Down).is_none() {
            self.counter.add_slow(Half::Down);
        }
    }

    /// A thread without a stripe (yet).
    #[cold]
    #[inline(never)]
    fn create_slow(&'static self) {
        self.ensure_registered();
        self.counter.add_slow(Half::Up);
    }

    /// Adds `n` bytes created (`Half::Up`) or dropped, for generic types.
    #[inline]
    fn on_bytes(&'static self, half: Half, n: usize) {
        self.bytes.add(half, n as u64);
    }

    #[cold]
    fn ensure_registered(&'static self) {
        if !self.registered.load(Ordering::Acquire)
            && self
                .registered
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            register_type(self);
        }
    }

    fn live_bytes(&self, live: u64, bytes: impl FnOnce(&PairCounter) -> Pair) -> Option<u64> {
        match self.size {
            Size::Fixed(n) => Some(live * n as u64),
            Size::PerInstance => Some(bytes(&self.bytes).live()),
            Size::Unknown => None,
        }
    }

    /// Counts now.
    pub fn counts(&self) -> Counts {
        let pair = self.counter.read();
        let live = pair.live();
        Counts {
            created: pair.up,
            dropped: pair.down,
            live,
            peak: record_peak(&self.peak, pair),
            live_bytes: self.live_bytes(live, PairCounter::read),
        }
    }

    pub(crate) fn snapshot(&self, reader: &BatchReader) -> SeriesSnapshot {
        let pair = self.counter.read_batch(reader);
        let live = pair.live();
        let sites = match self.site {
            Some(site) if live > 0 => vec![crate::site::Site {
                location: crate::site::fmt_location(site),
                live,
                age_ms: self.live_for_ms(),
            }],
            _ => {
                self.live_since.store(0, Ordering::Relaxed);
                Vec::new()
            }
        };
        SeriesSnapshot {
            name: self.name.into(),
            kind: self.kind,
            created: pair.up,
            dropped: pair.down,
            live,
            peak: record_peak(&self.peak, pair),
            live_bytes: self.live_bytes(live, |c| reader.read(c)),
            extra: self
                .kind
                .extra_names()
                .iter()
                .map(|n| ((*n).to_owned(), 0))
                .collect(),
            sites,
        }
    }

    /// How long items have been live, as far as reads have seen (the first read that found
    /// some after one that found none starts the clock).
    fn live_for_ms(&self) -> u64 {
        let now = epoch().elapsed().as_millis() as u64 + 1;
        match self
            .live_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => 0,
            Err(since) => now.saturating_sub(since),
        }
    }

    /// Length of `path` with every `::` turned into `.` (for the default series name, computed
    /// at compile time by the generated code).
    pub const fn dotted_len(path: &str) -> usize {
        let b = path.as_bytes();
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            if b[i] == b':' && i + 1 < b.len() && b[i + 1] == b':' {
                i += 2;
            } else {
                i += 1;
            }
            n += 1;
        }
        n
    }

    /// `path` with every `::` turned into `.`; `N` must be [`TypeStats::dotted_len`]`(path)`.
    pub const fn dotted<const N: usize>(path: &str) -> [u8; N] {
        let b = path.as_bytes();
        let mut out = [0u8; N];
        let (mut i, mut o) = (0, 0);
        while i < b.len() {
            if b[i] == b':' && i + 1 < b.len() && b[i + 1] == b':' {
                out[o] = b'.';
                i += 2;
            } else {
                out[o] = b[i];
                i += 1;
            }
            o += 1;
        }
        out
    }

    /// The bytes made by [`TypeStats::dotted`] as a `&str` (they came from a `&str` with
    /// ASCII `::` replaced by ASCII `.`, so they are UTF-8).
    pub const fn str_from_utf8(bytes: &'static [u8]) -> &'static str {
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => panic!("series name is not UTF-8"),
        }
    }
}

/// The clock `TypeStats::live_since` counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A type whose instances are counted. Implemented by `#[leakwatch::tracked]`; do not
/// implement it by hand.
pub trait Tracked {
    /// The type's counters.
    #[doc(hidden)]
    fn __leakwatch_stats() -> &'static TypeStats;

    /// `Some(size_of::<Self>())` for generic types, whose shared counters cannot know the size
    /// of each instantiation; `None` when the size is fixed (kept in [`TypeStats`]) or unknown.
    #[doc(hidden)]
    const __LEAKWATCH_INSTANCE_BYTES: Option<usize> = None;
}

/// Counts of a tracked type.
///
/// ```
/// #[leakwatch::tracked]
/// struct Watch {
///     user: u32,
///     tracker: leakwatch::Tracker<Self>,
/// }
///
/// let w = Watch { user: 1, tracker: leakwatch::Tracker::new() };
/// assert_eq!(leakwatch::counts::<Watch>().live, 1);
/// drop(w);
/// assert_eq!(leakwatch::counts::<Watch>().live, 0);
/// ```
pub fn counts<T: Tracked + ?Sized>() -> Counts {
    T::__leakwatch_stats().counts()
}

/// The zero-sized field of a `#[tracked]` struct: creating one counts an instance, dropping
/// one counts a drop, cloning counts a new instance.
///
/// Declare it as `tracker: Tracker<Self>` (any name) and set it with [`Tracker::new`] or
/// `Default::default()`:
///
/// ```
/// use leakwatch::Tracker;
///
/// #[leakwatch::tracked(name = "docs.Session")]
/// struct Session(u64, Tracker<Self>);
///
/// let s = Session(7, Tracker::new());
/// assert_eq!(leakwatch::counts::<Session>().live, 1);
/// let Session(id, _) = s; // `_` does not move the tracker: `s` still holds it
/// assert_eq!(id, 7);
/// ```
pub struct Tracker<T: Tracked + ?Sized> {
    _type: PhantomData<fn() -> T>,
}

impl<T: Tracked + ?Sized> Tracker<T> {
    /// Counts a new instance of `T`.
    #[inline]
    pub fn new() -> Self {
        let stats = T::__leakwatch_stats();
        stats.on_create();
        // A constant per type: this branch disappears for non-generic types.
        if let Some(n) = T::__LEAKWATCH_INSTANCE_BYTES {
            stats.on_bytes(Half::Up, n);
        }
        Tracker { _type: PhantomData }
    }
}

impl<T: Tracked + ?Sized> Default for Tracker<T> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Tracked + ?Sized> Clone for Tracker<T> {
    #[inline]
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T: Tracked + ?Sized> Drop for Tracker<T> {
    #[inline]
    fn drop(&mut self) {
        let stats = T::__leakwatch_stats();
        stats.on_drop();
        if let Some(n) = T::__LEAKWATCH_INSTANCE_BYTES {
            stats.on_bytes(Half::Down, n);
        }
    }
}

impl<T: Tracked + ?Sized> std::fmt::Debug for Tracker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracker")
    }
}

// The tracker never makes two values unequal or hash differently: counting is not identity.
impl<T: Tracked + ?Sized> PartialEq for Tracker<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T: Tracked + ?Sized> Eq for Tracker<T> {}
impl<T: Tracked + ?Sized> PartialOrd for Tracker<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Tracked + ?Sized> Ord for Tracker<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
impl<T: Tracked + ?Sized> std::hash::Hash for Tracker<T> {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Every `#[tracked]` type that has had at least one instance, in first-use order.
static TYPES: Mutex<Vec<&'static TypeStats>> = Mutex::new(Vec::new());

fn register_type(stats: &'static TypeStats) {
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

/// The `#[tracked]` types that have had an instance so far (the global registry's snapshot
/// reads them).
pub(crate) fn types() -> Vec<&'static TypeStats> {
    TYPES.lock().clone()
}

//! Instance counting for `#[tracked]` types: one `static` [`TypeStats`] per type, bumped by a
//! zero-sized [`Tracker`] field that the attribute injects.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;

use crate::counter::{BatchReader, Half, PairCounter};
use crate::registry::record_peak;
use crate::snapshot::{Counts, SeriesKind, SeriesSnapshot};

/// Counters of one `#[tracked]` type. The macro emits one `static` per type.
#[doc(hidden)]
pub struct TypeStats {
    name: &'static str,
    size: usize,
    counter: PairCounter,
    peak: AtomicU64,
}

impl TypeStats {
    /// Counters for a type called `name` whose values are `size` bytes.
    pub const fn new(name: &'static str, size: usize) -> TypeStats {
        TypeStats {
            name,
            size,
            counter: PairCounter::new(),
            peak: AtomicU64::new(0),
        }
    }

    /// Series name of the type.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Counts one new instance.
    #[inline]
    pub fn on_create(&'static self) {
        if !self.counter.has_id() {
            self.first_use();
        }
        self.counter.incr(Half::Up);
    }

    /// Counts one dropped instance.
    #[inline]
    pub fn on_drop(&'static self) {
        self.counter.incr(Half::Down);
    }

    #[cold]
    fn first_use(&'static self) {
        if self.counter.claim_id() {
            crate::registry::register_type(self);
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
            live_bytes: Some(live * self.size as u64),
        }
    }

    pub(crate) fn snapshot(&self, reader: &BatchReader) -> SeriesSnapshot {
        let pair = reader.read(&self.counter);
        let live = pair.live();
        SeriesSnapshot {
            name: self.name.to_owned(),
            kind: SeriesKind::Type,
            created: pair.up,
            dropped: pair.down,
            live,
            peak: record_peak(&self.peak, pair),
            live_bytes: Some(live * self.size as u64),
            extra: Default::default(),
            sites: Vec::new(),
        }
    }
}

/// A type whose instances are counted. Implemented by `#[leakwatch::tracked]`; do not
/// implement it by hand.
pub trait Tracked {
    /// The type's counters.
    #[doc(hidden)]
    fn __leakwatch_stats() -> &'static TypeStats;
}

/// Counts of a tracked type.
///
/// ```
/// #[leakwatch::tracked]
/// struct Watch {
///     user: u32,
/// }
///
/// let w = Watch { user: 1, __tracked: Default::default() };
/// assert_eq!(leakwatch::counts::<Watch>().live, 1);
/// drop(w);
/// assert_eq!(leakwatch::counts::<Watch>().live, 0);
/// ```
pub fn counts<T: Tracked + ?Sized>() -> Counts {
    T::__leakwatch_stats().counts()
}

/// The zero-sized field `#[tracked]` injects: creating one counts an instance, dropping one
/// counts a drop, cloning counts a new instance.
pub struct Tracker<T: Tracked + ?Sized> {
    _type: PhantomData<fn() -> T>,
}

impl<T: Tracked + ?Sized> Tracker<T> {
    /// Counts a new instance of `T`.
    #[inline]
    pub fn new() -> Self {
        T::__leakwatch_stats().on_create();
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
        T::__leakwatch_stats().on_drop();
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

//! Plain event counters, for the figures that sit next to the counts: responses by status,
//! 409s, refused requests by reason, exporter drops. Counted per thread like everything else.

use std::fmt;
use std::sync::Arc;

use crate::counter::Half;
use crate::registry::Registry;
use crate::series::Series;
use crate::series::SeriesKind;

/// A monotonic counter named `name`, exported as `count.<name>`.
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let conflicts = leakwatch::EventCounter::new_in(&reg, "http.status.409");
/// conflicts.incr();
/// conflicts.add(2);
/// assert_eq!(conflicts.get(), 3);
/// assert_eq!(reg.snapshot().get("http.status.409").unwrap().created, 3);
/// ```
#[derive(Clone)]
pub struct EventCounter {
    series: Arc<Series>,
}

impl EventCounter {
    /// A counter in the global registry.
    pub fn new(name: &str) -> Self {
        Self::new_in(Registry::global(), name)
    }

    /// A counter in `registry`.
    pub fn new_in(registry: &Registry, name: &str) -> Self {
        EventCounter {
            series: registry.series(SeriesKind::Counter, name),
        }
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.series.items.incr(Half::Up);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.series.items.add(Half::Up, n);
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.series.items.read().up
    }

    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.series.name
    }
}

impl fmt::Debug for EventCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventCounter")
            .field("name", &self.series.name)
            .field("total", &self.get())
            .finish()
    }
}

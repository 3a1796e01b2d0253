//! Sampled gauges: values leakwatch does not count itself but reads when a snapshot is taken,
//! such as the sockets the kernel holds for the process or a runtime's alive tasks.
//!
//! Counting sees what the program *thinks* it holds; a gauge read from outside the counting
//! path (the kernel, the async runtime) is the independent witness a divergence rule compares
//! it with: "streams the app thinks are open" against "sockets the kernel holds" shows a close
//! that never fired, whatever the app's own counts say.

use std::fmt;
use std::sync::Arc;

use crate::registry::{Registry, RegistryInner};
use crate::series::Sampler;

/// A sampled value in a registry, read at every snapshot until this handle is dropped.
///
/// Made by [`Registry::gauge`]; it appears in snapshots as a series of kind
/// [`SeriesKind::Gauge`](crate::SeriesKind::Gauge) and flattens to the metric `live.<name>`, so rules and exporters treat
/// it like any live count.
///
/// ```
/// use leakwatch::Registry;
///
/// let reg = Registry::new();
/// let depth = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
/// let d = depth.clone();
/// let gauge = reg.gauge("queue.depth", move || Some(d.load(std::sync::atomic::Ordering::Relaxed)));
/// assert_eq!(reg.snapshot().live("queue.depth"), 3);
/// drop(gauge); // no longer sampled
/// assert!(reg.snapshot().get("queue.depth").is_none());
/// ```
#[must_use = "a gauge is sampled only while its handle lives; use `detach` to keep it"]
pub struct Gauge {
    registry: Arc<RegistryInner>,
    id: u64,
    name: String,
}

impl Gauge {
    pub(crate) fn register(registry: &Registry, name: &str, sample: Sampler) -> Gauge {
        let id = registry.inner.gauges.add(name, sample);
        Gauge {
            registry: registry.inner.clone(),
            id,
            name: name.to_owned(),
        }
    }

    /// The series name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the gauge for the registry's lifetime (for process-wide gauges registered once).
    pub fn detach(self) {
        std::mem::forget(self);
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.registry.gauges.remove(self.id);
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("name", &self.name).finish()
    }
}

/// Wraps an expensive reading so it runs at most once per `every`; in between, the last
/// value is returned. For gauges such as [`crate::process::tcp_sockets_on_port`], whose cost
/// grows with the descriptors a process holds (about 1 µs each), so that a watchdog sampling
/// every second does not pay it every second.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
///
/// static READS: AtomicU64 = AtomicU64::new(0);
/// let read = leakwatch::gauge_at_most_every(Duration::from_secs(60), || {
///     Some(READS.fetch_add(1, Ordering::Relaxed))
/// });
/// assert_eq!((read(), read()), (Some(0), Some(0))); // the second call reused the first value
/// assert_eq!(READS.load(Ordering::Relaxed), 1);
/// ```
pub fn gauge_at_most_every(
    every: std::time::Duration,
    read: impl Fn() -> Option<u64> + Send + Sync + 'static,
) -> impl Fn() -> Option<u64> + Send + Sync + 'static {
    let last: parking_lot::Mutex<Option<(std::time::Instant, Option<u64>)>> =
        parking_lot::Mutex::new(None);
    move || {
        let mut last = last.lock();
        match *last {
            Some((at, v)) if at.elapsed() < every => v,
            _ => {
                let v = read();
                *last = Some((std::time::Instant::now(), v));
                v
            }
        }
    }
}

/// How many gauge samplers of `registry` panicked (their readings were left out).
pub fn sampler_panics(registry: &Registry) -> u64 {
    registry.inner.gauges.panics()
}

/// Creating a gauge in a registry.
impl Registry {
    /// Samples `read` at every snapshot of this registry as the series `name` (kind
    /// [`SeriesKind::Gauge`](crate::SeriesKind::Gauge), metric `live.<name>`) until the returned handle is dropped.
    /// `read` returns `None` when it has no value (the series is then absent from that
    /// snapshot); it runs on the thread taking the snapshot, so it must be quick. See
    /// [`crate::process`] and, with the `tokio` feature, the `runtime` module for ready-made ones.
    pub fn gauge(
        &self,
        name: &str,
        read: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Gauge {
        Gauge::register(self, name, Arc::new(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::SeriesKind;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_panicking_sampler_is_left_out_and_counted() {
        let reg = Registry::new();
        let _bad = reg.gauge("bad", || panic!("sampler broke"));
        let _good = reg.gauge("good", || Some(7));
        let snap = reg.snapshot();
        assert!(snap.get("bad").is_none());
        assert_eq!(snap.live("good"), 7);
        assert_eq!(sampler_panics(&reg), 1);
    }

    #[test]
    fn a_gauge_flattens_to_live_only_and_keeps_a_peak() {
        let reg = Registry::new();
        let v = Arc::new(AtomicU64::new(5));
        let v2 = v.clone();
        let _g = reg.gauge("sockets", move || Some(v2.load(Ordering::Relaxed)));
        let _ = reg.snapshot();
        v.store(2, Ordering::Relaxed);
        let snap = reg.snapshot();
        let s = snap.get("sockets").unwrap();
        assert_eq!((s.kind, s.live, s.peak), (SeriesKind::Gauge, 2, 5));
        let names: Vec<String> = snap.metrics().into_iter().map(|m| m.name).collect();
        assert_eq!(names, vec!["live.sockets".to_owned()]);
    }

    #[test]
    fn a_sampler_returning_none_is_absent() {
        let reg = Registry::new();
        let _g = reg.gauge("unknown", || None);
        assert!(reg.snapshot().get("unknown").is_none());
    }
}

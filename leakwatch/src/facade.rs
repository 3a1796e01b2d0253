//! Bridge to the [`metrics`] facade: every leakwatch series becomes a metrics gauge or counter,
//! so any exporter a program already runs (Prometheus, StatsD, ...) sees them.
//!
//! Naming: `<prefix>.<metric>.<series>`, prefix `leakwatch` by default, e.g.
//! `leakwatch.live.presence.Watch` (gauge), `leakwatch.created.presence.Watch` (counter),
//! `leakwatch.memory.resident_bytes` (gauge); see [`Snapshot::metrics`] for the full table.
//! Gauges are always *set* (never incremented), and counters are sent as deltas since the last
//! publish, because several exporters silently drop `Gauge::increment` and `Counter::absolute`.
//!
//! leakwatch never installs a recorder: the program does. Metrics published before a recorder
//! is installed are lost, as with any `metrics` user.
//!
//! ```
//! let reg = leakwatch::Registry::new();
//! let _t = leakwatch::Token::new_in(&reg, "jobs");
//! let mut bridge = leakwatch::facade::MetricsBridge::new();
//! bridge.publish(&reg.snapshot()); // goes to whatever recorder is installed (none here)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::registry::Registry;
use crate::snapshot::{MetricKind, MetricNames, Snapshot};

/// Publishes snapshots through the `metrics` facade.
#[derive(Debug)]
pub struct MetricsBridge {
    prefix: String,
    /// Interns each metric per series: a token kind and a connection tracker both named
    /// `jobs` both have `created.jobs`, and each needs its own last total, or they overwrite
    /// each other's and every publish sends the difference between them.
    names: MetricNames,
    /// Last counter total published, by interned metric id.
    last_totals: Vec<Option<u64>>,
}

impl Default for MetricsBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsBridge {
    /// A bridge with the default `leakwatch` prefix.
    pub fn new() -> Self {
        Self::with_prefix("leakwatch")
    }

    /// A bridge with another prefix (empty for none).
    pub fn with_prefix(prefix: &str) -> Self {
        MetricsBridge {
            prefix: prefix.trim_end_matches('.').to_owned(),
            names: MetricNames::new(),
            last_totals: Vec::new(),
        }
    }

    /// Sets every gauge and increments every counter by its change since the last publish.
    /// Series of different kinds that share a name publish one `metrics` key per metric,
    /// holding the sum over them (see [`Snapshot::metrics`]).
    pub fn publish(&mut self, snapshot: &Snapshot) {
        let prefix = &self.prefix;
        for m in self.names.flatten(snapshot) {
            let key = if prefix.is_empty() {
                m.name.to_owned()
            } else {
                format!("{prefix}.{}", m.name)
            };
            match m.kind {
                MetricKind::Gauge => metrics::gauge!(key).set(m.value),
                MetricKind::Counter => {
                    let total = m.value as u64;
                    let i = m.id as usize;
                    if i >= self.last_totals.len() {
                        self.last_totals.resize(i + 1, None);
                    }
                    let last = self.last_totals[i].replace(total).unwrap_or(0);
                    // A total can only fall if its series was recreated; count from zero again.
                    let delta = if total >= last { total - last } else { total };
                    if delta > 0 {
                        metrics::counter!(key).increment(delta);
                    }
                }
            }
        }
    }

    /// Publishes `registry`'s snapshot every `interval` on a background thread until the
    /// returned handle is dropped. The interval is clamped to 1 ms ..= 1 day
    /// ([`clamp_spawn_interval`](crate::watchdog::clamp_spawn_interval)).
    pub fn spawn(mut self, registry: Registry, interval: Duration) -> Publisher {
        let interval = crate::watchdog::clamp_spawn_interval(interval);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leakwatch-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    self.publish(&registry.snapshot());
                    std::thread::park_timeout(interval);
                }
            })
            .expect("spawn the leakwatch metrics thread");
        Publisher {
            stop,
            thread: Some(thread),
        }
    }
}

/// Stops the background publisher when dropped.
#[derive(Debug)]
pub struct Publisher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

//! Bridge to the [`metrics`] facade: every leakwatch series becomes a metrics gauge or counter,
//! so any exporter a program already runs (Prometheus, StatsD, ...) sees them.
//!
//! Naming: one metric per kind, the series as the label `series`, as Prometheus queries and
//! dashboards expect (`sum by (series) (leakwatch_live)`):
//!
//! | leakwatch metric ([`Snapshot::metrics`]) | published as |
//! |---|---|
//! | `live.presence.Watch` (gauge) | `leakwatch_live{series="presence.Watch"}` |
//! | `created.presence.Watch` (counter) | `leakwatch_created_total{series="presence.Watch"}` |
//! | `count.http.status.409` (counter) | `leakwatch_count_total{series="http.status.409"}` |
//! | `memory.resident_bytes` (gauge) | `leakwatch_memory_resident_bytes` |
//!
//! Counters end in `_total`. The prefix (`leakwatch`) is configurable. Gauges are always
//! *set* (never incremented), and counters are sent as deltas since the last publish, because
//! several exporters silently drop `Gauge::increment` and `Counter::absolute`. The StatsD
//! exporter ([`crate::statsd`]) does not go through here and keeps Graphite's dotted names.
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

use metrics::{Key, Label, Level, Metadata};

use crate::registry::Registry;
use crate::snapshot::{MetricKind, MetricNames, Snapshot};

/// The label that holds the series name.
pub const SERIES_LABEL: &str = "series";

/// What `metrics::gauge!` would pass: this module as target and path.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One published metric: its facade key (built once) and, for counters, the last total sent.
#[derive(Debug)]
struct Published {
    key: Key,
    last_total: Option<u64>,
}

/// Publishes snapshots through the `metrics` facade.
#[derive(Debug)]
pub struct MetricsBridge {
    prefix: String,
    /// Interns each metric per series: a token kind and a connection tracker both named
    /// `jobs` both have `created.jobs`, and each needs its own last total, or they overwrite
    /// each other's and every publish sends the difference between them.
    names: MetricNames,
    /// By interned metric id.
    published: Vec<Option<Published>>,
}

impl Default for MetricsBridge {
    fn default() -> Self {
        Self::new()
    }
}

/// `name` with every character outside `[A-Za-z0-9_]` turned into `_` (Prometheus' metric
/// name rule; other exporters accept it too).
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The facade key of the flattened metric `name`: `<prefix>_<metric>[_total]{series=..}`.
pub(crate) fn facade_key(prefix: &str, name: &str, kind: MetricKind) -> Key {
    let (metric, series) = match name.split_once('.') {
        // Process memory has no series: `memory.resident_bytes` is one metric.
        Some(("memory", _)) | None => (name, None),
        Some((metric, series)) => (metric, Some(series)),
    };
    let mut full = if prefix.is_empty() {
        metric_name(metric)
    } else {
        metric_name(&format!("{prefix}_{metric}"))
    };
    if kind == MetricKind::Counter && !full.ends_with("_total") {
        full.push_str("_total");
    }
    let labels = series
        .map(|s| vec![Label::new(SERIES_LABEL, s.to_owned())])
        .unwrap_or_default();
    Key::from_parts(full, labels)
}

impl MetricsBridge {
    /// A bridge with the default `leakwatch` prefix.
    pub fn new() -> Self {
        Self::with_prefix("leakwatch")
    }

    /// A bridge with another prefix (empty for none): `svc` publishes `svc_live{series=..}`.
    pub fn with_prefix(prefix: &str) -> Self {
        MetricsBridge {
            prefix: prefix.trim_end_matches(['.', '_']).to_owned(),
            names: MetricNames::new(),
            published: Vec::new(),
        }
    }

    /// Sets every gauge and increments every counter by its change since the last publish.
    /// Series of different kinds that share a name publish one `metrics` key per metric,
    /// holding the sum over them (see [`Snapshot::metrics`]).
    pub fn publish(&mut self, snapshot: &Snapshot) {
        let MetricsBridge {
            prefix,
            names,
            published,
        } = self;
        metrics::with_recorder(|recorder| {
            for m in names.flatten(snapshot) {
                let i = m.id as usize;
                if i >= published.len() {
                    published.resize_with(i + 1, || None);
                }
                let p = published[i].get_or_insert_with(|| Published {
                    key: facade_key(prefix, m.name, m.kind),
                    last_total: None,
                });
                match m.kind {
                    MetricKind::Gauge => recorder.register_gauge(&p.key, &METADATA).set(m.value),
                    MetricKind::Counter => {
                        let total = m.value as u64;
                        let last = p.last_total.replace(total).unwrap_or(0);
                        // A total only falls if its series was recreated: count from zero.
                        let delta = if total >= last { total - last } else { total };
                        if delta > 0 {
                            recorder
                                .register_counter(&p.key, &METADATA)
                                .increment(delta);
                        }
                    }
                }
            }
        });
    }

    /// Publishes `registry`'s snapshot every `interval` on a background thread until the
    /// returned handle is dropped. The interval is clamped to 1 ms ..= 1 day
    /// ([`clamp_spawn_interval`](crate::watchdog::clamp_spawn_interval)).
    pub fn spawn(mut self, registry: Registry, interval: Duration) -> Publisher {
        let interval = crate::interval::clamp_spawn_interval(interval);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(key: &Key) -> (String, Vec<(String, String)>) {
        (
            key.name().to_owned(),
            key.labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
        )
    }

    #[test]
    fn keys_are_one_metric_per_kind_with_the_series_as_label() {
        let series = |s: &str| vec![("series".to_owned(), s.to_owned())];
        assert_eq!(
            parts(&facade_key(
                "leakwatch",
                "live.presence.Watch",
                MetricKind::Gauge
            )),
            ("leakwatch_live".to_owned(), series("presence.Watch"))
        );
        assert_eq!(
            parts(&facade_key("leakwatch", "created.a.b", MetricKind::Counter)),
            ("leakwatch_created_total".to_owned(), series("a.b"))
        );
        assert_eq!(
            parts(&facade_key("", "closed_aborted.http", MetricKind::Counter)),
            ("closed_aborted_total".to_owned(), series("http"))
        );
        assert_eq!(
            parts(&facade_key(
                "svc.x",
                "memory.resident_bytes",
                MetricKind::Gauge
            )),
            ("svc_x_memory_resident_bytes".to_owned(), vec![])
        );
        assert_eq!(
            parts(&facade_key(
                "leakwatch",
                "memory.allocations",
                MetricKind::Counter
            )),
            ("leakwatch_memory_allocations_total".to_owned(), vec![])
        );
    }
}

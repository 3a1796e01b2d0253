//! The program's own `metrics`-facade values, sent through the exporter's queue.
//!
//! Values are aggregated in process (one atomic operation per update) and sent on each
//! export tick, rather than one UDP line per update: the hot path stays cheap, a burst
//! cannot overflow the queue, and every operation of the facade works. That last point fixes
//! two pitfalls of `metrics-exporter-statsd`: `Gauge::increment`/`decrement` and
//! `Counter::absolute` are silently dropped there; here the gauge's level is kept and *set*,
//! and `absolute` raises the counter's total.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::{Mutex, RwLock};

use super::batch::{Batch, SendChunk};
use super::exporter::{push_line, tag_suffix};
use super::names::{push_sanitized_name, sanitize_component};
use crate::event::EventCounter;

/// Samples a histogram keeps between two ticks; more are dropped and counted.
const MAX_PENDING_SAMPLES: usize = 100_000;

struct UserCounter {
    key: String,
    tags: String,
    total: AtomicU64,
    sent: AtomicU64,
    announced: AtomicBool,
}

impl CounterFn for UserCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

struct UserGauge {
    key: String,
    tags: String,
    bits: AtomicU64,
    /// Bits of the value last sent; NaN until the first send.
    sent: AtomicU64,
}

impl UserGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(f(f64::from_bits(b)).to_bits())
            });
    }
}

impl GaugeFn for UserGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

struct UserHistogram {
    name: String,
    key: String,
    tags: String,
    samples: Mutex<Vec<f64>>,
    dropped: EventCounter,
}

impl HistogramFn for UserHistogram {
    fn record(&self, value: f64) {
        let mut s = self.samples.lock();
        if s.len() < MAX_PENDING_SAMPLES {
            s.push(value);
        } else {
            self.dropped.incr();
        }
    }
}

/// Everything registered through any [`StatsdRecorder`] of one exporter.
pub(crate) struct UserMetrics {
    base: String,
    default_tags: Vec<(String, String)>,
    dropped: EventCounter,
    counters: RwLock<HashMap<Key, Arc<UserCounter>>>,
    gauges: RwLock<HashMap<Key, Arc<UserGauge>>>,
    histograms: RwLock<HashMap<Key, Arc<UserHistogram>>>,
    units: RwLock<HashMap<String, Unit>>,
    /// Held for a whole [`flush`](Self::flush): a counter's delta is read (`total - sent`)
    /// and committed (`sent = total`) in two steps, so two flushes at once (the watchdog's
    /// tick and an explicit `flush`) would both send the same delta, and the later commit of
    /// an older total could move `sent` back and send part of it a third time.
    flushing: Mutex<()>,
}

impl UserMetrics {
    pub(crate) fn new(
        base: String,
        default_tags: Vec<(String, String)>,
        dropped: EventCounter,
    ) -> Self {
        UserMetrics {
            base,
            default_tags,
            dropped,
            counters: RwLock::default(),
            gauges: RwLock::default(),
            histograms: RwLock::default(),
            units: RwLock::default(),
            flushing: Mutex::new(()),
        }
    }

    /// Sanitised StatsD key and tag suffix of `key`.
    fn name_and_tags(&self, key: &Key, labels_as_tags: bool) -> (String, String) {
        let mut name = self.base.clone();
        push_sanitized_name(&mut name, key.name());
        if labels_as_tags {
            let tags = tag_suffix(
                &self.default_tags,
                key.labels().map(|l| (l.key(), l.value())),
            );
            (name, tags)
        } else {
            for l in key.labels() {
                push_sanitized_name(&mut name, &sanitize_component(l.value()));
            }
            (name, tag_suffix(&self.default_tags, std::iter::empty()))
        }
    }

    /// Queues every changed value through `send` in datagram-sized chunks (all gauges when
    /// `refresh`); returns lines (queued, refused). A refused counter delta stays pending.
    pub(crate) fn flush(
        &self,
        send: SendChunk<'_>,
        datagram_size: usize,
        refresh: bool,
    ) -> (usize, usize) {
        let _one_at_a_time = self.flushing.lock();
        let mut batch: Batch<Commit> = Batch::new(datagram_size);
        let mut apply = |c: Commit| match c {
            Commit::Counter(c, total) => {
                c.sent.store(total, Ordering::Relaxed);
                c.announced.store(true, Ordering::Relaxed);
            }
            Commit::Gauge(g, bits) => g.sent.store(bits, Ordering::Relaxed),
        };
        let mut line = String::new();
        for c in self.counters.read().values() {
            let total = c.total.load(Ordering::Relaxed);
            let sent = c.sent.load(Ordering::Relaxed);
            if total == sent && c.announced.load(Ordering::Relaxed) {
                continue;
            }
            line.clear();
            push_line(
                &mut line,
                &c.key,
                total.wrapping_sub(sent) as f64,
                "c",
                &c.tags,
            );
            batch.push(
                send,
                &line,
                Some(Commit::Counter(c.clone(), total)),
                &mut apply,
            );
        }
        for g in self.gauges.read().values() {
            let bits = g.bits.load(Ordering::Relaxed);
            let v = f64::from_bits(bits);
            if !v.is_finite() || (!refresh && g.sent.load(Ordering::Relaxed) == bits) {
                continue;
            }
            // StatsD reads a signed gauge value as a change of the current level; to *set* a
            // negative level, set 0 first, in the same datagram: were the `-5` accepted and
            // the `0` refused, the daemon would apply -5 as a decrement.
            line.clear();
            let mut lines = 1;
            if v < 0.0 {
                push_line(&mut line, &g.key, 0.0, "g", &g.tags);
                line.push('\n');
                lines = 2;
            }
            push_line(&mut line, &g.key, v, "g", &g.tags);
            batch.push_group(
                send,
                &line,
                lines,
                Some(Commit::Gauge(g.clone(), bits)),
                &mut apply,
            );
        }
        let units = self.units.read();
        for h in self.histograms.read().values() {
            let samples = std::mem::take(&mut *h.samples.lock());
            // Etsy statsd's only distribution type is the timer, in milliseconds; `metrics`
            // records durations in seconds. Values described with a non-time unit go as is.
            let scale = match units.get(&h.name) {
                None | Some(Unit::Seconds) => 1000.0,
                Some(Unit::Milliseconds) => 1.0,
                Some(Unit::Microseconds) => 1e-3,
                Some(Unit::Nanoseconds) => 1e-6,
                Some(_) => 1.0,
            };
            for v in samples {
                let ms = v * scale;
                // Timers must be finite and non-negative for statsd.
                if !ms.is_finite() || ms < 0.0 {
                    self.dropped.incr();
                    continue;
                }
                line.clear();
                push_line(&mut line, &h.key, ms, "ms", &h.tags);
                batch.push(send, &line, None, &mut apply);
            }
        }
        batch.send(send, &mut apply);
        (batch.queued, batch.refused)
    }
}

/// What to remember once a chunk holding a user value was accepted.
enum Commit {
    Counter(Arc<UserCounter>, u64),
    Gauge(Arc<UserGauge>, u64),
}

/// A [`metrics::Recorder`] that sends the program's own `metrics` values through a
/// [`StatsdExporter`](super::StatsdExporter)'s queue, so one pipeline carries both; made by
/// [`StatsdExporter::metrics_recorder`](super::StatsdExporter::metrics_recorder).
///
/// | facade | sent on each tick as | Graphite (Etsy statsd, `legacyNamespace: false`) |
/// |---|---|---|
/// | `counter!("http.status", "code" => "409").increment(1)` | `<base>.http.status:<delta>\|c\|#code:409` | `stats.counters.<base>.http.status.count;code=409` |
/// | `gauge!("queue.depth").set(3.0)` / `.increment(1.0)` | `<base>.queue.depth:4\|g` | `stats.gauges.<base>.queue.depth` |
/// | `histogram!("latency").record(0.025)` | `<base>.latency:25\|ms` | `stats.timers.<base>.latency.mean` … |
///
/// `<base>` is `<prefix>.<instance>`. Labels become DogStatsD tags, or name components with
/// [`labels_in_name`](Self::labels_in_name) (`http.status.409`), which plain Graphite globs
/// and `leakwatch analyze --graphite` handle best. Histograms are sent as timers in
/// milliseconds: undescribed values are taken as seconds (the `metrics` convention for
/// durations), `describe_histogram!` with a time unit converts from it, any other unit is
/// sent unchanged.
///
/// Do not also run the [`facade`](crate::facade) bridge into this recorder: leakwatch series
/// already go out through the exporter itself.
#[derive(Clone)]
pub struct StatsdRecorder {
    user: Arc<UserMetrics>,
    labels_as_tags: bool,
}

impl std::fmt::Debug for StatsdRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdRecorder")
            .field("base", &self.user.base)
            .field("labels_as_tags", &self.labels_as_tags)
            .finish()
    }
}

impl StatsdRecorder {
    pub(crate) fn new(user: Arc<UserMetrics>) -> Self {
        StatsdRecorder {
            user,
            labels_as_tags: true,
        }
    }

    /// Appends label values to the name (`http.status` with `code=409` becomes
    /// `http.status.409`) instead of sending them as tags.
    pub fn labels_in_name(mut self) -> Self {
        self.labels_as_tags = false;
        self
    }
}

impl Recorder for StatsdRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        if let Some(unit) = unit {
            self.user
                .units
                .write()
                .insert(key.as_str().to_owned(), unit);
        }
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if let Some(c) = self.user.counters.read().get(key) {
            return Counter::from_arc(c.clone());
        }
        let (name, tags) = self.user.name_and_tags(key, self.labels_as_tags);
        let c = self
            .user
            .counters
            .write()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(UserCounter {
                    key: name,
                    tags,
                    total: AtomicU64::new(0),
                    sent: AtomicU64::new(0),
                    announced: AtomicBool::new(false),
                })
            })
            .clone();
        Counter::from_arc(c)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        if let Some(g) = self.user.gauges.read().get(key) {
            return Gauge::from_arc(g.clone());
        }
        let (name, tags) = self.user.name_and_tags(key, self.labels_as_tags);
        let g = self
            .user
            .gauges
            .write()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(UserGauge {
                    key: name,
                    tags,
                    bits: AtomicU64::new(0f64.to_bits()),
                    sent: AtomicU64::new(f64::NAN.to_bits()),
                })
            })
            .clone();
        Gauge::from_arc(g)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if let Some(h) = self.user.histograms.read().get(key) {
            return Histogram::from_arc(h.clone());
        }
        let (name, tags) = self.user.name_and_tags(key, self.labels_as_tags);
        let h = self
            .user
            .histograms
            .write()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(UserHistogram {
                    name: key.name().to_owned(),
                    key: name,
                    tags,
                    samples: Mutex::new(Vec::new()),
                    dropped: self.user.dropped.clone(),
                })
            })
            .clone();
        Histogram::from_arc(h)
    }
}

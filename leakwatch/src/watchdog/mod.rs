//! The watchdog: samples every series on its own thread, runs the detectors, raises alerts.
//!
//! ```
//! use std::time::Duration;
//! use leakwatch::{DivergenceRule, Watchdog};
//!
//! let reg = leakwatch::Registry::new();
//! let watchdog = Watchdog::builder()
//!     .registry(&reg)
//!     .interval(Duration::from_millis(100))
//!     .divergence(DivergenceRule::new("live.presence.callbacks", "live.http.streams"))
//!     .hook(|alert: &leakwatch::Alert| eprintln!("{alert}"))
//!     .log_alerts()
//!     .start()
//!     .expect("valid rules");
//! // ... the service runs ...
//! watchdog.stop();
//! ```
//!
//! Each tick (default every second; no async runtime needed) the watchdog:
//! 1. reads its registry into the [`Snapshot`] kept from the last tick
//!    ([`Registry::snapshot_counts_into`]) and flattens it into the metrics of
//!    [`Snapshot::metrics`] (interned: no name is built per metric);
//! 2. hands the snapshot to every [`on_sample`](WatchdogBuilder::on_sample) consumer (exporters;
//!    the StatsD exporter reuses the interning instead of doing it again);
//! 3. appends the values to a bounded history and to the recording, if any;
//! 4. feeds them to one [`leakwatch_detect::Engine`]: the same detectors `leakwatch analyze`
//!    runs offline;
//! 5. turns findings into [`Alert`]s, de-duplicates them, and queues them for the hooks.
//!
//! Scope findings (registration after close, outlived scope) become alerts the moment they
//! happen, without waiting for a tick. When the watchdog stops, the consumers get one last
//! snapshot, so exporters also send what changed since the last tick.
//!
//! With no rules configured, growth is watched on [`default_selection`]: every tracked type's,
//! token's, callback registry's, scope's and connection tracker's live count, plus resident and
//! heap memory.

mod alert;
mod cpu;
mod history;
mod hooks;
mod rules;
#[cfg(feature = "webhook")]
mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, unbounded};
use leakwatch_detect::{
    CeilingRule, ConfigError, DivergenceRule, Engine, GrowthRule, Rule, RuleSet, Selector, SeriesId,
};
use parking_lot::Mutex;

pub use alert::{Alert, AlertRule, AlertState, Instance};
pub use history::Samples;
pub use hooks::{AlertHook, LogHook};
pub use rules::{RuleConfig, UnmatchedRule, unmatched_rules};
#[cfg(feature = "webhook")]
pub use webhook::WebhookHook;

use crate::recording::{Header, RecordingWriter, Rotation};
use crate::registry::Registry;
use crate::snapshot::{MetricNames, Snapshot};
use alert::Deduper;
use history::History;
use hooks::{Dispatcher, HookCounters};

/// Patterns of the series watched for growth when no growth rule is configured.
pub const DEFAULT_GROWTH_PATTERNS: &[&str] =
    &["live.*", "memory.resident_bytes", "memory.heap_bytes"];

/// The default growth selection ([`DEFAULT_GROWTH_PATTERNS`]).
pub fn default_selection() -> Selector {
    Selector::new(DEFAULT_GROWTH_PATTERNS.iter().copied()).expect("valid built-in patterns")
}

/// The rules used when none are configured: growth on [`default_selection`] with the
/// detector's default parameters (what an empty [`RuleConfig`] builds).
pub fn default_rules() -> RuleSet {
    RuleSet::default_growth(default_selection())
}

/// How many sent alerts (firing and resolved) [`Watchdog::recent_alerts`] keeps.
pub const RECENT_ALERTS: usize = 256;

pub use crate::interval::{MAX_INTERVAL, MIN_SPAWN_INTERVAL, clamp_spawn_interval};

/// Why a watchdog could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// A rule is invalid.
    #[error("invalid watchdog rule: {0}")]
    Rule(#[from] ConfigError),
    /// The recording file could not be created.
    #[error("cannot create recording {path}: {source}")]
    Recording {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The interval is zero.
    #[error("the sampling interval must be greater than zero")]
    ZeroInterval,
    /// The interval is longer than [`MAX_INTERVAL`].
    #[error("the sampling interval must be at most one day, got {0:?}")]
    IntervalTooLong(Duration),
    /// `tick_seconds` is not a finite number greater than zero.
    #[error("tick_seconds must be finite and greater than zero, got {0}")]
    TickSeconds(f64),
    /// A webhook's URL could never be posted to (not a URL, or `https://` without TLS).
    #[error("webhook URL {url:?} cannot work: {reason}")]
    Webhook {
        /// The URL as given.
        url: String,
        /// Why, and what would work.
        reason: String,
    },
}

type SampleConsumer = Box<dyn FnMut(&Snapshot) + Send>;

/// A hook as configured. Webhooks count their failures in the watched registry, which is
/// only known for sure in `start`: `.webhook(url).registry(&reg)` must count in `reg`.
enum PendingHook {
    Ready(Box<dyn AlertHook>),
    #[cfg(feature = "webhook")]
    Webhook(WebhookHook),
}

impl PendingHook {
    #[cfg_attr(
        not(feature = "webhook"),
        expect(unused_variables, reason = "only webhooks count in the registry")
    )]
    fn bind(self, registry: &Registry) -> Box<dyn AlertHook> {
        match self {
            PendingHook::Ready(hook) => hook,
            #[cfg(feature = "webhook")]
            PendingHook::Webhook(mut hook) => {
                hook.count_failures_in(registry);
                Box::new(hook)
            }
        }
    }
}

/// Configures and starts a [`Watchdog`].
pub struct WatchdogBuilder {
    registry: Registry,
    interval: Duration,
    tick_seconds: Option<f64>,
    rules: RuleConfig,
    cooldown: Duration,
    hooks: Vec<PendingHook>,
    consumers: Vec<SampleConsumer>,
    recording: Option<(PathBuf, Rotation)>,
    history_len: usize,
}

impl std::fmt::Debug for WatchdogBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogBuilder")
            .field("interval", &self.interval)
            .field("rules", &self.rules)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl WatchdogBuilder {
    /// Watch `registry` instead of the global one.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// Time between samples (default 1 s; greater than zero, at most [`MAX_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How many seconds each tick counts as for the detectors and the recording (default: the
    /// interval). Simulations and tests use this to replay an hour of 1 s samples in seconds.
    ///
    /// With it, `t` counts the ticks actually sampled (tick `n` is at `n × seconds`), so a
    /// slow machine runs the simulation slower instead of skipping simulated time. Without it,
    /// `t` follows the wall clock: a tick that overran skips the deadlines it missed. It must
    /// be finite and greater than zero.
    pub fn tick_seconds(mut self, seconds: f64) -> Self {
        self.tick_seconds = Some(seconds);
        self
    }

    /// Adds a divergence rule: two series that should match (`a ≈ k·b + c`).
    pub fn divergence(mut self, rule: DivergenceRule) -> Self {
        self.rules.rules.push(rule);
        self
    }

    /// Adds a growth rule. Adding one replaces the default growth watch unless
    /// [`default_growth`](Self::default_growth) is called with `true`.
    pub fn growth(mut self, rule: GrowthRule) -> Self {
        self.rules.rules.push(rule);
        self
    }

    /// Adds a ceiling rule: an absolute limit or a limit per unit of another series.
    pub fn ceiling(mut self, rule: CeilingRule) -> Self {
        self.rules.rules.push(rule);
        self
    }

    /// Adds any rule.
    pub fn rule(mut self, rule: impl Into<Rule>) -> Self {
        self.rules.rules.push(rule);
        self
    }

    /// Replaces every rule setting (added rules, default growth watch, its selection and
    /// load) with `config`: the same [`RuleConfig`] `leakwatch analyze` builds from its
    /// options, so a recording replayed with matching options finds what this watchdog did.
    pub fn rule_config(mut self, config: RuleConfig) -> Self {
        self.rules = config;
        self
    }

    /// Whether the default growth watch ([`default_selection`]) runs. Default: only when no
    /// growth rule was added.
    pub fn default_growth(mut self, on: bool) -> Self {
        self.rules.default_growth = Some(on);
        self
    }

    /// Judges the default growth watch relative to `load` (e.g. `live.http.streams`): growth
    /// that merely follows load is not a leak, growth of the per-load ratio is. Growth rules
    /// added with [`growth`](Self::growth) keep their own `relative_to`.
    pub fn load_series(mut self, load: impl Into<String>) -> Self {
        self.rules.load = Some(load.into());
        self
    }

    /// Minimum time before an alert that resolved may be sent again (default 5 min), and
    /// between two one-shot scope alerts from the same site.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Adds an alert hook (a closure `FnMut(&Alert)` or an [`AlertHook`]).
    pub fn hook(mut self, hook: impl AlertHook) -> Self {
        self.hooks.push(PendingHook::Ready(Box::new(hook)));
        self
    }

    /// Logs alerts through `tracing` ([`LogHook`]).
    pub fn log_alerts(self) -> Self {
        self.hook(LogHook)
    }

    /// POSTs alerts as JSON to `url` ([`WebhookHook`] with default timeout and retries).
    /// Needs the `webhook` feature.
    #[cfg(feature = "webhook")]
    pub fn webhook(self, url: impl Into<String>) -> Self {
        self.webhook_hook(WebhookHook::new(url))
    }

    /// Adds a configured [`WebhookHook`]; its failures are counted in the watched registry
    /// (the one set by [`registry`](Self::registry), before or after this call). Needs the
    /// `webhook` feature.
    #[cfg(feature = "webhook")]
    pub fn webhook_hook(mut self, hook: WebhookHook) -> Self {
        self.hooks.push(PendingHook::Webhook(hook));
        self
    }

    /// Calls `consumer` with every sampled snapshot, on the watchdog thread (e.g. an exporter),
    /// and once more with a last snapshot when the watchdog stops, so an exporter also sends
    /// what changed since the last tick. A panicking consumer is caught and counted
    /// (`count.leakwatch.sample_consumer.panics`).
    ///
    /// Because stopping runs the consumer once more and waits for it, do not stop or drop the
    /// watchdog while holding a lock the consumer takes: that wait would never end.
    pub fn on_sample(mut self, consumer: impl FnMut(&Snapshot) + Send + 'static) -> Self {
        self.consumers.push(Box::new(consumer));
        self
    }

    /// Publishes every sample through the `metrics` facade ([`crate::facade::MetricsBridge`]).
    pub fn publish_metrics(self) -> Self {
        let mut bridge = crate::facade::MetricsBridge::new();
        self.on_sample(move |s| bridge.publish(s))
    }

    /// Writes every sample and alert to a recording at `path` (default rotation: 64 MiB × 4).
    pub fn record(self, path: impl Into<PathBuf>) -> Self {
        self.record_with(path, Rotation::default())
    }

    /// Writes a recording with explicit rotation.
    pub fn record_with(mut self, path: impl Into<PathBuf>, rotation: Rotation) -> Self {
        self.recording = Some((path.into(), rotation));
        self
    }

    /// Samples of history kept per series for [`Watchdog::history`] (default 300).
    pub fn history_len(mut self, len: usize) -> Self {
        self.history_len = len;
        self
    }

    /// The rules the watchdog will run ([`RuleConfig::build`]).
    pub fn rules(&self) -> Result<RuleSet, WatchdogError> {
        Ok(self.rules.build()?)
    }

    /// Starts the sampling thread.
    pub fn start(self) -> Result<Watchdog, WatchdogError> {
        if self.interval.is_zero() {
            return Err(WatchdogError::ZeroInterval);
        }
        // Deadlines are `start + interval × tick`: a huge interval would overflow `Instant`
        // and panic the thread after `start` returned Ok.
        if self.interval > MAX_INTERVAL {
            return Err(WatchdogError::IntervalTooLong(self.interval));
        }
        if let Some(s) = self.tick_seconds
            && !(s.is_finite() && s > 0.0)
        {
            return Err(WatchdogError::TickSeconds(s));
        }
        // A webhook that can never deliver would only count failures nobody reads.
        #[cfg(feature = "webhook")]
        for hook in &self.hooks {
            if let PendingHook::Webhook(w) = hook {
                w.check_url().map_err(|reason| WatchdogError::Webhook {
                    url: w.url().to_owned(),
                    reason,
                })?;
            }
        }
        let rules = self.rules()?;
        let engine = Engine::new(rules)?;
        let simulated = self.tick_seconds.is_some();
        let tick_seconds = self.tick_seconds.unwrap_or(self.interval.as_secs_f64());
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .ok();
        // Metric names interned from a first look, so the recording's header can say which
        // metrics that exist now are gauges and which counters; later ones are declared in
        // the tick line where they first appear.
        let mut names = MetricNames::new();
        let recording = match &self.recording {
            None => None,
            Some((path, rotation)) => {
                let mut header = Header::new((tick_seconds * 1000.0).round() as u64, started_at_ms);
                let first = self.registry.snapshot_counts();
                header.kinds = names
                    .flatten(&first)
                    .iter()
                    .map(|m| (m.name.to_owned(), m.kind))
                    .collect();
                Some(
                    RecordingWriter::create(path, header, *rotation).map_err(|source| {
                        WatchdogError::Recording {
                            path: path.clone(),
                            source,
                        }
                    })?,
                )
            }
        };
        let declared = names.len();

        let counters = HookCounters::new(&self.registry);
        let hooks = self
            .hooks
            .into_iter()
            .map(|h| h.bind(&self.registry))
            .collect();
        let shared = Arc::new(Shared {
            dispatcher: Mutex::new(Some(Dispatcher::start(hooks, counters))),
            deduper: Mutex::new(Deduper::new(self.cooldown)),
            history: Mutex::new(History::new(self.history_len)),
            active: Mutex::new(BTreeMap::new()),
            recent: Mutex::new(VecDeque::new()),
            now: AtomicU64::new(0f64.to_bits()),
            running: AtomicBool::new(true),
            ticks: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
        });

        // Scope findings are turned into alerts on the thread that detects them, at once;
        // they also go to the sampling thread so the recording has them.
        let (scope_tx, scope_rx) = unbounded::<Alert>();
        let observer;
        {
            let weak = Arc::downgrade(&shared);
            let scope_tx = Mutex::new(scope_tx);
            observer = self.registry.on_scope_finding(move |f| {
                let Some(shared) = weak.upgrade() else { return };
                if !shared.running.load(Ordering::Relaxed) {
                    return;
                }
                let at = f64::from_bits(shared.now.load(Ordering::Relaxed));
                let alert = Alert::from_scope(f, at);
                if shared.admit_and_send(alert.clone()) {
                    let _ = scope_tx.lock().send(alert);
                }
            });
        }

        let stop = Arc::new((Mutex::new(false), parking_lot::Condvar::new()));
        let consumer_panics =
            crate::event::EventCounter::new_in(&self.registry, "leakwatch.sample_consumer.panics");
        let registry = self.registry.clone();
        let mut sampler = Sampler {
            registry: self.registry,
            engine,
            consumers: self.consumers,
            recording,
            shared: shared.clone(),
            scope_rx,
            tick_seconds,
            simulated,
            consumer_panics,
            names,
            declared,
            fed: Vec::new(),
            findings: Vec::new(),
            snapshot: Snapshot::empty(),
            rules_checked: false,
        };
        let interval = self.interval;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leakwatch-watchdog".into())
            .spawn(move || sampler.run(interval, &stop2))
            .expect("spawn the leakwatch watchdog thread");
        Ok(Watchdog {
            shared,
            stop,
            thread: Some(thread),
            observer: Some((registry, observer)),
        })
    }
}

struct Shared {
    dispatcher: Mutex<Option<Dispatcher>>,
    deduper: Mutex<Deduper>,
    history: Mutex<History>,
    /// Firing alerts by (rule name, series).
    active: Mutex<BTreeMap<(String, String), Alert>>,
    /// The last [`RECENT_ALERTS`] alerts sent, firing and resolved, oldest first.
    recent: Mutex<VecDeque<Alert>>,
    /// Current watchdog time in seconds (f64 bits), for alerts raised between ticks.
    now: AtomicU64,
    running: AtomicBool,
    ticks: AtomicU64,
    busy_nanos: AtomicU64,
}

impl Shared {
    /// De-duplicates and queues `alert` for the hooks; true if it was sent.
    fn admit_and_send(&self, alert: Alert) -> bool {
        if !self.deduper.lock().admit(&alert) {
            return false;
        }
        self.remember(&alert);
        if !alert.is_scope_finding() {
            let key = (alert.name.clone(), alert.series.clone());
            let mut active = self.active.lock();
            match alert.state {
                AlertState::Firing => {
                    active.insert(key, alert.clone());
                }
                AlertState::Resolved => {
                    active.remove(&key);
                }
            }
        }
        self.dispatch(alert);
        true
    }

    /// Keeps `alert` among the recent ones (bounded).
    fn remember(&self, alert: &Alert) {
        let mut recent = self.recent.lock();
        if recent.len() == RECENT_ALERTS {
            recent.pop_front();
        }
        recent.push_back(alert.clone());
    }

    /// Closes the hook queues and gives hooks up to [`HOOK_DRAIN`] to drain; idempotent.
    fn shutdown_dispatcher(&self) {
        // Take the dispatcher out before waiting on it: a scope finding raised on another
        // thread meanwhile must not block on this lock for the drain's second.
        let dispatcher = self.dispatcher.lock().take();
        if let Some(d) = dispatcher {
            d.shutdown(HOOK_DRAIN);
        }
    }

    fn dispatch(&self, alert: Alert) {
        if let Some(d) = self.dispatcher.lock().as_ref() {
            d.send(alert);
        }
    }

    /// Sends the suppressed re-fires whose cooldown has passed by `t` (still firing); returns
    /// them for the recording.
    fn release_due(&self, t: f64) -> Vec<Alert> {
        let due = self.deduper.lock().release_due(t);
        for alert in &due {
            self.remember(alert);
            let key = (alert.name.clone(), alert.series.clone());
            self.active.lock().insert(key, alert.clone());
            self.dispatch(alert.clone());
        }
        due
    }
}

struct Sampler {
    registry: Registry,
    engine: Engine,
    consumers: Vec<SampleConsumer>,
    recording: Option<RecordingWriter>,
    shared: Arc<Shared>,
    scope_rx: Receiver<Alert>,
    tick_seconds: f64,
    /// `tick_seconds` was given: `t` counts sampled ticks, not wall-clock deadlines.
    simulated: bool,
    consumer_panics: crate::event::EventCounter,
    names: MetricNames,
    /// Metric ids below this have had their kind declared to the recording.
    declared: usize,
    /// Per metric id: `None` until the metric is first seen, then the engine's id for it, or
    /// `Some(None)` when no rule needs it (decided once per name, so a tick looks nothing up
    /// by name).
    fed: Vec<Option<Option<SeriesId>>>,
    findings: Vec<leakwatch_detect::Finding>,
    /// The last tick's snapshot, read into again by the next one (empty before the first).
    snapshot: Snapshot,
    /// Whether the rules were checked against the series that exist ([`RULE_CHECK_AFTER`]).
    rules_checked: bool,
}

impl Sampler {
    fn run(&mut self, interval: Duration, stop: &(Mutex<bool>, parking_lot::Condvar)) {
        let start = Instant::now();
        let mut tick: u64 = 0;
        let mut sampled: u64 = 0;
        loop {
            tick += 1;
            let deadline = start + interval.mul_f64(tick as f64);
            {
                let mut stopped = stop.0.lock();
                while !*stopped && Instant::now() < deadline {
                    stop.1.wait_until(&mut stopped, deadline);
                }
                if *stopped {
                    break;
                }
            }
            sampled += 1;
            let began = cpu::CpuStart::now();
            // Simulated time counts samples: skipping deadlines must not skip simulated time
            // (a loaded machine would otherwise make a leak look slower, or a tick look late).
            let n = if self.simulated { sampled } else { tick };
            self.tick(n as f64 * self.tick_seconds);
            self.shared
                .busy_nanos
                .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.shared.ticks.fetch_add(1, Ordering::Relaxed);
            // A tick that overran the interval skips the missed deadlines rather than
            // bursting to catch up.
            let behind = start.elapsed().as_secs_f64() / interval.as_secs_f64();
            if behind as u64 > tick {
                tick = behind as u64;
            }
        }
        // Exporters send counter changes once per tick: without this last look, whatever
        // happened since the last tick would never reach them. Only the consumers see it;
        // detectors and the recording keep their regular grid of samples.
        let mut snapshot = self.registry.snapshot_counts();
        if !self.consumers.is_empty() {
            self.names.intern(&snapshot);
            self.feed_consumers(&mut snapshot);
        }
        if let Some(r) = &mut self.recording {
            let _ = r.flush();
        }
        // When the watchdog is dropped from this thread (by a sample consumer) nobody can
        // join it, so the drain happens here; otherwise `shutdown` finds nothing left to do.
        self.shared.shutdown_dispatcher();
    }

    /// Runs the sample consumers on `snapshot`, lending them the table it was just interned
    /// with (so an exporter does not intern it again).
    fn feed_consumers(&mut self, snapshot: &mut Snapshot) {
        if self.consumers.is_empty() {
            return;
        }
        snapshot.lent_names.0 = Some(std::mem::take(&mut self.names));
        for c in &mut self.consumers {
            if std::panic::catch_unwind(AssertUnwindSafe(|| c(snapshot))).is_err() {
                self.consumer_panics.incr();
            }
        }
        // Consumers see the snapshot only by shared reference: the table comes back whole.
        self.names = snapshot.lent_names.0.take().unwrap_or_default();
    }

    fn tick(&mut self, t: f64) {
        self.shared.now.store(t.to_bits(), Ordering::Relaxed);
        // One snapshot read into again each tick: the counts of a series change in place,
        // so a tick builds and drops no per-series values (see `snapshot_counts_into`).
        let mut snapshot = std::mem::replace(&mut self.snapshot, Snapshot::empty());
        self.registry.snapshot_counts_into(&mut snapshot);
        // Ids and values only, in the table's own reused buffer: a name is read where an id
        // is new to a consumer (history, recording, engine, exporters), not built per metric.
        self.names.intern(&snapshot);
        self.feed_consumers(&mut snapshot);
        let names = &self.names;
        let metrics = names.interned();
        let value = |v: u64| v as f64;
        if !self.rules_checked && t >= RULE_CHECK_AFTER.as_secs_f64() {
            self.rules_checked = true;
            let all = metrics.iter().map(|&(id, ..)| names.name(id));
            rules::warn_unmatched(self.engine.rules(), all, t);
        }
        self.shared
            .history
            .lock()
            .push(t, metrics, |id| names.name(id));
        if let Some(r) = &mut self.recording {
            // Ids are dense and handed out in order, so a metric first seen now has an id at
            // or past `declared`.
            let mut next = self.declared;
            for &(id, kind, _) in metrics.iter().filter(|m| m.0 as usize >= self.declared) {
                r.declare(names.name(id), kind);
                next = next.max(id as usize + 1);
            }
            self.declared = next;
            let map: BTreeMap<&str, f64> = metrics
                .iter()
                .map(|&(id, _, v)| (names.name(id), value(v)))
                .collect();
            // A full disk must not stop the watchdog; the recording just has a gap.
            let _ = r.tick(t, &map);
        }
        while let Ok(alert) = self.scope_rx.try_recv() {
            if let Some(r) = &mut self.recording {
                let _ = r.alert(alert.at, &alert);
            }
        }
        self.findings.clear();
        let (engine, fed) = (&mut self.engine, &mut self.fed);
        for &(id, ..) in metrics {
            let i = id as usize;
            if i >= fed.len() {
                fed.resize(i + 1, None);
            }
            if fed[i].is_none() {
                let name = names.name(id);
                fed[i] = Some(engine.rules().needs(name).then(|| engine.register(name)));
            }
        }
        let values = metrics
            .iter()
            .filter_map(|&(id, _, v)| fed[id as usize].flatten().map(|e| (e, value(v))));
        engine.observe_ids_into(t, values, &mut self.findings);
        // Creation sites are only read when there is an alert to explain.
        let detailed = (!self.findings.is_empty()).then(|| self.registry.snapshot());
        for finding in &self.findings {
            let alert = Alert::from_finding(finding, detailed.as_ref().unwrap_or(&snapshot));
            if self.shared.admit_and_send(alert.clone())
                && let Some(r) = &mut self.recording
            {
                let _ = r.alert(t, &alert);
            }
        }
        // A condition that re-fired inside the cooldown and is still firing once it has
        // passed is sent now: suppression is for flapping, not for a lasting problem.
        for alert in self.shared.release_due(t) {
            if let Some(r) = &mut self.recording {
                let _ = r.alert(t, &alert);
            }
        }
        if let Some(r) = &mut self.recording {
            let _ = r.flush();
        }
        self.snapshot = snapshot;
    }
}

/// Watchdog time after which the rules are checked, once, against the series that exist:
/// rules that watch nothing (a typo in a series name, a series not created yet) are logged
/// at WARN with the series that do exist (to standard error without a `tracing` subscriber).
pub const RULE_CHECK_AFTER: Duration = Duration::from_secs(60);

/// How long stopping a watchdog waits, at most, for its hooks to deliver the alerts queued
/// for them (all hooks together). What is still queued after that is dropped and counted in
/// `count.leakwatch.hook.dropped`.
pub const HOOK_DRAIN: Duration = Duration::from_secs(1);

/// A running watchdog. Dropping it (or calling [`stop`](Watchdog::stop)) stops sampling, waits
/// for the thread, and gives hooks up to [`HOOK_DRAIN`] to deliver what is queued.
pub struct Watchdog {
    shared: Arc<Shared>,
    stop: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// This watchdog's scope-finding observer, removed at shutdown so restarts do not pile
    /// dead observers onto the registry.
    observer: Option<(Registry, crate::finding::ScopeObserverId)>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("ticks", &self.ticks())
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// A builder with defaults: global registry, 1 s interval, default growth watch, 5 min
    /// cooldown, no hooks.
    pub fn builder() -> WatchdogBuilder {
        WatchdogBuilder {
            registry: Registry::global().clone(),
            interval: Duration::from_secs(1),
            tick_seconds: None,
            rules: RuleConfig::default(),
            cooldown: Duration::from_secs(300),
            hooks: Vec::new(),
            consumers: Vec::new(),
            recording: None,
            history_len: 300,
        }
    }

    /// Ticks sampled so far.
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    /// CPU time the watchdog thread spent sampling, evaluating and recording, in total
    /// (wall time on platforms without a thread CPU clock).
    pub fn busy_time(&self) -> Duration {
        Duration::from_nanos(self.shared.busy_nanos.load(Ordering::Relaxed))
    }

    /// Alerts firing now.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.shared.active.lock().values().cloned().collect()
    }

    /// Recent `(t, value)` samples of a flattened series (e.g. `live.presence.Watch`).
    pub fn history(&self, series: &str) -> Vec<(f64, f64)> {
        self.shared.history.lock().get(series)
    }

    /// Names of every series with history.
    pub fn series(&self) -> Vec<String> {
        self.shared.history.lock().names()
    }

    /// Samples newer than `since` (seconds since the watchdog started) of each of `series`,
    /// read under one lock, with the time of the newest tick. A dashboard polls with
    /// `since` set to the previous answer's [`newest`](Samples::newest) to fetch only what
    /// is new; `f64::NEG_INFINITY` reads the whole history.
    pub fn samples_since(&self, series: &[&str], since: f64) -> Samples {
        let history = self.shared.history.lock();
        Samples {
            newest: history.newest_time(),
            series: series.iter().map(|s| history.get_since(s, since)).collect(),
        }
    }

    /// Name and newest value of every series with history whose name passes `filter`,
    /// sorted by name. Cheaper than [`series`](Self::series) plus [`history`](Self::history)
    /// when choosing a few series out of thousands (e.g. the largest `live.*` counts): only
    /// the names that pass are copied.
    pub fn latest_values(&self, filter: impl FnMut(&str) -> bool) -> Vec<(String, f64)> {
        self.shared.history.lock().latest(filter)
    }

    /// The last [`RECENT_ALERTS`] alerts sent to the hooks, firing and resolved (scope
    /// findings included), oldest first. Unlike [`active_alerts`](Self::active_alerts) it
    /// keeps alerts that have since resolved, so a dashboard can mark when each happened.
    pub fn recent_alerts(&self) -> Vec<Alert> {
        self.shared.recent.lock().iter().cloned().collect()
    }

    /// Alerts suppressed by de-duplication so far.
    pub fn suppressed_alerts(&self) -> u64 {
        self.shared.deduper.lock().suppressed()
    }

    /// Stops sampling and waits for the thread, then gives the hooks up to [`HOOK_DRAIN`]
    /// (one second, all hooks together) to deliver what is queued for them. After that, the
    /// alerts still queued behind a slow or hung hook are dropped and counted in
    /// `count.leakwatch.hook.dropped`; the one alert such a hook is handling finishes on its
    /// own thread, which is not waited for. So `stop` returns once the current tick and
    /// the consumers' last run are done, plus at most one second.
    ///
    /// From the watchdog's own thread (a sample consumer stopping or dropping it) it cannot
    /// wait for itself: it only signals the stop, and the thread ends, draining the hooks,
    /// once the consumer returns.
    ///
    /// The sample consumers run one last time before the thread ends (see
    /// [`WatchdogBuilder::on_sample`]): do not call this (or drop the watchdog) while holding
    /// a lock a consumer takes.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.running.store(false, Ordering::Relaxed);
        if let Some((registry, id)) = self.observer.take() {
            registry.remove_scope_observer(id);
        }
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            if t.thread().id() == std::thread::current().id() {
                // Dropped by a sample consumer: joining ourselves would fail (EDEADLK). The
                // loop sees `stop` once the consumer returns and drains the hooks on its way out.
                return;
            }
            let _ = t.join();
        }
        // Normally the sampler already drained the hooks; this covers a sampler that panicked.
        self.shared.shutdown_dispatcher();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

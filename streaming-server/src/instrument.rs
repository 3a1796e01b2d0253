//! The leakwatch series this service declares, and the rules that should hold for it.
//!
//! | series | kind | what |
//! |---|---|---|
//! | `http.streams` | connections | open streams; closes by reason, reaped |
//! | `stream` | scope | one per stream; late registrations, outlived items |
//! | `presence.callbacks` | callbacks | presence callbacks of all streams; deliveries |
//! | `presence.expected_callbacks` | gauge | callbacks that open streams say they hold |
//! | `stream.Shared`, `conversations.Lookup` | tracked types | per-stream state, lookups in flight |
//! | `process.sockets` | gauge | sockets the kernel holds for the process |
//! | `server.sockets` | gauge | the kernel's sockets on the server's port (listener + accepted) |
//! | `tokio.alive_tasks`, `tokio.global_queue_depth` | gauges | the runtime |
//! | `http.status.<code>`, `http.rejected.<reason>`, `http.resync.<reason>` | counters | responses |
//! | `streams.closed.<cause>` | counters | why streams ended |
//! | `delivered.messages`, `events.published`, `events.replayed`, `presence.relayed` | counters | traffic |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use leakwatch::DivergenceRule;
use leakwatch::detect::Direction;

use crate::hub::Resync;
use crate::lw::{Connections, EventCounter, Gauge, Registry};
use crate::request::BadRequest;
use crate::stream::Cause;

/// How often the kernel's socket counts are read (they cost about 1 µs per descriptor;
/// the divergence rules sustain far longer than this).
pub const SOCKET_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Status codes the server answers with (each counted as `http.status.<code>`).
pub const STATUSES: [u16; 14] = [
    200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 429, 431, 500, 503,
];

/// Every counter and tracker of one server.
pub struct Metrics {
    /// Where the server's series live (the global registry unless a test isolates it).
    pub registry: Registry,
    /// Open streams.
    pub streams: Connections,
    /// Messages published.
    pub published: EventCounter,
    /// Message frames queued on streams.
    pub delivered_messages: EventCounter,
    /// Frames replayed after a Last-Event-ID.
    pub replayed: EventCounter,
    /// Presence changes relayed.
    pub presence_relayed: EventCounter,
    /// Presence callback calls.
    pub presence_calls: EventCounter,
    /// 1-to-1 lookups that answered.
    pub lookups_ok: EventCounter,
    /// 1-to-1 lookups that failed.
    pub lookups_failed: EventCounter,
    statuses: BTreeMap<u16, EventCounter>,
    rejected: BTreeMap<&'static str, EventCounter>,
    resyncs: BTreeMap<&'static str, EventCounter>,
    closes: BTreeMap<&'static str, EventCounter>,
    expected_callbacks: Arc<AtomicU64>,
    _gauges: Vec<Gauge>,
}

impl Metrics {
    /// Declares every series in `registry`.
    pub fn new(registry: &Registry) -> Metrics {
        let counter = |name: &str| EventCounter::new_in(registry, name);
        let expected_callbacks = Arc::new(AtomicU64::new(0));
        // Gauges are only read by a watchdog, which the uninstrumented build does not run.
        #[cfg(feature = "instrument")]
        let gauges = {
            let e = expected_callbacks.clone();
            vec![
                registry.gauge("presence.expected_callbacks", move || {
                    Some(e.load(Ordering::Relaxed))
                }),
                // Reading every descriptor costs about 1 µs each: every 5 s is enough for a
                // gauge that is drawn, not compared.
                registry.gauge(
                    leakwatch::process::SOCKETS,
                    leakwatch::gauge_at_most_every(
                        SOCKET_READ_EVERY,
                        leakwatch::process::open_sockets,
                    ),
                ),
            ]
        };
        #[cfg(not(feature = "instrument"))]
        let gauges = Vec::new();
        Metrics {
            registry: registry.clone(),
            streams: Connections::new_in(registry, "http.streams"),
            published: counter("events.published"),
            delivered_messages: counter("delivered.messages"),
            replayed: counter("events.replayed"),
            presence_relayed: counter("presence.relayed"),
            presence_calls: counter("delivered.presence"),
            lookups_ok: counter("conversations.lookups.ok"),
            lookups_failed: counter("conversations.lookups.failed"),
            statuses: STATUSES
                .iter()
                .map(|&s| (s, counter(&format!("http.status.{s}"))))
                .collect(),
            rejected: BadRequest::ALL
                .iter()
                .map(|r| (r.label(), counter(&format!("http.rejected.{}", r.label()))))
                .chain(
                    [
                        "malformed",
                        "unauthorized",
                        "forbidden",
                        "unknown_flow",
                        "too_many_streams",
                        "headers_too_large",
                        "too_large",
                        "not_found",
                        "method",
                        "timeout",
                        "shutting_down",
                    ]
                    .iter()
                    .map(|l| (*l, counter(&format!("http.rejected.{l}")))),
                )
                .collect(),
            resyncs: [Resync::Expired, Resync::BeforeStart, Resync::Unknown]
                .iter()
                .map(|r| (r.label(), counter(&format!("http.resync.{}", r.label()))))
                .collect(),
            closes: Cause::ALL
                .iter()
                .map(|c| (c.label(), counter(&format!("streams.closed.{}", c.label()))))
                .collect(),
            expected_callbacks,
            _gauges: gauges,
        }
    }

    /// Counts a response status.
    pub fn status(&self, code: u16) {
        match self.statuses.get(&code) {
            Some(c) => c.incr(),
            None => self.statuses[&500].incr(),
        }
    }

    /// Counts a rejected request by reason (`label` from [`BadRequest::label`] or one of the
    /// fixed labels declared in [`Metrics::new`]).
    pub fn rejected(&self, label: &str) {
        if let Some(c) = self.rejected.get(label) {
            c.incr();
        } else {
            debug_assert!(false, "undeclared rejection label {label}");
        }
    }

    /// Counts a 409.
    pub fn resync(&self, r: Resync) {
        self.resyncs[r.label()].incr();
        self.status(409);
    }

    /// Counts a stream's end.
    pub fn closed(&self, cause: Cause) {
        self.closes[cause.label()].incr();
    }

    pub(crate) fn expected_callbacks_add(&self, n: u64) {
        self.expected_callbacks.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn expected_callbacks_sub(&self, n: u64) {
        self.expected_callbacks.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Adds this service's rules to a watchdog: the divergences of [`rules`], and growth on the
/// default selection judged against [`LOAD`].
pub fn configure(mut b: leakwatch::WatchdogBuilder) -> leakwatch::WatchdogBuilder {
    for rule in rules() {
        b = b.divergence(rule);
    }
    // Counts that rise with open streams are load, not leaks.
    b.load_series(LOAD)
}

/// The rules [`configure`] gives a watchdog, for `leakwatch analyze` of its recordings.
pub fn watchdog_rules() -> leakwatch::detect::RuleSet {
    configure(leakwatch::Watchdog::builder())
        .rules()
        .expect("the service's built-in rules are valid")
}

/// The series that measures load: counts that rise and fall with it are not leaks.
pub const LOAD: &str = "live.http.streams";

/// The dashboard at `/debug/leakwatch/ui`, laid out as the seed's team looked at it: memory,
/// delivery volume, HTTP status codes, and callbacks against connections.
pub fn dashboard(watchdog: Arc<leakwatch::Watchdog>) -> leakwatch_dashboard::Dashboard {
    use leakwatch_dashboard::{Dashboard, Group};
    Dashboard::builder(watchdog)
        .title("streaming-server: leakwatch")
        .groups([
            Group::values("Memory", ["memory.*_bytes"]).bytes(),
            Group::rates(
                "Delivery volume (per second)",
                ["count.delivered.*", "delivered.*"],
            ),
            Group::rates("HTTP status codes (per second)", ["count.http.status.*"]),
            Group::exact(
                "Callbacks against connections",
                [
                    "live.presence.callbacks",
                    "live.presence.expected_callbacks",
                    "live.http.streams",
                    "live.stream",
                    "live.server.sockets",
                    "live.tokio.alive_tasks",
                ],
            ),
        ])
        .build()
        .expect("the built-in layout is valid")
}

/// How long a divergence must persist before it is an alert. Short enough to catch either
/// seed bug within a minute; long enough that a burst of opens or closes sampled mid-way
/// (a callback registered a moment before its stream counts as open) never fires.
pub const SUSTAIN: Duration = Duration::from_secs(20);

/// The rules that should hold for this service, as divergences (each: `series` must not rise
/// above `ratio · other + offset` beyond the tolerance for [`SUSTAIN`]).
pub fn rules() -> Vec<DivergenceRule> {
    let above = |series: &str, other: &str, abs: f64| {
        DivergenceRule::new(series, other)
            .direction(Direction::Above)
            .abs_tolerance(Some(abs))
            .rel_tolerance(Some(0.05))
            .sustain(SUSTAIN)
    };
    vec![
        // The seed's second bug: callbacks nobody open holds. Both counts are exact
        // bookkeeping read in one snapshot, so a small absolute slack is enough.
        above(
            "live.presence.callbacks",
            "live.presence.expected_callbacks",
            10.0,
        )
        .rel_tolerance(None),
        // Every open stream holds a scope, and the other way round.
        above("live.stream", "live.http.streams", 3.0),
        // The seed's first bug, directly: streams the app thinks are open without a socket.
        above("live.http.streams", "live.server.sockets", 3.0),
        // Every open stream runs a task; a stream without one was never closed.
        above("live.http.streams", "live.tokio.alive_tasks", 3.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakwatch::detect::{Engine, FindingState};

    /// Values a healthy server shows, with `leak` callbacks nobody holds.
    fn tick(t: f64, leak: f64) -> Vec<(&'static str, f64)> {
        let streams = 300.0 + (t % 7.0);
        let held = streams * 3.8;
        vec![
            ("live.http.streams", streams),
            ("live.stream", streams),
            ("live.server.sockets", streams + 1.0),
            ("live.tokio.alive_tasks", streams + 4.0),
            ("live.presence.expected_callbacks", held),
            ("live.presence.callbacks", held + leak),
        ]
    }

    #[test]
    fn leaked_callbacks_fire_the_divergence_within_a_minute_and_healthy_stays_quiet() {
        let mut engine = Engine::new(watchdog_rules()).unwrap();
        let mut fired = None;
        for s in 1..=120 {
            let t = f64::from(s);
            let leak = (t - 5.0).max(0.0) * 1.5;
            for f in engine.observe(t, tick(t, leak)) {
                if f.state == FindingState::Firing && fired.is_none() {
                    fired = Some((t, f.series.clone()));
                }
            }
        }
        let (t, series) = fired.expect("the leak is found");
        assert_eq!(series, "live.presence.callbacks");
        assert!(t <= 60.0, "found after {t} s");

        let mut engine = Engine::new(watchdog_rules()).unwrap();
        for s in 1..=300 {
            let t = f64::from(s);
            assert!(engine.observe(t, tick(t, 0.0)).is_empty(), "healthy at {t}");
        }
    }
}

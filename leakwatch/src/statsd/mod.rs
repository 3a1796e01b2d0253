//! StatsD export (feature `statsd`, on by default): every leakwatch series, and optionally the
//! program's own `metrics` values, sent to a StatsD daemon and on to Graphite.
//!
//! ```no_run
//! use std::time::Duration;
//! use leakwatch::statsd::StatsdExporter;
//!
//! let exporter = StatsdExporter::builder("127.0.0.1:8125")
//!     .prefix("app")
//!     .instance("web-1") // default: $LEAKWATCH_INSTANCE, else the host name
//!     .build()?;
//! let _export = exporter.spawn(Duration::from_secs(1)); // stops, exports and flushes on drop
//! # Ok::<(), leakwatch::statsd::StatsdError>(())
//! ```
//!
//! # Names
//!
//! Every metric of [`Snapshot::metrics`](crate::Snapshot::metrics) is sent as
//! `<prefix>.<instance>.leakwatch.<metric>`; with Etsy statsd (`legacyNamespace: false`)
//! Graphite then holds:
//!
//! | leakwatch metric | StatsD line | Graphite series |
//! |---|---|---|
//! | `live.presence.Watch` (gauge) | `app.web-1.leakwatch.live.presence.Watch:3\|g` | `stats.gauges.app.web-1.leakwatch.live.presence.Watch` |
//! | `created.presence.Watch` (counter) | `app.web-1.leakwatch.created.presence.Watch:5\|c` | `stats.counters.app.web-1.leakwatch.created.presence.Watch.count` (and `.rate`) |
//! | `closed_aborted.http.conns` | `…leakwatch.closed_aborted.http.conns:1\|c` | `stats.counters.….closed_aborted.http.conns.count` |
//! | `memory.resident_bytes` | `…leakwatch.memory.resident_bytes:12582912\|g` | `stats.gauges.….memory.resident_bytes` |
//! | `count.statsd.dropped` | lines this exporter could not send | `stats.counters.….count.statsd.dropped.count` |
//! | alert of rule `growth` | `…leakwatch.alerts.growth:1\|c` | `stats.counters.….alerts.growth.count` |
//!
//! Names are made Graphite-safe by [`sanitize_name`]: dots are hierarchy, every character
//! other than `A-Z a-z 0-9 _ -` becomes `_`, empty components are dropped. The prefix may
//! hold dots; the instance is one component ([`sanitize_component`]: its dots become `_`), so
//! a fleet reports as `app.<instance>.leakwatch.…` and Graphite aggregates it with globs
//! (`sumSeries(stats.gauges.app.*.leakwatch.live.presence.Watch)`). Tags (`.tag(k, v)`) are
//! sent in DogStatsD form (`|#k:v`); tag keys and values keep `A-Z a-z 0-9 _ - . /`.
//!
//! # Guarantees
//!
//! * **Gauges are set, never incremented** (`name:3|g`, the only form every StatsD backend
//!   keeps), and re-sent only when they change plus every `gauge_refresh_ticks` exports.
//!   Counters are sent as the change of their total since the last export (`|c`).
//! * **It never hurts the host.** Callers only format lines, join them into datagram-sized
//!   chunks and `try_send` each chunk into a bounded queue ([`cadence::QueuingMetricSink`],
//!   [`DEFAULT_QUEUE_CAPACITY`] chunks, at most 32 MiB); a thread drains it into a UDP socket, one `send`
//!   per chunk ([`cadence::UdpMetricSink`], datagrams of up to 1432 bytes, 32 768 on loopback),
//!   paced to 100 000 lines/s so the daemon's receive buffer does not overflow. A full queue
//!   refuses a chunk at once; refused lines and failed sends are counted in the
//!   [`EventCounter`](crate::EventCounter) `statsd.dropped` (so they are exported too) and
//!   [`StatsdExporter::dropped`]. Refused counter deltas are retried with the next export, so
//!   totals survive a full queue. When the daemon is down, UDP datagrams are simply lost:
//!   nothing blocks, panics or logs.
//! * **Short-lived programs lose nothing**: [`StatsdExporter::flush`] waits until every queued
//!   line reached the socket; dropping the last exporter
//!   handle or an [`ExportHandle`] does the same without pacing (at most 1 s; lines still
//!   queued after that are counted in `statsd.dropped`).
//!
//! # The program's own metrics
//!
//! [`StatsdExporter::metrics_recorder`] gives a [`metrics::Recorder`] whose counters, gauges
//! and histograms go out through the same queue on every tick, named
//! `<prefix>.<instance>.<name>` (see [`StatsdRecorder`]).
//!
//! ```no_run
//! # let exporter = leakwatch::statsd::StatsdExporter::builder("127.0.0.1:8125").build()?;
//! metrics::set_global_recorder(exporter.metrics_recorder().labels_in_name())
//!     .expect("no other recorder installed");
//! metrics::counter!("http.status", "code" => "409").increment(1); // app.web-1.http.status.409
//! exporter.flush(std::time::Duration::from_secs(1));
//! # Ok::<(), leakwatch::statsd::StatsdError>(())
//! ```

mod batch;
mod exporter;
mod names;
mod recorder;
mod sink;

/// Alert states are the watchdog's ([`crate::watchdog::AlertState`]).
pub use crate::watchdog::AlertState;
pub use exporter::{
    DEFAULT_DATAGRAM_SIZE, DEFAULT_MAX_LINES_PER_SECOND, DEFAULT_QUEUE_CAPACITY, DROPPED_COUNTER,
    ExportHandle, ExportStats, LOOPBACK_DATAGRAM_SIZE, MAX_DATAGRAM_SIZE, StatsdExporter,
    StatsdExporterBuilder,
};
pub use names::{host_name, sanitize_component, sanitize_name};
pub use recorder::StatsdRecorder;

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsdError {
    /// The daemon address is malformed or does not resolve.
    #[error("cannot use StatsD address `{addr}`: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// What went wrong, with the expected form.
        reason: String,
    },
    /// The local UDP socket could not be bound.
    #[error("cannot bind a local UDP socket on {local} to send StatsD metrics: {source}")]
    Bind {
        /// The local address tried.
        local: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// cadence refused to build the UDP sink.
    #[error("cannot create the StatsD UDP sink: {0}")]
    Sink(String),
    /// A builder setting is out of range.
    #[error("invalid StatsD exporter setting: {0}")]
    Config(String),
}

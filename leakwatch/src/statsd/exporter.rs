//! The exporter: snapshot -> StatsD lines -> bounded queue -> paced, buffered UDP.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cadence::{MetricSink, QueuingMetricSink, UdpMetricSink};
use parking_lot::Mutex;

use super::StatsdError;
use super::batch::{Batch, framed};
use super::names::{host_name, push_sanitized_name, sanitize_component, sanitize_tag};
use super::recorder::{StatsdRecorder, UserMetrics};
use super::sink::{PacedSink, Progress};
use crate::event::EventCounter;
use crate::registry::Registry;
use crate::snapshot::{MetricKind, MetricNames, Snapshot, TableId};
use crate::watchdog::{Alert, AlertHook, AlertState};

/// Default bound of the queue between callers and the sending thread, in chunks (a chunk
/// is up to one datagram of newline-joined lines), for datagrams of up to 8 KiB: 4096 chunks
/// hold ~100 000 lines and at most 6 MiB with the default datagram size. Larger datagrams
/// (the loopback default, [`LOOPBACK_DATAGRAM_SIZE`]) get proportionally fewer chunks, so
/// the default queue never holds more than 32 MiB (~700 000 lines).
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Most bytes the default queue bound lets wait ([`DEFAULT_QUEUE_CAPACITY`]).
const DEFAULT_QUEUE_BYTES: usize = 32 << 20;
/// Default UDP payload size: fits a 1500-byte Ethernet MTU with IP/UDP headers.
pub const DEFAULT_DATAGRAM_SIZE: usize = 1432;
/// Default UDP payload size for a daemon on a loopback address (whose MTU is 64 KiB; Etsy
/// statsd reads datagrams of up to 64 KiB): a large export is a few dozen sends, and the
/// queue copies and frees a few dozen chunks rather than a few hundred.
pub const LOOPBACK_DATAGRAM_SIZE: usize = 32_768;
/// Largest UDP payload over IPv4 (65 535 minus the IP and UDP headers): the largest
/// [`StatsdExporterBuilder::datagram_size`].
pub const MAX_DATAGRAM_SIZE: usize = 65_507;
/// Default pacing of the sending thread, in lines per second (see
/// [`StatsdExporterBuilder::max_lines_per_second`]).
pub const DEFAULT_MAX_LINES_PER_SECOND: u64 = 100_000;
/// Name of the [`EventCounter`] that counts lines that could not be sent.
pub const DROPPED_COUNTER: &str = "statsd.dropped";
/// How long dropping the last exporter handle waits for queued lines to reach the socket
/// (unpaced); lines still queued after it are counted as dropped.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// What one [`StatsdExporter::export`] or [`StatsdExporter::tick`] queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Lines accepted by the queue.
    pub queued: usize,
    /// Lines refused because the queue was full (counted in `statsd.dropped`; counters are
    /// retried in full on the next export, so their totals still reach StatsD).
    pub refused: usize,
}

enum Instance {
    Default,
    Named(String),
    Disabled,
}

/// Configures a [`StatsdExporter`]; made by [`StatsdExporter::builder`].
#[must_use]
pub struct StatsdExporterBuilder {
    addr: String,
    prefix: String,
    instance: Instance,
    tags: Vec<(String, String)>,
    queue_capacity: Option<usize>,
    datagram_size: Option<usize>,
    max_lines_per_second: u64,
    events: bool,
    gauge_refresh_ticks: u32,
    registry: Registry,
}

impl std::fmt::Debug for StatsdExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdExporterBuilder")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl StatsdExporterBuilder {
    /// Prefix before the instance name, e.g. `app` (dots allowed; sanitised). Default: none.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// This process's name component, e.g. `web-1` (one component: dots become `_`).
    /// Default: the `LEAKWATCH_INSTANCE` environment variable, else the host name.
    pub fn instance(mut self, instance: &str) -> Self {
        self.instance = Instance::Named(instance.to_owned());
        self
    }

    /// Leaves the instance component out of every name (one process per prefix).
    pub fn no_instance(mut self) -> Self {
        self.instance = Instance::Disabled;
        self
    }

    /// Adds a DogStatsD tag (`|#key:value`) to every line. Etsy statsd 0.9 turns tags into
    /// Graphite tags (`name;key=value`, stored apart from untagged series); plain StatsD
    /// daemons may reject tagged lines. Keys and values are sanitised.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((sanitize_tag(key), sanitize_tag(value)));
        self
    }

    /// Bound of the queue between callers and the sending thread, in chunks of up to one
    /// datagram each (default [`DEFAULT_QUEUE_CAPACITY`], fewer for datagrams over 8 KiB so
    /// that at most 32 MiB wait), so queued memory stays below `chunks × datagram_size`.
    /// When it is full, whole chunks are refused and their lines counted as dropped.
    pub fn queue_capacity(mut self, chunks: usize) -> Self {
        self.queue_capacity = Some(chunks);
        self
    }

    /// Largest UDP payload in bytes (default [`DEFAULT_DATAGRAM_SIZE`], or
    /// [`LOOPBACK_DATAGRAM_SIZE`] for a loopback daemon); lines are joined with `\n` up to
    /// this size. From 64 to [`MAX_DATAGRAM_SIZE`] (the largest UDP payload over IPv4);
    /// [`build`](Self::build) refuses other sizes.
    pub fn datagram_size(mut self, bytes: usize) -> Self {
        self.datagram_size = Some(bytes);
        self
    }

    /// Pacing of the sending thread (default [`DEFAULT_MAX_LINES_PER_SECOND`]): the Etsy
    /// daemon loses most of a burst it cannot drain, so the thread sleeps rather than
    /// overflow it. Callers never wait for this: the queue absorbs bursts. At least 1
    /// ([`build`](Self::build) refuses 0); `u64::MAX` turns pacing off. Dropping the last
    /// exporter handle sends what is left unpaced.
    pub fn max_lines_per_second(mut self, lines: u64) -> Self {
        self.max_lines_per_second = lines;
        self
    }

    /// Also send each alert as a DogStatsD event (`_e{..}`). Only for daemons that accept
    /// events (DogStatsD, Telegraf); Etsy statsd counts them as bad lines. Default: off.
    pub fn events(mut self, on: bool) -> Self {
        self.events = on;
        self
    }

    /// Every `ticks` exports, send every gauge even if it did not change (default 60), so a
    /// restarted daemon learns the levels again. Between refreshes only changed gauges go out.
    pub fn gauge_refresh_ticks(mut self, ticks: u32) -> Self {
        self.gauge_refresh_ticks = ticks.max(1);
        self
    }

    /// The registry that [`StatsdExporter::tick`] and [`StatsdExporter::spawn`] export and
    /// where the `statsd.dropped` counter lives. Default: [`Registry::global`].
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// Resolves the address, binds a local UDP socket and starts the sending thread.
    pub fn build(self) -> Result<StatsdExporter, StatsdError> {
        if self.queue_capacity == Some(0) {
            return Err(StatsdError::Config(
                "queue_capacity must be at least 1".into(),
            ));
        }
        let target = resolve(&self.addr)?;
        // Loopback has a 64 KiB MTU: bigger datagrams mean fewer sends for a large export.
        let datagram_size = self.datagram_size.unwrap_or(if target.ip().is_loopback() {
            LOOPBACK_DATAGRAM_SIZE
        } else {
            DEFAULT_DATAGRAM_SIZE
        });
        if !(64..=MAX_DATAGRAM_SIZE).contains(&datagram_size) {
            return Err(StatsdError::Config(format!(
                "datagram_size must be from 64 to {MAX_DATAGRAM_SIZE} bytes, got {datagram_size}"
            )));
        }
        if self.max_lines_per_second == 0 {
            return Err(StatsdError::Config(
                "max_lines_per_second must be at least 1 (u64::MAX: no pacing)".into(),
            ));
        }
        // Loopback targets get a loopback-bound socket (nothing leaves the machine); others
        // bind the wildcard so the kernel picks the route.
        let local: SocketAddr = match (target.is_ipv4(), target.ip().is_loopback()) {
            (true, true) => "127.0.0.1:0",
            (true, false) => "0.0.0.0:0",
            (false, true) => "[::1]:0",
            (false, false) => "[::]:0",
        }
        .parse()
        .expect("literal socket address");
        let socket =
            UdpSocket::bind(local).map_err(|source| StatsdError::Bind { local, source })?;
        // A connected UDP socket hears the ICMP "port unreachable" a daemon-less port sends
        // back and reports it on a later send (ECONNREFUSED), which the sink counts; an
        // unconnected one never learns that nothing listens. Linux only: cadence sends with
        // `send_to`, which BSD-derived systems refuse on a connected socket (EISCONN).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        socket.connect(target).map_err(|e| StatsdError::Address {
            addr: target.to_string(),
            reason: format!("cannot connect a UDP socket to it: {e}"),
        })?;
        let udp =
            UdpMetricSink::from(target, socket).map_err(|e| StatsdError::Sink(e.to_string()))?;

        let dropped = EventCounter::new_in(&self.registry, DROPPED_COUNTER);
        let progress = Arc::new(Progress::default());
        let paced = PacedSink::new(
            udp,
            progress.clone(),
            dropped.clone(),
            self.registry.clone(),
            self.max_lines_per_second,
        );
        // The queue is held once, in `Inner`, and never cloned: cadence's `Drop` of *any*
        // clone stops the shared worker thread.
        let queue = QueuingMetricSink::builder()
            .with_capacity(self.queue_capacity.unwrap_or_else(|| {
                (DEFAULT_QUEUE_BYTES / datagram_size).min(DEFAULT_QUEUE_CAPACITY)
            }))
            .build(paced);

        let instance = match self.instance {
            Instance::Named(s) => Some(sanitize_component(&s)),
            Instance::Disabled => None,
            Instance::Default => Some(sanitize_component(
                &std::env::var("LEAKWATCH_INSTANCE")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .or_else(host_name)
                    .unwrap_or_else(|| "unknown".into()),
            )),
        };
        let mut base = String::new();
        push_sanitized_name(&mut base, &self.prefix);
        if let Some(i) = &instance {
            push_sanitized_name(&mut base, i);
        }
        let mut leakwatch_base = base.clone();
        push_sanitized_name(&mut leakwatch_base, "leakwatch");
        leakwatch_base.push('.');

        let user = Arc::new(UserMetrics::new(
            base.clone(),
            self.tags.clone(),
            dropped.clone(),
        ));
        Ok(StatsdExporter {
            inner: Arc::new(Inner {
                queue,
                progress,
                target,
                base,
                leakwatch_base,
                instance,
                tags: tag_suffix(&self.tags, std::iter::empty()),
                events: self.events,
                dropped,
                registry: self.registry,
                gauge_refresh_ticks: self.gauge_refresh_ticks,
                datagram_size,
                state: Mutex::new(ExportState::default()),
                snapshot: Mutex::new(Snapshot::empty()),
                user,
            }),
        })
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, StatsdError> {
    let bad = |reason: String| StatsdError::Address {
        addr: addr.to_owned(),
        reason,
    };
    let mut addrs = addr
        .to_socket_addrs()
        .map_err(|e| bad(format!("{e} (expected host:port, e.g. 127.0.0.1:8125)")))?;
    addrs
        .next()
        .ok_or_else(|| bad("the name resolved to no address".into()))
}

/// Appends `key:value|kind` and the tag suffix to `line`: by hand rather than `write!`, as
/// this runs for every changed metric (up to 40 000 per export of 10 000 series). Integral
/// values (nearly all of leakwatch's) use an integer formatter, several times cheaper than
/// `f64`'s; others go as `f64` (never exponent notation, which StatsD would not parse).
pub(crate) fn push_line(line: &mut String, key: &str, value: f64, kind: &str, tags: &str) {
    // Counts are whole numbers: integer formatting is several times cheaper than f64's.
    if value.fract() == 0.0 && (0.0..9.0e15).contains(&value) {
        return push_count_line(line, "", key, value as u64, kind, tags);
    }
    line.push_str(key);
    line.push(':');
    let _ = write!(line, "{value}");
    line.push('|');
    line.push_str(kind);
    line.push_str(tags);
}

/// [`push_line`] for a count, with the key in two parts (`base` a common start).
fn push_count_line(line: &mut String, base: &str, key: &str, value: u64, kind: &str, tags: &str) {
    line.push_str(base);
    line.push_str(key);
    line.push(':');
    line.push_str(itoa::Buffer::new().format(value));
    line.push('|');
    line.push_str(kind);
    line.push_str(tags);
}

/// `|#k:v,k2:v2` for the default tags followed by `extra`, or empty when there are none.
pub(crate) fn tag_suffix<'a>(
    defaults: &[(String, String)],
    extra: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut s = String::new();
    let all = defaults
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(extra.map(|(k, v)| (sanitize_tag(k), sanitize_tag(v))));
    for (k, v) in all {
        s.push_str(if s.is_empty() { "|#" } else { "," });
        let _ = write!(s, "{k}:{v}");
    }
    s
}

/// Per-metric memory of what was sent: where its key is, and the last gauge value or counter
/// total that reached the queue. 16 bytes: a tick reads one per metric (~40 000 for 10 000
/// series), so their size is much of what the pass costs once memory has gone cold.
#[derive(Clone, Copy, Default)]
struct Entry {
    last: u64,
    /// Start of the key in [`ExportState::keys`].
    key_start: u32,
    /// The key's length, and [`SENT`] once `last` holds a value that reached the queue
    /// (a key is never empty: 0 means no key made yet).
    key_len: u32,
}

/// The bit of [`Entry::key_len`] that says `last` is set: keys are far shorter (no longer
/// than a datagram, see `make_key`).
const SENT: u32 = 1 << 31;

impl Entry {
    fn has_key(&self) -> bool {
        self.key_len != 0
    }

    fn key<'k>(&self, keys: &'k str) -> &'k str {
        let start = self.key_start as usize;
        &keys[start..start + (self.key_len & !SENT) as usize]
    }

    /// What last reached the queue (`None`: nothing yet).
    fn last(&self) -> Option<u64> {
        (self.key_len & SENT != 0).then_some(self.last)
    }

    fn set_last(&mut self, value: u64) {
        self.last = value;
        self.key_len |= SENT;
    }
}

/// Appends the StatsD key of metric `name` (after the common start) to `keys`: its place,
/// or `None` for a name too long for any datagram.
fn make_key(keys: &mut String, name: &str) -> Option<(u32, u32)> {
    let mut key = String::new();
    push_sanitized_name(&mut key, name);
    // A name of dots only sanitises to nothing: `_` keeps the line parseable.
    if key.is_empty() {
        key.push('_');
    }
    let start = u32::try_from(keys.len()).ok()?;
    if key.len() > MAX_DATAGRAM_SIZE {
        return None;
    }
    keys.push_str(&key);
    Some((start, key.len() as u32))
}

/// Starts `entries` afresh for the ids of `table` when they followed another table's (the
/// exporter switched between its own interning and a watchdog's), and returns what was last
/// sent under each key: a key made anew takes its value over, so no counter delta is sent
/// twice or lost by the switch.
fn follow(
    table: &MetricNames,
    source: &mut Option<TableId>,
    entries: &mut Vec<Entry>,
    keys: &mut String,
) -> HashMap<String, u64> {
    *source = Some(table.table());
    let had = std::mem::take(entries);
    let had_keys = std::mem::take(keys);
    had.iter()
        .filter_map(|e| Some((e.key(&had_keys).to_owned(), e.last()?)))
        .collect()
}

#[derive(Default)]
struct ExportState {
    /// Interned metric names: flattening a snapshot allocates no name per metric.
    names: MetricNames,
    /// The table whose ids `entries` follow: `names`, or the watchdog's when its snapshots
    /// come with it (see [`Snapshot::lent_names`]).
    source: Option<TableId>,
    /// Per interned metric id: its StatsD key and last value sent.
    entries: Vec<Entry>,
    /// Every key after `<prefix>.<instance>.leakwatch.` (which each line writes first),
    /// back to back: the lines of a tick copy their keys from one buffer read in order
    /// rather than from ~40 000 separate allocations, and the common start is not repeated.
    keys: String,
    /// Exports until the next full gauge refresh (0: this one refreshes).
    until_refresh: u32,
    /// Whether the last export was a refresh (the user metrics of a tick follow it).
    refreshed: bool,
}

struct Inner {
    queue: QueuingMetricSink,
    progress: Arc<Progress>,
    target: SocketAddr,
    /// `<prefix>.<instance>` (sanitised; may be empty).
    base: String,
    /// `<prefix>.<instance>.leakwatch.`
    leakwatch_base: String,
    instance: Option<String>,
    /// Default tags as a line suffix.
    tags: String,
    events: bool,
    dropped: EventCounter,
    registry: Registry,
    gauge_refresh_ticks: u32,
    datagram_size: usize,
    state: Mutex<ExportState>,
    /// The snapshot [`StatsdExporter::tick`] reads into, kept between ticks (locked before
    /// `state`, never after).
    snapshot: Mutex<Snapshot>,
    user: Arc<UserMetrics>,
}

impl Inner {
    /// Queues one framed chunk of `lines` lines (see `batch`); a refusal (queue full) is
    /// counted, never waited on.
    fn send_chunk(&self, chunk: &str, lines: usize) -> bool {
        // Counted before the emit so the worker's `passed_lines` never overtakes it.
        self.progress
            .submitted_lines
            .fetch_add(lines as u64, Ordering::Relaxed);
        let ok = self.queue.emit(chunk).is_ok();
        if !ok {
            self.progress
                .submitted_lines
                .fetch_sub(lines as u64, Ordering::Relaxed);
            self.dropped.add(lines as u64);
        }
        ok
    }

    fn flush_user(&self, refresh: bool) -> (usize, usize) {
        self.user.flush(
            &|c: &str, n: usize| self.send_chunk(c, n),
            self.datagram_size,
            refresh,
        )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Short-lived programs must not lose what they queued (the pitfall of
        // metrics-exporter-statsd): send pending user metrics and what is queued, unpaced, since a paced backlog may need longer than the timeout.
        self.progress.unpaced.store(true, Ordering::Relaxed);
        if !flush(self, SHUTDOWN_FLUSH) {
            // The worker may still send these if the program lives on, but a program that
            // is exiting loses them: they are counted as dropped rather than go unnoticed.
            let submitted = self.progress.submitted_lines.load(Ordering::Relaxed);
            let passed = self.progress.passed_lines.load(Ordering::Relaxed);
            self.dropped.add(submitted.saturating_sub(passed));
        }
    }
}

fn flush(inner: &Inner, timeout: Duration) -> bool {
    inner.flush_user(false);
    // A timeout too long for the clock (Duration::MAX) waits until done.
    let deadline = Instant::now().checked_add(timeout);
    let before_deadline = || deadline.is_none_or(|d| Instant::now() < d);
    let left = || {
        deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        })
    };
    let target = inner.queue.submitted();
    let mut done = inner.progress.passed.load(Ordering::Acquire) >= target;
    // Back off from 100 µs to 5 ms: a paced queue of 40 000 lines takes ~0.4 s to drain, and
    // polling it every 200 µs cost more CPU than the export itself.
    let mut nap = Duration::from_micros(100);
    while !done && before_deadline() {
        std::thread::sleep(nap.min(left()));
        nap = (nap * 2).min(Duration::from_millis(5));
        done = inner.progress.passed.load(Ordering::Acquire) >= target;
    }
    // Nothing is left in a buffer: each queued chunk is sent as its own datagram.
    done
}

/// Sends leakwatch snapshots (and, through [`metrics_recorder`](Self::metrics_recorder), the
/// program's own `metrics` values) to a StatsD daemon over UDP. See the [module
/// docs](super) for names and guarantees.
///
/// Cloning gives another handle to the same exporter (one queue, one socket); the last
/// handle dropped flushes what is queued, unpaced (waiting at most 1 s, then counting what is
/// left as dropped).
#[derive(Clone)]
pub struct StatsdExporter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StatsdExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdExporter")
            .field("target", &self.inner.target)
            .field("base", &self.inner.base)
            .field("dropped", &self.inner.dropped.get())
            .finish_non_exhaustive()
    }
}

impl StatsdExporter {
    /// Starts configuring an exporter to the StatsD daemon at `addr` (`host:port`, e.g.
    /// `127.0.0.1:8125`).
    pub fn builder(addr: &str) -> StatsdExporterBuilder {
        StatsdExporterBuilder {
            addr: addr.to_owned(),
            prefix: String::new(),
            instance: Instance::Default,
            tags: Vec::new(),
            queue_capacity: None,
            datagram_size: None,
            max_lines_per_second: DEFAULT_MAX_LINES_PER_SECOND,
            events: false,
            gauge_refresh_ticks: 60,
            registry: Registry::global().clone(),
        }
    }

    /// The daemon's resolved address.
    pub fn target(&self) -> SocketAddr {
        self.inner.target
    }

    /// The sanitised instance component, if any.
    pub fn instance(&self) -> Option<&str> {
        self.inner.instance.as_deref()
    }

    /// The name every leakwatch metric starts with, `<prefix>.<instance>.leakwatch` (what
    /// Graphite shows after `stats.gauges.` or `stats.counters.`).
    pub fn leakwatch_prefix(&self) -> &str {
        self.inner.leakwatch_base.trim_end_matches('.')
    }

    /// The StatsD name a snapshot metric such as `live.presence.Watch` is sent under.
    pub fn key_for(&self, metric: &str) -> String {
        let mut key = self.inner.leakwatch_base.clone();
        push_sanitized_name(&mut key, metric);
        key
    }

    /// Lines dropped so far: refused by the full queue, or lost in a failed send. Also
    /// exported as the counter `count.statsd.dropped`.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// Chunks (up to a datagram of lines each) waiting in the queue.
    pub fn queued(&self) -> u64 {
        self.inner.queue.queued()
    }

    /// Queues every metric of `snapshot` ([`Snapshot::metrics`]): gauges are *set* (only
    /// when changed, and all of them every `gauge_refresh_ticks` exports), counters are sent
    /// as the change of their total since the last export (every counter once, even at 0,
    /// so the series exists). Never blocks: a full queue refuses lines, which are counted;
    /// a refused counter delta is sent again with the next export.
    pub fn export(&self, snapshot: &Snapshot) -> ExportStats {
        let inner = &*self.inner;
        let mut guard = inner.state.lock();
        let state = &mut *guard;
        let refresh = state.until_refresh == 0;
        state.until_refresh = if refresh {
            inner.gauge_refresh_ticks - 1
        } else {
            state.until_refresh - 1
        };
        state.refreshed = refresh;
        let send = |c: &str, n: usize| inner.send_chunk(c, n);
        let base = inner.leakwatch_base.as_str();
        let mut batch = Batch::new(inner.datagram_size);
        let ExportState {
            names,
            source,
            entries,
            keys,
            ..
        } = state;
        // Ids and values only: a metric's name is read once, when its key is made. A
        // watchdog's snapshot comes interned, its table lent with it: that is used as it is.
        let table: &MetricNames = match snapshot.lent_names() {
            Some(lent) => lent,
            None => {
                names.intern(snapshot);
                names
            }
        };
        let carried = if *source != Some(table.table()) {
            follow(table, source, entries, keys)
        } else {
            HashMap::new()
        };
        for &(id, kind, value) in table.interned() {
            let i = id as usize;
            if i >= entries.len() {
                entries.resize(i + 1, Entry::default());
            }
            let entry = &mut entries[i];
            if !entry.has_key() {
                let Some((start, len)) = make_key(keys, table.name(id)) else {
                    // Longer than any datagram: it could never be sent, so it is counted as
                    // dropped each time it would be.
                    inner.dropped.incr();
                    batch.refused += 1;
                    continue;
                };
                entry.key_start = start;
                entry.key_len = len;
                if let Some(&last) = carried.get(entry.key(keys)) {
                    entry.set_last(last);
                }
            }
            let (line_value, suffix) = match kind {
                MetricKind::Gauge => {
                    if !refresh && entry.last() == Some(value) {
                        continue;
                    }
                    (value, "g")
                }
                MetricKind::Counter => match entry.last() {
                    None => (value, "c"),
                    Some(last) if value == last => continue,
                    // A total only falls when its series was recreated: count from zero.
                    Some(last) if value < last => (value, "c"),
                    Some(last) => (value - last, "c"),
                },
            };
            let key = entry.key(keys);
            batch.push_with(
                &send,
                Some((i, value)),
                &mut |(i, v)| entries[i].set_last(v),
                |buf| push_count_line(buf, base, key, line_value, suffix, &inner.tags),
            );
        }
        batch.send(&send, &mut |(i, v)| entries[i].set_last(v));
        ExportStats {
            queued: batch.queued,
            refused: batch.refused,
        }
    }

    /// Exports the configured registry's snapshot and the program's own `metrics` values
    /// (those recorded through [`metrics_recorder`](Self::metrics_recorder)) once.
    pub fn tick(&self) -> ExportStats {
        // Read into the last tick's snapshot: a series' counts change in place, so a tick
        // builds and drops no per-series values (see `Registry::snapshot_counts_into`).
        let mut last = self.inner.snapshot.lock();
        self.inner.registry.snapshot_counts_into(&mut last);
        self.tick_with(&last)
    }

    /// Like [`tick`](Self::tick) with a snapshot the caller already took. A snapshot a
    /// watchdog hands its [`on_sample`](crate::WatchdogBuilder::on_sample) consumers comes
    /// with the watchdog's interning of it, which the export then uses as it is; any other
    /// is interned here.
    pub fn tick_with(&self, snapshot: &Snapshot) -> ExportStats {
        let mut stats = self.export(snapshot);
        let refresh = self.inner.state.lock().refreshed;
        let (q, r) = self.inner.flush_user(refresh);
        stats.queued += q;
        stats.refused += r;
        stats
    }

    /// Counts an alert as the counter `alerts.<rule>` (when firing) and, with
    /// [`events`](StatsdExporterBuilder::events) on, sends a DogStatsD event titled
    /// `leakwatch <rule> firing|resolved: <series>` with `text`. Callable from any thread;
    /// never blocks (it only queues).
    pub fn alert(&self, rule: &str, series: &str, state: AlertState, text: &str) {
        let inner = &*self.inner;
        if state == AlertState::Firing {
            let mut line = inner.leakwatch_base.clone();
            push_sanitized_name(&mut line, "alerts");
            push_sanitized_name(&mut line, &rule.replace('.', "_"));
            let _ = write!(line, ":1|c{}", inner.tags);
            inner.send_chunk(&framed(&line), 1);
        }
        if inner.events {
            let (word, alert_type) = match state {
                AlertState::Firing => ("firing", "error"),
                AlertState::Resolved => ("resolved", "success"),
            };
            // Event fields are `|`-separated and one line: escape what would break them.
            let clean = |s: &str| s.replace('\n', "\\n").replace('|', "/");
            let title = clean(&format!("leakwatch {rule} {word}: {series}"));
            let text = clean(text);
            let mut line = format!(
                "_e{{{},{}}}:{title}|{text}|t:{alert_type}|s:leakwatch",
                title.len(),
                text.len()
            );
            let extra = [("rule", rule), ("series", series)];
            let mut tags = tag_suffix(&[], extra.into_iter());
            if !inner.tags.is_empty() {
                tags = format!("{},{}", inner.tags, &tags[2..]);
            }
            line.push_str(&tags);
            inner.send_chunk(&framed(&line), 1);
        }
    }

    /// A sample consumer for [`WatchdogBuilder::on_sample`](crate::WatchdogBuilder::on_sample):
    /// exports each snapshot the watchdog takes (and the program's own metrics), so the
    /// watchdog's tick drives the export, no second thread samples the registry, and the
    /// snapshot is interned once, by the watchdog, for both.
    ///
    /// ```no_run
    /// let exporter = leakwatch::statsd::StatsdExporter::builder("127.0.0.1:8125")
    ///     .prefix("app")
    ///     .build()?;
    /// let watchdog = leakwatch::Watchdog::builder()
    ///     .on_sample(exporter.sampler()) // counts to StatsD every tick
    ///     .hook(exporter.clone())        // alerts as `alerts.<rule>` counters (and events)
    ///     .start()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sampler(&self) -> impl FnMut(&Snapshot) + Send + 'static {
        let exporter = self.clone();
        move |snapshot| {
            exporter.tick_with(snapshot);
        }
    }

    /// Sends pending user metrics and waits (at most `timeout`) until every queued line has
    /// been handed to the socket (each queued chunk is one datagram). Returns whether
    /// everything got out in time. Call it before a short-lived program exits (dropping the
    /// last handle does the same with a 1 s timeout).
    pub fn flush(&self, timeout: Duration) -> bool {
        flush(&self.inner, timeout)
    }

    /// A `metrics` recorder that sends the program's own counters, gauges and histograms
    /// through this exporter's queue, under `<prefix>.<instance>.<name>`. Install it with
    /// `metrics::set_global_recorder`; values go out on each [`tick`](Self::tick) and
    /// [`flush`](Self::flush). See [`StatsdRecorder`].
    pub fn metrics_recorder(&self) -> StatsdRecorder {
        StatsdRecorder::new(self.inner.user.clone())
    }

    /// Exports on a background thread every `interval` (a [`tick`](Self::tick)) until the
    /// returned handle is dropped or stopped, which exports a last time and flushes. The
    /// interval is clamped to 1 ms ..= 1 day
    /// ([`clamp_spawn_interval`](crate::watchdog::clamp_spawn_interval)).
    pub fn spawn(&self, interval: Duration) -> ExportHandle {
        let interval = crate::interval::clamp_spawn_interval(interval);
        let stop = Arc::new(AtomicBool::new(false));
        let (exporter, stop2) = (self.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("leakwatch-statsd".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    let next = Instant::now() + interval;
                    exporter.tick();
                    // park_timeout can wake early (spuriously or from `stop`): re-check.
                    while !stop2.load(Ordering::Acquire) {
                        let now = Instant::now();
                        if now >= next {
                            break;
                        }
                        std::thread::park_timeout(next - now);
                    }
                }
            })
            .expect("spawn the leakwatch-statsd thread");
        ExportHandle {
            exporter: self.clone(),
            stop,
            thread: Some(thread),
        }
    }
}

/// The background export started by [`StatsdExporter::spawn`]. Dropping it stops the thread,
/// exports a last time and flushes (at most 1 s).
#[derive(Debug)]
pub struct ExportHandle {
    exporter: StatsdExporter,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ExportHandle {
    /// The exporter this handle drives (e.g. to send alerts).
    pub fn exporter(&self) -> &StatsdExporter {
        &self.exporter
    }

    /// Stops the thread, exports a last time and flushes; returns whether the flush got
    /// everything out within `timeout`.
    pub fn stop(mut self, timeout: Duration) -> bool {
        self.stop_thread();
        self.exporter.tick();
        self.exporter.flush(timeout)
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for ExportHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_thread();
            self.exporter.tick();
            // As the last handle, dropping `exporter` right after flushes unpaced; a paced
            // flush first would only spend the timeout twice.
            if Arc::strong_count(&self.exporter.inner) > 1 {
                self.exporter.flush(SHUTDOWN_FLUSH);
            }
        }
    }
}

/// Alerts from the watchdog go out as `alerts.<rule>` counters (and events when enabled).
impl AlertHook for StatsdExporter {
    fn on_alert(&mut self, alert: &Alert) {
        self.alert(
            alert.rule.as_str(),
            &alert.series,
            alert.state,
            &alert.message,
        );
    }

    fn name(&self) -> &str {
        "statsd"
    }
}

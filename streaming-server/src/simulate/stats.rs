//! Counters the simulator's tasks update while it runs; the report is built from them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Latency samples kept per kind at most (enough for stable percentiles, bounded memory).
const MAX_SAMPLES: usize = 1 << 20;

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    /// Subtracts one (gauges).
    pub fn dec(&self) {
        self.0.fetch_sub(1, Relaxed);
    }
    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Counts per label.
#[derive(Debug, Default)]
pub struct Histogram<K: Ord>(Mutex<BTreeMap<K, u64>>);

impl<K: Ord + Clone> Histogram<K> {
    /// Adds `n` under `key`.
    pub fn add(&self, key: K, n: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(key).or_default() += n;
    }
    /// A copy of the counts.
    pub fn snapshot(&self) -> BTreeMap<K, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Duration samples, in microseconds.
#[derive(Debug, Default)]
pub struct Samples(Mutex<Vec<u32>>);

impl Samples {
    /// Keeps one sample (up to the bound).
    pub fn push(&self, d: Duration) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_SAMPLES {
            v.push(d.as_micros().min(u32::MAX as u128) as u32);
        }
    }
    /// Percentiles of what was kept.
    pub fn summary(&self) -> DurationSummary {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        DurationSummary::of(&mut v)
    }
}

/// Percentiles of a duration, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DurationSummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl DurationSummary {
    /// Summarises samples in microseconds (sorts them).
    pub fn of(v: &mut [u32]) -> DurationSummary {
        if v.is_empty() {
            return DurationSummary::default();
        }
        v.sort_unstable();
        // Nearest rank.
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1] as f64 / 1000.0
        };
        DurationSummary {
            count: v.len() as u64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: v[v.len() - 1] as f64 / 1000.0,
        }
    }
}

/// Everything counted while running.
#[derive(Debug, Default)]
pub struct Stats {
    /// Simulated clients started.
    pub clients_started: Counter,
    /// Clients that found no user below `--streams-per-user`.
    pub clients_without_user: Counter,
    /// TCP connections attempted for streams.
    pub connections: Counter,
    /// Streams the server accepted (200).
    pub streams_opened: Counter,
    /// Streams open now.
    pub open_streams: Counter,
    /// Most streams open at once.
    pub peak_open_streams: Counter,
    /// Streams ended by a reset (`SO_LINGER 0`).
    pub aborts: Counter,
    /// Streams ended by a clean close.
    pub clean_closes: Counter,
    /// Clean closes the server did not answer with its own close within 1 s.
    pub clean_closes_unanswered: Counter,
    /// Streams the server ended.
    pub server_closes: Counter,
    /// Streams silent for `--stall-timeout`.
    pub stalls: Counter,
    /// Reconnects sending the last id received.
    pub resumes: Counter,
    /// Reconnects sending a stale id.
    pub stale_attempts: Counter,
    /// 409 answers.
    pub conflicts: Counter,
    /// Reconnects without id after a 409.
    pub resyncs: Counter,
    /// Heartbeat comments.
    pub heartbeats: Counter,
    /// Events received (all types).
    pub events: Counter,
    /// Messages not posted by this run.
    pub foreign_messages: Counter,
    /// Streams opened after the record bound was reached: checked per event, not for
    /// deliveries.
    pub unchecked_streams: Counter,
    /// Posts sent.
    pub posts_sent: Counter,
    /// Posts acknowledged with 201.
    pub posts_acked: Counter,
    /// Posts skipped because `--max-connections` were in use.
    pub posts_skipped: Counter,
    /// Presence toggles sent.
    pub toggles_sent: Counter,
    /// Presence toggles answered 200.
    pub toggles_ok: Counter,
    /// Client tasks still running at the hard deadline, stopped.
    pub forced_stops: Counter,
    /// Status codes of stream requests.
    pub stream_status: Histogram<u16>,
    /// Status codes of posts.
    pub post_status: Histogram<u16>,
    /// Status codes of presence toggles.
    pub presence_status: Histogram<u16>,
    /// Events per `event:` type.
    pub events_by_type: Histogram<String>,
    /// Transport errors by label.
    pub errors: Histogram<String>,
    /// Connect to response head of streams.
    pub head_latency: Samples,
    /// Post to 201.
    pub post_latency: Samples,
    /// Open to end of streams.
    pub stream_lifetime: Samples,
}

impl Stats {
    /// Counts a stream opening and keeps the peak.
    pub fn stream_opened(&self) {
        self.streams_opened.inc();
        self.open_streams.inc();
        self.peak_open_streams
            .0
            .fetch_max(self.open_streams.get(), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        v.reverse();
        let s = DurationSummary::of(&mut v);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(DurationSummary::of(&mut []), DurationSummary::default());
    }

    #[test]
    fn peak_follows_open_streams() {
        let s = Stats::default();
        s.stream_opened();
        s.stream_opened();
        s.open_streams.dec();
        s.stream_opened();
        s.open_streams.dec();
        s.open_streams.dec();
        assert_eq!(s.peak_open_streams.get(), 2);
        assert_eq!(s.open_streams.get(), 0);
        assert_eq!(s.streams_opened.get(), 3);
    }
}

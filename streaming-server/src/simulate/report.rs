//! The summary of a run: what was sent, what came back, and what was wrong. `Display` for
//! people, serde JSON (`--json`) for machines; both carry the same numbers.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::args::SimArgs;
use super::checks::{DeliveryTotals, Violations};
use super::profile::Profile;
use super::stats::{DurationSummary, Stats};

/// What the run was asked to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Planned {
    /// Server address.
    pub target: String,
    /// Seed of the schedule.
    pub seed: u64,
    /// Load shape.
    pub profile: Profile,
    /// Clients at full load.
    pub clients: usize,
    /// New connections per second at most.
    pub connect_rate: f64,
    /// Traffic phase, seconds.
    pub duration_s: f64,
    /// Median stream lifetime, seconds.
    pub lifetime_s: f64,
    /// Fraction of streams aborted with a reset.
    pub abort_fraction: f64,
    /// Fraction of ends followed by a `Last-Event-ID` resume.
    pub resume_fraction: f64,
    /// Fraction of ends followed by a stale-id reconnect.
    pub stale_fraction: f64,
    /// Posts per second at full load.
    pub post_rate: f64,
    /// Presence toggles per second at full load.
    pub toggle_rate: f64,
    /// Settle time at the end, seconds.
    pub settle_s: f64,
}

/// Clients and connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Connections {
    /// Simulated clients started (each an EventSource with its reconnects).
    pub clients: u64,
    /// Clients that found no user below `--streams-per-user`.
    pub clients_without_user: u64,
    /// Stream connections attempted.
    pub attempted: u64,
    /// Streams opened (200).
    pub opened: u64,
    /// Most streams open at once.
    pub peak_open: u64,
    /// Streams ended by a TCP reset.
    pub aborts: u64,
    /// Streams ended by a clean close.
    pub clean_closes: u64,
    /// Clean closes the server did not answer with its own close within 1 s.
    pub clean_closes_unanswered: u64,
    /// Streams ended by the server.
    pub server_closes: u64,
    /// Streams silent for `--stall-timeout`.
    pub stalls: u64,
    /// Reconnects with the last id received.
    pub resumes: u64,
    /// Reconnects with a stale id.
    pub stale_attempts: u64,
    /// 409 answers.
    pub conflicts: u64,
    /// Reconnects without id after a 409.
    pub resyncs: u64,
    /// Client tasks stopped at the hard deadline.
    pub forced_stops: u64,
}

/// Status codes per kind of request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Statuses {
    /// `GET /flows`.
    pub streams: BTreeMap<u16, u64>,
    /// `POST /flows/../messages`.
    pub posts: BTreeMap<u16, u64>,
    /// `POST /presence`.
    pub presence: BTreeMap<u16, u64>,
}

/// What the streams received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Events {
    /// Events of every type.
    pub total: u64,
    /// Per `event:` type.
    pub by_type: BTreeMap<String, u64>,
    /// Heartbeat comments.
    pub heartbeats: u64,
    /// Messages received on resumed streams that were acknowledged before the stream opened.
    pub replayed: u64,
    /// Messages this run did not post.
    pub foreign_messages: u64,
    /// Streams not checked for deliveries (the record bound was reached).
    pub unchecked_streams: u64,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Posts {
    /// Posts sent.
    pub sent: u64,
    /// Posts answered 201 with an id.
    pub acknowledged: u64,
    /// Posts not sent: every connection of `--max-connections` in use.
    pub skipped: u64,
    /// Presence toggles sent.
    pub toggles_sent: u64,
    /// Presence toggles answered 200.
    pub toggles_ok: u64,
    /// Deliveries due, delivered and missing.
    pub deliveries: DeliveryTotals,
}

/// Latencies and lifetimes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Durations {
    /// Stream request to response head.
    pub stream_head: DurationSummary,
    /// Post to 201.
    pub post: DurationSummary,
    /// Stream open to end.
    pub stream_lifetime: DurationSummary,
}

/// The summary of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// What was asked.
    pub planned: Planned,
    /// Wall time of the whole run (traffic, settle, close), seconds.
    pub elapsed_s: f64,
    /// Clients and connections.
    pub connections: Connections,
    /// Status codes.
    pub statuses: Statuses,
    /// What was received.
    pub events: Events,
    /// What was written.
    pub posts: Posts,
    /// Transport errors by label (connect refused, timeouts, resets).
    pub errors: BTreeMap<String, u64>,
    /// Latencies and lifetimes.
    pub durations: Durations,
    /// What was wrong.
    pub violations: Violations,
}

impl Report {
    /// Assembles the report from a run's counters and checks.
    pub(crate) fn build(
        args: &SimArgs,
        target: String,
        seed: u64,
        elapsed_s: f64,
        stats: &Stats,
        deliveries: DeliveryTotals,
        violations: Violations,
    ) -> Report {
        Report {
            planned: Planned {
                target,
                seed,
                profile: args.profile,
                clients: args.clients,
                connect_rate: args.connect_rate,
                duration_s: args.duration.as_secs_f64(),
                lifetime_s: args.lifetime.as_secs_f64(),
                abort_fraction: args.abort_fraction,
                resume_fraction: args.resume_fraction,
                stale_fraction: args.stale_fraction,
                post_rate: args.post_rate,
                toggle_rate: args.toggle_rate,
                settle_s: args.settle.as_secs_f64(),
            },
            elapsed_s,
            connections: Connections {
                clients: stats.clients_started.get(),
                clients_without_user: stats.clients_without_user.get(),
                attempted: stats.connections.get(),
                opened: stats.streams_opened.get(),
                peak_open: stats.peak_open_streams.get(),
                aborts: stats.aborts.get(),
                clean_closes: stats.clean_closes.get(),
                clean_closes_unanswered: stats.clean_closes_unanswered.get(),
                server_closes: stats.server_closes.get(),
                stalls: stats.stalls.get(),
                resumes: stats.resumes.get(),
                stale_attempts: stats.stale_attempts.get(),
                conflicts: stats.conflicts.get(),
                resyncs: stats.resyncs.get(),
                forced_stops: stats.forced_stops.get(),
            },
            statuses: Statuses {
                streams: stats.stream_status.snapshot(),
                posts: stats.post_status.snapshot(),
                presence: stats.presence_status.snapshot(),
            },
            events: Events {
                total: stats.events.get(),
                by_type: stats.events_by_type.snapshot(),
                heartbeats: stats.heartbeats.get(),
                replayed: deliveries.replayed,
                foreign_messages: stats.foreign_messages.get(),
                unchecked_streams: stats.unchecked_streams.get(),
            },
            posts: Posts {
                sent: stats.posts_sent.get(),
                acknowledged: stats.posts_acked.get(),
                skipped: stats.posts_skipped.get(),
                toggles_sent: stats.toggles_sent.get(),
                toggles_ok: stats.toggles_ok.get(),
                deliveries,
            },
            errors: stats.errors.snapshot(),
            durations: Durations {
                stream_head: stats.head_latency.summary(),
                post: stats.post_latency.summary(),
                stream_lifetime: stats.stream_lifetime.summary(),
            },
            violations,
        }
    }

    /// All violations found.
    pub fn violations(&self) -> u64 {
        self.violations.total
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs and maps with string or integer keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn counts<K: fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: &DurationSummary) -> String {
    if d.count == 0 {
        return "-".into();
    }
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        d.p50_ms, d.p99_ms, d.max_ms
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.planned;
        let c = &self.connections;
        let e = &self.events;
        let d = &self.posts.deliveries;
        writeln!(
            f,
            "simulate: {} against {}, profile {}, up to {} clients for {:.0} s, seed {} ({:.1} s in all)",
            if self.violations() == 0 {
                "PASS"
            } else {
                "FAIL"
            },
            p.target,
            p.profile,
            p.clients,
            p.duration_s,
            p.seed,
            self.elapsed_s
        )?;
        writeln!(
            f,
            "  connections  {} clients, {} attempted, {} opened (peak {} open); {} aborted, {} closed cleanly \
             ({} unanswered within 1 s), {} closed by the server, {} stalled",
            c.clients,
            c.attempted,
            c.opened,
            c.peak_open,
            c.aborts,
            c.clean_closes,
            c.clean_closes_unanswered,
            c.server_closes,
            c.stalls
        )?;
        writeln!(
            f,
            "  reconnects   {} with Last-Event-ID, {} with a stale id; {} × 409, {} resyncs; {} replayed messages",
            c.resumes, c.stale_attempts, c.conflicts, c.resyncs, e.replayed
        )?;
        writeln!(
            f,
            "  statuses     streams {}; posts {}; presence {}",
            counts(&self.statuses.streams),
            counts(&self.statuses.posts),
            counts(&self.statuses.presence)
        )?;
        writeln!(
            f,
            "  events       {} received ({}), {} heartbeats, {} foreign messages",
            e.total,
            counts(&e.by_type),
            e.heartbeats,
            e.foreign_messages
        )?;
        writeln!(
            f,
            "  posts        {} sent, {} acknowledged, {} skipped; {} presence toggles ({} ok)",
            self.posts.sent,
            self.posts.acknowledged,
            self.posts.skipped,
            self.posts.toggles_sent,
            self.posts.toggles_ok
        )?;
        writeln!(
            f,
            "  deliveries   {} due, {} delivered, {} missing{}",
            d.expected,
            d.delivered,
            d.missing,
            if e.unchecked_streams > 0 {
                format!(
                    " ({} streams past the record bound not checked)",
                    e.unchecked_streams
                )
            } else {
                String::new()
            }
        )?;
        writeln!(f, "  head         {}", ms(&self.durations.stream_head))?;
        writeln!(f, "  post         {}", ms(&self.durations.post))?;
        writeln!(f, "  lifetime     {}", ms(&self.durations.stream_lifetime))?;
        writeln!(f, "  errors       {}", counts(&self.errors))?;
        if c.forced_stops > 0 {
            writeln!(
                f,
                "  stopped      {} clients at the hard deadline",
                c.forced_stops
            )?;
        }
        write!(f, "  violations   {}", self.violations())?;
        for (kind, n) in &self.violations.by_kind {
            write!(f, "\n    {kind}: {n}")?;
            for ex in self.violations.examples.iter().filter(|x| x.kind == *kind) {
                write!(f, "\n      e.g. {}", ex.detail)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::checks::ViolationKind;
    use super::*;

    fn sample() -> Report {
        let stats = Stats::default();
        stats.stream_status.add(200, 5);
        stats.stream_status.add(409, 2);
        stats.events_by_type.add("message".into(), 7);
        stats.aborts.add(3);
        let mut v = Violations::default();
        v.record(ViolationKind::MissingDelivery, || {
            "post #1 never reached stream 2.0".into()
        });
        Report::build(
            &SimArgs::default(),
            "127.0.0.1:8080".into(),
            42,
            1.5,
            &stats,
            DeliveryTotals {
                expected: 10,
                delivered: 9,
                missing: 1,
                replayed: 2,
            },
            v,
        )
    }

    #[test]
    fn json_shape() {
        let r = sample();
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["planned"]["seed"], 42);
        assert_eq!(j["planned"]["profile"], "steady");
        assert_eq!(j["planned"]["duration_s"], 90.0);
        assert_eq!(j["connections"]["aborts"], 3);
        assert_eq!(j["statuses"]["streams"]["409"], 2);
        assert_eq!(j["events"]["by_type"]["message"], 7);
        assert_eq!(j["events"]["replayed"], 2);
        assert_eq!(j["posts"]["deliveries"]["missing"], 1);
        assert_eq!(j["violations"]["total"], 1);
        assert_eq!(j["violations"]["by_kind"]["missing_delivery"], 1);
        assert_eq!(j["violations"]["examples"][0]["kind"], "missing_delivery");
        assert!(j["durations"]["post"]["p99_ms"].is_number());
        assert_eq!(r.violations(), 1);
    }

    #[test]
    fn text_names_the_verdict_and_each_violation() {
        let text = sample().to_string();
        assert!(
            text.starts_with("simulate: FAIL against 127.0.0.1:8080"),
            "{text}"
        );
        assert!(text.contains("streams 200×5 409×2"), "{text}");
        assert!(text.contains("missing_delivery: 1"), "{text}");
        assert!(
            text.contains("e.g. post #1 never reached stream 2.0"),
            "{text}"
        );
    }
}

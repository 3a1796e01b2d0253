//! What the simulator verifies about what it receives, and the violations it counts.
//!
//! Two kinds of checks:
//! - **Per event, while streaming** ([`StreamCheck`]): every event carries a decimal `id`;
//!   ids strictly increase on a stream and, after a `Last-Event-ID` resume, start above the
//!   id resumed from (so a replay never duplicates); a message belongs to a flow of the
//!   stream's filter; a presence event is never about the receiver, only about a user the
//!   receiver can see (shares a flow, or has an open 1-to-1), has a known state, and is a
//!   change (never the same state twice in a row for one user on one stream).
//! - **Per post, at the end** ([`check_deliveries`]): every acknowledged post reaches every
//!   stream that was open across it exactly once, counting replays. A stream's window is
//!   defined by ids, not by clocks, so load cannot make it flaky: it starts after the id the
//!   stream resumed from (or, for a fresh stream, at posts sent after its response head
//!   arrived) and ends at the last id it received (ids are delivered in order, so any later id
//!   proves the earlier ones were due), or at the end of the run for streams still open after
//!   `--settle`. A resumed stream's window starts where the previous one ended, so a message
//!   posted while a client was disconnected must arrive in the replay: replays fill gaps.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::sse::SseEvent;
use crate::fixture::{Directory, FlowIx, UserId};

/// The kinds of violation, each a broken promise of the server's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An acknowledged post did not reach a stream that was open across it.
    MissingDelivery,
    /// An event id arrived twice on one stream (or again after resuming from it).
    DuplicateEvent,
    /// An event id lower than one already received on the stream (or than `Last-Event-ID`).
    OutOfOrder,
    /// A message of a flow outside the stream's filter.
    UnentitledMessage,
    /// A message whose id or flow differs from what its post was acknowledged with.
    MismatchedMessage,
    /// A presence event about a user the receiver cannot see.
    UnentitledPresence,
    /// A presence event about the receiver itself.
    SelfPresence,
    /// A presence event repeating the user's previous state on the stream (not a change).
    RepeatedPresence,
    /// An event without a decimal id, with undecodable JSON, or with an unknown state.
    MalformedEvent,
    /// A status the API does not give to the simulator's (valid) requests.
    UnexpectedStatus,
    /// A 409 whose body does not tell the client to resync.
    BadConflictResponse,
    /// A `Last-Event-ID` older than any history answered with a stream instead of 409.
    StaleIdAccepted,
    /// A valid post or presence change refused with a status other than 201/200.
    PostRejected,
    /// A response that is not HTTP or not an event stream where one is due.
    Protocol,
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name, so text and JSON reports agree.
        let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("?"))
    }
}

/// One example of a violation, in words (never with a token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// Its kind.
    pub kind: ViolationKind,
    /// What happened, naming the stream, user, post and ids.
    pub detail: String,
}

/// Violations counted by kind, with a few examples of each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Violations {
    /// All violations.
    pub total: u64,
    /// Count per kind.
    pub by_kind: BTreeMap<ViolationKind, u64>,
    /// Up to `EXAMPLES_PER_KIND` (3) examples per kind.
    pub examples: Vec<Example>,
}

/// Examples kept per kind.
pub const EXAMPLES_PER_KIND: u64 = 3;

impl Violations {
    /// Counts one violation; `detail` is only formatted while examples of the kind are kept.
    pub fn record(&mut self, kind: ViolationKind, detail: impl FnOnce() -> String) {
        self.total += 1;
        let n = self.by_kind.entry(kind).or_default();
        *n += 1;
        if *n <= EXAMPLES_PER_KIND {
            self.examples.push(Example {
                kind,
                detail: detail(),
            });
        }
    }

    /// Adds another collection's counts and examples (within the example bound).
    pub fn merge(&mut self, other: Violations) {
        self.total += other.total;
        for (kind, n) in other.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
        for e in other.examples {
            let kept = self.examples.iter().filter(|x| x.kind == e.kind).count() as u64;
            if kept < EXAMPLES_PER_KIND {
                self.examples.push(e);
            }
        }
    }

    /// The count of one kind.
    pub fn count(&self, kind: ViolationKind) -> u64 {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }
}

/// A message received on a stream that the simulator posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The event id.
    pub id: u64,
    /// The post's sequence number (from the message content).
    pub seq: u32,
    /// The flow the event said it belongs to.
    pub flow: u32,
}

/// One stream that the server accepted (200), as the end-of-run check needs it.
#[derive(Clone, Debug, Default)]
pub struct ConnRecord {
    /// The simulated client (an EventSource and its reconnects).
    pub chain: u64,
    /// Which connection of the client, from 0.
    pub attempt: u32,
    /// The user it streamed as.
    pub user: UserId,
    /// Its filter.
    pub flows: Vec<FlowIx>,
    /// The `Last-Event-ID` it resumed from (a stale id is not a resume point).
    pub resume_from: Option<u64>,
    /// When its request was sent, since the run's start.
    pub requested_at: Duration,
    /// When its response head arrived, since the run's start.
    pub opened_at: Duration,
    /// When it ended.
    pub closed_at: Duration,
    /// Still open when the run ended after `--settle`: every acknowledged post was due.
    pub open_at_end: bool,
    /// The highest event id received.
    pub last_id: Option<u64>,
    /// The simulator's messages received, in id order.
    pub messages: Vec<Delivered>,
}

/// One post the simulator sent; its sequence number is its index.
#[derive(Clone, Debug, PartialEq)]
pub struct PostRecord {
    /// The flow posted to.
    pub flow: FlowIx,
    /// When the request started, since the run's start (posts are numbered in this order).
    pub sent_at: Duration,
    /// When the 201 arrived.
    pub acked_at: Option<Duration>,
    /// The id the 201 gave.
    pub id: Option<u64>,
}

/// Whether `viewer` may see `subject`'s presence: they share a flow, or have an open 1-to-1.
pub fn can_see(dir: &Directory, viewer: UserId, subject: UserId) -> bool {
    let theirs = dir.memberships(subject);
    dir.memberships(viewer).iter().any(|f| theirs.contains(f))
        || dir.partners(viewer).contains(&subject)
}

/// The content the simulator posts: a run tag (so messages of other runs or other posters are
/// told apart) and the post's sequence number.
pub fn message_content(tag: &str, seq: u32) -> String {
    format!("lwsim-{tag}-{seq}")
}

fn content_seq(tag: &str, content: &str) -> Option<u32> {
    content
        .strip_prefix("lwsim-")?
        .strip_prefix(tag)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Checks one stream's events as they arrive.
#[derive(Debug)]
pub struct StreamCheck {
    receiver: UserId,
    flows: Vec<FlowIx>,
    label: String,
    tag: String,
    resume_from: Option<u64>,
    prev_id: Option<u64>,
    presence: HashMap<UserId, String>,
    record_messages: bool,
    /// The simulator's messages received, in id order.
    pub messages: Vec<Delivered>,
    /// Events received per `event:` type.
    pub by_type: BTreeMap<String, u64>,
    /// Messages that the simulator did not post (another run, another client).
    pub foreign: u64,
    /// What was wrong.
    pub violations: Violations,
}

#[derive(serde::Deserialize)]
struct MessageData {
    id: Option<u64>,
    flow: String,
    #[serde(default)]
    content: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct PresenceData {
    id: Option<u64>,
    user: UserId,
    state: String,
}

impl StreamCheck {
    /// A check for a stream of `receiver` over `flows`, resumed from `resume_from`.
    /// `label` names the stream in examples. With `record_messages` false (the run's record
    /// bound is reached) messages are checked but not kept for the delivery check.
    pub fn new(
        receiver: UserId,
        flows: Vec<FlowIx>,
        resume_from: Option<u64>,
        tag: &str,
        label: String,
        record_messages: bool,
    ) -> StreamCheck {
        StreamCheck {
            receiver,
            flows,
            label,
            tag: tag.to_owned(),
            resume_from,
            prev_id: resume_from,
            presence: HashMap::new(),
            record_messages,
            messages: Vec::new(),
            by_type: BTreeMap::new(),
            foreign: 0,
            violations: Violations::default(),
        }
    }

    /// The highest id received on the stream.
    pub fn last_id(&self) -> Option<u64> {
        match (self.prev_id, self.resume_from) {
            (Some(p), Some(r)) if p == r => None,
            (p, _) => p,
        }
    }

    /// Checks one event.
    pub fn on_event(&mut self, dir: &Directory, ev: &SseEvent) {
        *self.by_type.entry(ev.event.clone()).or_default() += 1;
        let label = &self.label;
        let Some(id) = ev.id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
            let shown = ev.id.clone();
            self.violations
                .record(ViolationKind::MalformedEvent, || match shown {
                    None => format!("{label}: {} event without an id", ev.event),
                    Some(s) => format!("{label}: {} event with id {s:?}, not a u64", ev.event),
                });
            return;
        };
        if let Some(prev) = self.prev_id
            && id <= prev
        {
            let kind = if id == prev {
                ViolationKind::DuplicateEvent
            } else {
                ViolationKind::OutOfOrder
            };
            let resumed = self.resume_from;
            self.violations.record(kind, || match resumed {
                Some(r) if prev == r => format!(
                    "{label}: {} event id {id} after resuming with Last-Event-ID {r}",
                    ev.event
                ),
                _ => format!("{label}: {} event id {id} after id {prev}", ev.event),
            });
            // A repeated or older event is not checked again as content.
            return;
        }
        self.prev_id = Some(id);
        match ev.event.as_str() {
            "message" | "comment" => self.message(dir, id, ev),
            "presence" => self.presence(dir, id, ev),
            _ => {}
        }
    }

    fn message(&mut self, dir: &Directory, id: u64, ev: &SseEvent) {
        let label = &self.label;
        let data: MessageData = match serde_json::from_str(&ev.data) {
            Ok(d) => d,
            Err(e) => {
                self.violations.record(ViolationKind::MalformedEvent, || {
                    format!("{label}: message {id} data is not message JSON: {e}")
                });
                return;
            }
        };
        if data.id.is_some_and(|d| d != id) {
            self.violations.record(ViolationKind::MalformedEvent, || {
                format!("{label}: message frame id {id} but data id {:?}", data.id)
            });
        }
        let flow = dir.flow_by_path(&data.flow);
        if !flow.is_some_and(|f| self.flows.contains(&f)) {
            self.violations
                .record(ViolationKind::UnentitledMessage, || {
                    format!(
                        "{label}: message {id} of flow {:?}, not in the stream's filter",
                        data.flow
                    )
                });
            return;
        }
        let seq = data
            .content
            .as_str()
            .and_then(|c| content_seq(&self.tag, c));
        match (seq, flow) {
            (Some(seq), Some(flow)) => {
                if self.record_messages {
                    self.messages.push(Delivered {
                        id,
                        seq,
                        flow: flow as u32,
                    });
                }
            }
            _ => self.foreign += 1,
        }
    }

    fn presence(&mut self, dir: &Directory, id: u64, ev: &SseEvent) {
        let label = &self.label;
        let data: PresenceData = match serde_json::from_str(&ev.data) {
            Ok(d) => d,
            Err(e) => {
                self.violations.record(ViolationKind::MalformedEvent, || {
                    format!("{label}: presence {id} data is not presence JSON: {e}")
                });
                return;
            }
        };
        if data.id.is_some_and(|d| d != id) {
            self.violations.record(ViolationKind::MalformedEvent, || {
                format!("{label}: presence frame id {id} but data id {:?}", data.id)
            });
        }
        if !matches!(data.state.as_str(), "active" | "idle" | "offline") {
            self.violations.record(ViolationKind::MalformedEvent, || {
                format!("{label}: presence {id} with unknown state {:?}", data.state)
            });
            return;
        }
        if data.user == self.receiver {
            self.violations.record(ViolationKind::SelfPresence, || {
                format!(
                    "{label}: presence {id} about the receiver itself ({})",
                    data.state
                )
            });
            return;
        }
        if !can_see(dir, self.receiver, data.user) {
            let receiver = self.receiver;
            self.violations.record(ViolationKind::UnentitledPresence, || {
                format!(
                    "{label}: presence {id} about user {} ({}), whom user {receiver} shares no flow \
                     and no 1-to-1 with",
                    data.user, data.state
                )
            });
            return;
        }
        let previous = self.presence.insert(data.user, data.state.clone());
        if previous.as_deref() == Some(data.state.as_str()) {
            self.violations.record(ViolationKind::RepeatedPresence, || {
                format!(
                    "{label}: presence {id} says user {} is {} again (not a change)",
                    data.user, data.state
                )
            });
        }
    }
}

/// What the delivery check counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryTotals {
    /// (post, stream) pairs where the post was due on the stream.
    pub expected: u64,
    /// Of those, delivered.
    pub delivered: u64,
    /// Of those, missing.
    pub missing: u64,
    /// Messages a resumed stream received that were acknowledged before it opened: replays.
    pub replayed: u64,
}

/// A flow's acknowledged posts, indexed for window queries.
#[derive(Default)]
struct FlowPosts {
    /// (sent_at, id) in sequence (= send) order.
    by_send: Vec<(Duration, u64)>,
    /// `min_id_from[k]`: the lowest id among `by_send[k..]`.
    min_id_from: Vec<u64>,
    /// (id, seq, sent_at) sorted by id.
    by_id: Vec<(u64, u32, Duration)>,
}

/// Checks every acknowledged post against every stream's window (see the module docs);
/// counts missing deliveries and messages that disagree with their post as violations.
pub fn check_deliveries(
    dir: &Directory,
    posts: &[PostRecord],
    conns: &[ConnRecord],
    v: &mut Violations,
) -> DeliveryTotals {
    let mut flows: Vec<FlowPosts> = (0..dir.flows().len())
        .map(|_| FlowPosts::default())
        .collect();
    for (seq, p) in posts.iter().enumerate() {
        if let (Some(id), Some(fp)) = (p.id, flows.get_mut(p.flow)) {
            fp.by_send.push((p.sent_at, id));
            fp.by_id.push((id, seq as u32, p.sent_at));
        }
    }
    for fp in &mut flows {
        fp.by_id.sort_unstable_by_key(|e| e.0);
        fp.min_id_from = vec![u64::MAX; fp.by_send.len() + 1];
        for k in (0..fp.by_send.len()).rev() {
            fp.min_id_from[k] = fp.min_id_from[k + 1].min(fp.by_send[k].1);
        }
    }
    let path = |f: usize| dir.flows().get(f).map_or_else(|| "?".into(), |x| x.path());
    let mut totals = DeliveryTotals::default();
    for c in conns {
        let stream = || {
            format!(
                "stream {}.{} of user {} (open {:.3}s..{:.3}s{})",
                c.chain,
                c.attempt,
                c.user,
                c.opened_at.as_secs_f64(),
                c.closed_at.as_secs_f64(),
                c.resume_from
                    .map_or_else(String::new, |r| format!(", resumed from {r}"))
            )
        };
        // Messages against their posts.
        for d in &c.messages {
            let Some(p) = posts.get(d.seq as usize) else {
                v.record(ViolationKind::MismatchedMessage, || {
                    format!(
                        "{}: message {} names post #{} that was never sent",
                        stream(),
                        d.id,
                        d.seq
                    )
                });
                continue;
            };
            if p.flow != d.flow as usize || p.id.is_some_and(|pid| pid != d.id) {
                v.record(ViolationKind::MismatchedMessage, || {
                    format!(
                        "{}: post #{} went to {} and was acknowledged as id {:?}, received as id {} of {}",
                        stream(),
                        d.seq,
                        path(p.flow),
                        p.id,
                        d.id,
                        path(d.flow as usize)
                    )
                });
            }
            // Acknowledged before the request was even sent: only a replay can bring it. (A
            // post acknowledged between the request and the response head may have been
            // published after the server subscribed the stream, and delivered live.)
            if c.resume_from.is_some() && p.acked_at.is_some_and(|a| a < c.requested_at) {
                totals.replayed += 1;
            }
        }
        // Posts against the stream's window.
        let upper = if c.open_at_end {
            u64::MAX
        } else {
            match c.last_id {
                Some(l) => l,
                None => continue,
            }
        };
        for &f in &c.flows {
            let Some(fp) = flows.get(f) else { continue };
            let (lower, after) = match c.resume_from {
                Some(l) => (l.saturating_add(1), None),
                None => {
                    let k = fp.by_send.partition_point(|&(s, _)| s <= c.opened_at);
                    (fp.min_id_from[k], Some(c.opened_at))
                }
            };
            let from = fp.by_id.partition_point(|e| e.0 < lower);
            for &(id, seq, sent_at) in fp.by_id[from..].iter().take_while(|e| e.0 <= upper) {
                if after.is_some_and(|a| sent_at <= a) {
                    continue;
                }
                totals.expected += 1;
                if c.messages.binary_search_by_key(&id, |d| d.id).is_ok() {
                    totals.delivered += 1;
                } else {
                    totals.missing += 1;
                    v.record(ViolationKind::MissingDelivery, || {
                        format!(
                            "post #{seq} (id {id}, {}) never reached {}, whose window it is in{}",
                            path(f),
                            stream(),
                            if c.open_at_end {
                                " (open to the end)".to_owned()
                            } else {
                                format!(" (it received up to id {upper})")
                            }
                        )
                    });
                }
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    // Built-in fixture: acme/main = {1,2,3} (flow 0), acme/ops = {1,4} (flow 1),
    // globex/lobby = {5,6} (flow 2); 1-to-1s: 1-5, 2-6.
    fn dir() -> Directory {
        Directory::new(Fixture::builtin())
    }

    fn ev(id: u64, event: &str, data: String) -> SseEvent {
        SseEvent {
            id: Some(id.to_string()),
            event: event.into(),
            data,
        }
    }

    fn msg(id: u64, flow: &str, seq: u32) -> SseEvent {
        let content = message_content("t", seq);
        ev(
            id,
            "message",
            format!(
                r#"{{"id":{id},"flow":"{flow}","user":1,"event":"message","content":"{content}"}}"#
            ),
        )
    }

    fn presence(id: u64, user: u64, state: &str) -> SseEvent {
        ev(
            id,
            "presence",
            format!(r#"{{"id":{id},"user":{user},"state":"{state}"}}"#),
        )
    }

    fn check(
        receiver: u64,
        flows: Vec<usize>,
        resume: Option<u64>,
        events: &[SseEvent],
    ) -> StreamCheck {
        let d = dir();
        let mut c = StreamCheck::new(receiver, flows, resume, "t", "stream 1.0".into(), true);
        for e in events {
            c.on_event(&d, e);
        }
        c
    }

    #[test]
    fn a_clean_stream_has_no_violation() {
        let c = check(
            1,
            vec![0, 1],
            None,
            &[
                msg(10, "acme/main", 0),
                presence(11, 2, "active"),
                presence(12, 5, "idle"), // 1-to-1 partner
                msg(13, "acme/ops", 1),
                presence(14, 2, "offline"),
            ],
        );
        assert_eq!(c.violations, Violations::default());
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.last_id(), Some(14));
        assert_eq!(c.by_type["presence"], 3);
    }

    #[test]
    fn duplicates_out_of_order_and_replays_below_the_resume_point() {
        let c = check(
            1,
            vec![0],
            None,
            &[msg(10, "acme/main", 0), msg(10, "acme/main", 0)],
        );
        assert_eq!(c.violations.count(ViolationKind::DuplicateEvent), 1);
        assert_eq!(c.messages.len(), 1, "a duplicate is not kept twice");

        let c = check(
            1,
            vec![0],
            None,
            &[msg(10, "acme/main", 0), msg(9, "acme/main", 1)],
        );
        assert_eq!(c.violations.count(ViolationKind::OutOfOrder), 1);

        let c = check(
            1,
            vec![0],
            Some(20),
            &[msg(20, "acme/main", 0), msg(21, "acme/main", 1)],
        );
        assert_eq!(c.violations.count(ViolationKind::DuplicateEvent), 1);
        assert!(c.violations.examples[0].detail.contains("Last-Event-ID 20"));
        assert_eq!(c.violations.total, 1);
    }

    #[test]
    fn presence_entitlement_self_and_repeats() {
        // User 1 sees 2, 3 (main), 4 (ops), 5 (1-to-1); not 6.
        let c = check(
            1,
            vec![0],
            None,
            &[
                presence(1, 6, "active"),
                presence(2, 1, "active"),
                presence(3, 2, "idle"),
                presence(4, 2, "idle"),
                presence(5, 3, "sleepy"),
            ],
        );
        let v = &c.violations;
        assert_eq!(v.count(ViolationKind::UnentitledPresence), 1);
        assert_eq!(v.count(ViolationKind::SelfPresence), 1);
        assert_eq!(v.count(ViolationKind::RepeatedPresence), 1);
        assert_eq!(v.count(ViolationKind::MalformedEvent), 1);
        assert_eq!(v.total, 4);
        // Tokens never appear in examples.
        assert!(v.examples.iter().all(|e| !e.detail.contains("demo-token")));
    }

    #[test]
    fn messages_outside_the_filter_and_malformed_events() {
        let mut no_id = msg(5, "acme/main", 0);
        no_id.id = None;
        let c = check(
            1,
            vec![0],
            None,
            &[
                msg(3, "acme/ops", 0),
                no_id,
                ev(6, "message", "not json".into()),
                ev(
                    7,
                    "message",
                    r#"{"id":8,"flow":"acme/main","content":"x"}"#.into(),
                ),
                ev(
                    9,
                    "message",
                    r#"{"id":9,"flow":"acme/main","content":"someone else"}"#.into(),
                ),
                ev(10, "unknown-kind", "{}".into()),
            ],
        );
        let v = &c.violations;
        assert_eq!(v.count(ViolationKind::UnentitledMessage), 1);
        assert_eq!(v.count(ViolationKind::MalformedEvent), 3);
        assert_eq!(c.foreign, 2);
        assert_eq!(c.by_type["unknown-kind"], 1);
    }

    fn post(flow: usize, sent: u64, acked: u64, id: u64) -> PostRecord {
        PostRecord {
            flow,
            sent_at: Duration::from_millis(sent),
            acked_at: Some(Duration::from_millis(acked)),
            id: Some(id),
        }
    }

    fn conn(
        chain: u64,
        flows: Vec<usize>,
        resume: Option<u64>,
        open: u64,
        close: u64,
        end: bool,
        ids: &[(u64, u32)],
    ) -> ConnRecord {
        ConnRecord {
            chain,
            attempt: 0,
            user: 1,
            flows,
            resume_from: resume,
            requested_at: Duration::from_millis(open),
            opened_at: Duration::from_millis(open),
            closed_at: Duration::from_millis(close),
            open_at_end: end,
            last_id: ids.last().map(|x| x.0),
            messages: ids
                .iter()
                .map(|&(id, seq)| Delivered { id, seq, flow: 0 })
                .collect(),
        }
    }

    #[test]
    fn deliveries_windows_gaps_and_replays() {
        let d = dir();
        // Posts 0..=4 to acme/main (flow 0), ids 100..=104, one every 100 ms; post 5 to ops.
        let mut posts: Vec<PostRecord> = (0..5)
            .map(|i| post(0, 100 * i + 100, 100 * i + 110, 100 + i))
            .collect();
        posts.push(post(1, 150, 160, 150));

        // A stream opened at 250 ms: posts sent after it (#2, #3, #4) are due; it received
        // only 102 and 104: 103 is a gap (104 proves it was due).
        let gap = conn(1, vec![0], None, 250, 900, false, &[(102, 2), (104, 4)]);
        let mut v = Violations::default();
        let t = check_deliveries(&d, &posts, &[gap], &mut v);
        assert_eq!((t.expected, t.delivered, t.missing), (3, 2, 1));
        assert_eq!(v.count(ViolationKind::MissingDelivery), 1);
        assert!(v.examples[0].detail.contains("post #3 (id 103, acme/main)"));

        // An aborted stream that got 100 and 101, then a resume from 101 that replayed 102,
        // 103 and got 104 live, open to the end: nothing missing, replays counted.
        let first = conn(2, vec![0], None, 50, 260, false, &[(100, 0), (101, 1)]);
        let mut resumed = conn(
            2,
            vec![0],
            Some(101),
            450,
            2000,
            true,
            &[(102, 2), (103, 3), (104, 4)],
        );
        resumed.attempt = 1;
        let mut v = Violations::default();
        let t = check_deliveries(&d, &posts, &[first, resumed], &mut v);
        assert_eq!(v, Violations::default());
        assert_eq!((t.expected, t.delivered, t.missing), (5, 5, 0));
        // 102 and 103 were acknowledged (310, 410 ms) before the resume opened (450 ms).
        assert_eq!(t.replayed, 2);

        // The same resume without the replay: the gap is reported, twice.
        let hole = conn(3, vec![0], Some(101), 450, 2000, true, &[(104, 4)]);
        let mut v = Violations::default();
        let t = check_deliveries(&d, &posts, &[hole], &mut v);
        assert_eq!(t.missing, 2);

        // A stream that received nothing and closed mid-run has no window: nothing is due.
        let silent = conn(4, vec![0], None, 0, 900, false, &[]);
        let mut v = Violations::default();
        let t = check_deliveries(&d, &posts, &[silent], &mut v);
        assert_eq!((t.expected, v.total), (0, 0));
    }

    #[test]
    fn messages_disagreeing_with_their_post_are_mismatches() {
        let d = dir();
        let posts = vec![post(0, 100, 110, 100)];
        let wrong_id = conn(1, vec![0], None, 50, 900, false, &[(101, 0)]);
        let unknown = conn(2, vec![0], None, 50, 900, false, &[(100, 0), (150, 7)]);
        let mut v = Violations::default();
        check_deliveries(&d, &posts, &[wrong_id, unknown], &mut v);
        assert_eq!(v.count(ViolationKind::MismatchedMessage), 2);
        // wrong_id also misses id 100, which its window (up to 101) holds.
        assert_eq!(v.count(ViolationKind::MissingDelivery), 1);
    }

    #[test]
    fn violations_merge_and_bound_examples() {
        let mut a = Violations::default();
        for i in 0..5 {
            a.record(ViolationKind::OutOfOrder, || format!("a{i}"));
        }
        let mut b = Violations::default();
        b.record(ViolationKind::OutOfOrder, || "b".into());
        b.record(ViolationKind::SelfPresence, || "s".into());
        a.merge(b);
        assert_eq!(a.total, 7);
        assert_eq!(a.count(ViolationKind::OutOfOrder), 6);
        assert_eq!(a.examples.len(), 4);
        assert_eq!(
            ViolationKind::MissingDelivery.to_string(),
            "missing_delivery"
        );
    }
}

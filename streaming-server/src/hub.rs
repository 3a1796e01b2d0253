//! Event ids, per-flow history and fan-out, under one lock so that every stream sees events in
//! id order and a resume is gap-free and duplicate-free.
//!
//! Ids come from one server-wide sequence, so one `Last-Event-ID` covers a multi-flow filter.
//! The sequence starts at the server's start time in microseconds: history lives in memory,
//! and an id handed out before a restart is then always below the new server's first id and
//! answered with 409 instead of being silently matched to a different event. (This holds as
//! long as a server publishes fewer than a million events per second of uptime.)
//!
//! Subscribing takes the history snapshot and joins the flows' subscriber lists in the same
//! critical section as publishing, so every event is either in the replay or delivered live,
//! never both and never neither.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::fixture::{FlowIx, UserId};
use crate::frame::{self, Frame, PresenceState};
use crate::instrument::Metrics;
use crate::stream::{Push, StreamId, StreamShared};

/// Why a `Last-Event-ID` cannot be resumed from (answered with 409).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    /// The id is older than what a filtered flow's history still holds.
    Expired,
    /// The id predates this server's start (history is in memory).
    BeforeStart,
    /// The id was never handed out by this server.
    Unknown,
}

impl Resync {
    /// Human explanation for the 409 body.
    pub fn message(self) -> &'static str {
        match self {
            Resync::Expired => {
                "events after this id are no longer in history; reconnect without Last-Event-ID and reload state"
            }
            Resync::BeforeStart => {
                "this id is from before the server restarted; reconnect without Last-Event-ID and reload state"
            }
            Resync::Unknown => {
                "this id was never issued by this server; reconnect without Last-Event-ID and reload state"
            }
        }
    }

    /// Label for counting.
    pub fn label(self) -> &'static str {
        match self {
            Resync::Expired => "expired",
            Resync::BeforeStart => "before_start",
            Resync::Unknown => "unknown",
        }
    }
}

struct FlowState {
    history: VecDeque<Frame>,
    /// Id of the newest event dropped from `history` (0: none yet).
    evicted_upto: u64,
    subscribers: HashMap<StreamId, Arc<StreamShared>>,
}

struct State {
    /// The last id handed out.
    last_id: u64,
    flows: Vec<FlowState>,
}

/// The event hub of one server.
pub struct Hub {
    state: Mutex<State>,
    /// The first id of this server is `base + 1`.
    base: u64,
    history_len: usize,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// A hub for `flows` flows keeping `history_len` events per flow.
    pub fn new(flows: usize, history_len: usize, metrics: Arc<Metrics>) -> Hub {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Hub {
            state: Mutex::new(State {
                last_id: base,
                flows: (0..flows)
                    .map(|_| FlowState {
                        history: VecDeque::new(),
                        evicted_upto: 0,
                        subscribers: HashMap::new(),
                    })
                    .collect(),
            }),
            base,
            history_len: history_len.max(1),
            metrics,
        }
    }

    /// The last id handed out.
    pub fn last_id(&self) -> u64 {
        self.state.lock().last_id
    }

    /// Publishes a message to `flow`: a new id, appended to the flow's history and queued on
    /// every stream following the flow. Returns the id.
    pub fn publish(
        &self,
        flow: FlowIx,
        path: &str,
        user: UserId,
        event: &str,
        content: &str,
    ) -> u64 {
        let mut st = self.state.lock();
        st.last_id += 1;
        let id = st.last_id;
        let f = frame::message(id, path, user, event, content);
        let history_len = self.history_len;
        let fs = &mut st.flows[flow];
        if fs.history.len() == history_len
            && let Some(old) = fs.history.pop_front()
        {
            fs.evicted_upto = old.id;
        }
        fs.history.push_back(f.clone());
        let mut delivered = 0u64;
        for s in fs.subscribers.values() {
            if s.push(&f.bytes) == Push::Queued {
                delivered += 1;
            }
        }
        drop(st);
        self.metrics.published.incr();
        self.metrics.delivered_messages.add(delivered);
        id
    }

    /// Subscribes `stream` to `flows`, resuming after `resume` if given: the replay (events of
    /// those flows after `resume`, in id order) is queued on the stream before any live event.
    pub fn subscribe(
        &self,
        stream: &Arc<StreamShared>,
        flows: &[FlowIx],
        resume: Option<u64>,
    ) -> Result<usize, Resync> {
        let mut st = self.state.lock();
        let mut replay: Vec<Frame> = Vec::new();
        if let Some(after) = resume {
            if after < self.base {
                return Err(Resync::BeforeStart);
            }
            if after > st.last_id {
                return Err(Resync::Unknown);
            }
            for &f in flows {
                let fs = &st.flows[f];
                if fs.evicted_upto > after {
                    return Err(Resync::Expired);
                }
                let start = fs.history.partition_point(|e| e.id <= after);
                replay.extend(fs.history.range(start..).cloned());
            }
            replay.sort_unstable_by_key(|e| e.id);
        }
        let replayed = replay.len();
        stream.queue_replay(replay.into_iter().map(|f| f.bytes));
        for &f in flows {
            st.flows[f].subscribers.insert(stream.id(), stream.clone());
        }
        drop(st);
        self.metrics.replayed.add(replayed as u64);
        Ok(replayed)
    }

    /// Removes `stream` from `flows`.
    pub fn unsubscribe(&self, stream: StreamId, flows: &[FlowIx]) {
        let mut st = self.state.lock();
        for &f in flows {
            st.flows[f].subscribers.remove(&stream);
        }
    }

    /// Assigns an id to a presence change and hands the frame to `relay` (which emits it to
    /// the callbacks of those who can see the user) under the hub lock, so presence events
    /// take their place in every stream's id order.
    pub fn relay_presence(&self, user: UserId, state: PresenceState, relay: impl FnOnce(&Frame)) {
        let mut st = self.state.lock();
        st.last_id += 1;
        let f = frame::presence(st.last_id, user, state);
        relay(&f);
    }

    /// Streams subscribed to any flow (a stream following several flows counts once per flow).
    pub fn subscriptions(&self) -> usize {
        self.state
            .lock()
            .flows
            .iter()
            .map(|f| f.subscribers.len())
            .sum()
    }
}

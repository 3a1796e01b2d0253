//! Who is online, active or idle, and who may hear about it.
//!
//! A user is online while any of their streams is open; active if any open stream is active,
//! unless `POST /presence` set the state. Only changes are relayed, and only through the
//! callbacks of those who can see the user: the streams following a flow the user is a member
//! of (one callback per followed flow) and the streams of users with an open 1-to-1 with them
//! (one callback per open 1-to-1). The work per change is proportional to those watchers, not
//! to all users.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::fixture::{Directory, FlowIx, UserId};
use crate::frame::{Frame, PresenceState};
use crate::hub::Hub;
use crate::instrument::Metrics;
use crate::lw::Callbacks;

/// A presence change as delivered to callbacks.
#[derive(Debug)]
pub struct PresenceEvent {
    /// Whose state changed.
    pub user: UserId,
    /// The frame, with its id.
    pub frame: Frame,
}

#[derive(Default)]
struct UserState {
    /// Streams reserved (open or opening), for the per-user limit.
    reserved: u32,
    open: u32,
    active_open: u32,
    /// Set by `POST /presence`, cleared when the last stream closes.
    chosen: Option<bool>,
    relayed: Option<PresenceState>,
}

impl UserState {
    fn state(&self) -> PresenceState {
        if self.open == 0 {
            PresenceState::Offline
        } else if self.chosen.unwrap_or(self.active_open > 0) {
            PresenceState::Active
        } else {
            PresenceState::Idle
        }
    }
}

/// The presence of every user of a server.
pub struct Presence {
    users: Mutex<HashMap<UserId, UserState>>,
    dir: Arc<Directory>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    flows: Vec<Callbacks<PresenceEvent>>,
    one_to_ones: HashMap<UserId, Callbacks<PresenceEvent>>,
    max_streams: u32,
}

/// A user's stream slot: taken before a stream opens, given back when it ends.
pub struct Reservation {
    presence: Arc<Presence>,
    user: UserId,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut users = self.presence.users.lock();
        if let Some(u) = users.get_mut(&self.user) {
            u.reserved = u.reserved.saturating_sub(1);
            if u.reserved == 0 && u.open == 0 {
                users.remove(&self.user);
            }
        }
    }
}

impl Presence {
    /// Presence for the users of `dir`, at most `max_streams` streams per user.
    pub fn new(
        dir: Arc<Directory>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        max_streams: u32,
    ) -> Self {
        let reg = &metrics.registry;
        let flows = (0..dir.flows().len())
            .map(|_| Callbacks::new_in(reg, "presence.callbacks"))
            .collect();
        let one_to_ones = dir
            .users()
            .iter()
            .filter(|u| !dir.partners(u.id).is_empty())
            .map(|u| (u.id, Callbacks::new_in(reg, "presence.callbacks")))
            .collect();
        Presence {
            users: Mutex::new(HashMap::new()),
            dir,
            hub,
            metrics,
            flows,
            one_to_ones,
            max_streams,
        }
    }

    /// Takes a stream slot for `user`; `None` when the user has `max_streams` already.
    pub fn reserve(self: &Arc<Self>, user: UserId) -> Option<Reservation> {
        let mut users = self.users.lock();
        let u = users.entry(user).or_default();
        if u.reserved >= self.max_streams {
            return None;
        }
        u.reserved += 1;
        Some(Reservation {
            presence: self.clone(),
            user,
        })
    }

    /// The callbacks of streams following `flow`.
    pub fn flow_callbacks(&self, flow: FlowIx) -> &Callbacks<PresenceEvent> {
        &self.flows[flow]
    }

    /// The callbacks of streams whose user has an open 1-to-1 with `user`.
    pub fn one_to_one_callbacks(&self, user: UserId) -> Option<&Callbacks<PresenceEvent>> {
        self.one_to_ones.get(&user)
    }

    /// A stream of `user` opened.
    pub fn stream_opened(&self, user: UserId, active: bool) {
        self.update(user, |u| {
            u.open += 1;
            u.active_open += u32::from(active);
        });
    }

    /// A stream of `user` closed.
    pub fn stream_closed(&self, user: UserId, active: bool) {
        self.update(user, |u| {
            u.open = u.open.saturating_sub(1);
            u.active_open = u.active_open.saturating_sub(u32::from(active));
            if u.open == 0 {
                u.chosen = None;
            }
        });
    }

    /// `POST /presence`: the user chose active or idle. Returns false if the user has no open
    /// stream (the choice would not be visible to anyone).
    pub fn choose(&self, user: UserId, active: bool) -> bool {
        let mut online = false;
        self.update(user, |u| {
            online = u.open > 0;
            if online {
                u.chosen = Some(active);
            }
        });
        online
    }

    /// The state of `user` now.
    pub fn state(&self, user: UserId) -> PresenceState {
        self.users
            .lock()
            .get(&user)
            .map_or(PresenceState::Offline, UserState::state)
    }

    /// Applies `change` and relays the user's state if it changed. The presence lock is held
    /// while relaying so one user's changes are relayed in the order they happened.
    fn update(&self, user: UserId, change: impl FnOnce(&mut UserState)) {
        let mut users = self.users.lock();
        let u = users.entry(user).or_default();
        change(u);
        let now = u.state();
        let before = u.relayed.unwrap_or(PresenceState::Offline);
        if now == before {
            return;
        }
        u.relayed = Some(now);
        self.hub.relay_presence(user, now, |frame| {
            let ev = PresenceEvent {
                user,
                frame: frame.clone(),
            };
            let mut calls = 0;
            for &f in self.dir.memberships(user) {
                calls += self.flows[f].emit(&ev);
            }
            if let Some(cbs) = self.one_to_ones.get(&user) {
                calls += cbs.emit(&ev);
            }
            self.metrics.presence_relayed.incr();
            self.metrics.presence_calls.add(calls as u64);
        });
    }
}

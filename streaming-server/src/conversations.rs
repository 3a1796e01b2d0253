//! The conversations service, modelled in process: which 1-to-1s a user has open. It is slow
//! (`--one-to-one-latency-ms`) and sometimes fails (`--one-to-one-fail-rate`), like the
//! lookup in the seed story, and it is asked as soon as a stream is accepted.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::app::App;
use crate::fixture::{Directory, UserId};
use crate::lw::Tracker;
use crate::presence::PresenceEvent;
use crate::stream::StreamShared;

/// The lookup failed (the stream goes on without 1-to-1 presence).
#[derive(Debug, thiserror::Error)]
#[error("the conversations service did not answer")]
pub struct LookupFailed;

/// The modelled service.
pub struct Conversations {
    dir: Arc<Directory>,
    latency: Duration,
    fail_rate: f64,
    rng: Mutex<fastrand::Rng>,
}

/// One lookup in flight: counted, so lookups that never finish show.
#[cfg_attr(
    feature = "instrument",
    leakwatch::tracked(name = "conversations.Lookup")
)]
struct Lookup {
    // Read only by `#[tracked]`, which the uninstrumented build leaves out.
    #[cfg_attr(not(feature = "instrument"), allow(dead_code))]
    tracker: Tracker<Self>,
}

impl Conversations {
    /// A service answering from `dir` after about `latency` (uniform in 0.5..1.5 of it),
    /// failing a `fail_rate` fraction of calls.
    pub fn new(dir: Arc<Directory>, latency: Duration, fail_rate: f64, seed: u64) -> Self {
        Conversations {
            dir,
            latency,
            fail_rate: fail_rate.clamp(0.0, 1.0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// The users `user` has an open 1-to-1 with.
    pub async fn open_one_to_ones(&self, user: UserId) -> Result<Vec<UserId>, LookupFailed> {
        let _lookup = Lookup {
            tracker: Tracker::new(),
        };
        let (jitter, fail) = {
            let mut rng = self.rng.lock();
            (0.5 + rng.f64(), rng.f64() < self.fail_rate)
        };
        tokio::time::sleep(self.latency.mul_f64(jitter)).await;
        if fail {
            return Err(LookupFailed);
        }
        Ok(self.dir.partners(user).to_vec())
    }
}

/// Runs the lookup for a stream and completes it: correctly by handing the result to the
/// stream's task (which registers in the stream's scope), or, with the `late-callback`
/// fault, the seed's way.
pub(crate) async fn lookup_for_stream(
    app: Arc<App>,
    shared: Arc<StreamShared>,
    done: oneshot::Sender<Vec<UserId>>,
) {
    let user = shared.user();
    let partners = match app.conversations.open_one_to_ones(user).await {
        Ok(p) => {
            app.metrics.lookups_ok.incr();
            p
        }
        Err(LookupFailed) => {
            app.metrics.lookups_failed.incr();
            return;
        }
    };
    if app.faults.late_callback() {
        // FAULT late-callback (the seed's second bug): the completion registers its presence
        // callbacks itself, without checking whether the stream already closed (a 409 may
        // have ended it while we waited). After close, nothing will ever remove them.
        for p in partners {
            let Some(cbs) = app.presence.one_to_one_callbacks(p) else {
                continue;
            };
            let s = shared.clone();
            let sub = cbs.register(move |ev: &PresenceEvent| s.push_presence(ev));
            let mut late = shared.late();
            if !late.closed {
                late.counted += 1;
                app.metrics.expected_callbacks_add(1);
            }
            late.subs.push(sub);
        }
    } else {
        // The stream's task registers them in its scope; if it has ended, this is dropped.
        let _ = done.send(partners);
    }
}

//! The state one server shares between its accept loop, streams and routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::Config;
use crate::conversations::Conversations;
use crate::faults::Faults;
use crate::fixture::Directory;
use crate::hub::Hub;
use crate::instrument::Metrics;
use crate::presence::Presence;
use crate::stream::{StreamGuard, StreamId};

/// Everything a request handler may need.
pub struct App {
    /// Settings.
    pub config: Config,
    /// Users and flows.
    pub dir: Arc<Directory>,
    /// Ids, history, fan-out.
    pub hub: Arc<Hub>,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// The slow 1-to-1 lookup.
    pub conversations: Conversations,
    /// The `--inject` switches.
    pub faults: Faults,
    /// leakwatch series.
    pub metrics: Arc<Metrics>,
    /// Streams whose close never arrived (only with the close-race fault), until reaped.
    pub(crate) lost: Arc<Mutex<HashMap<StreamId, StreamGuard>>>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The live dashboard over the watchdog, while one runs (taken out at shutdown so the
    /// watchdog can stop).
    pub(crate) dashboard: Mutex<Option<leakwatch_dashboard::Dashboard>>,
    /// Bumped by `POST /debug/streams/close`: every open stream ends (clients resume).
    pub(crate) cut: watch::Sender<u64>,
    next_stream: AtomicU64,
}

impl App {
    pub(crate) fn new(
        config: Config,
        dir: Arc<Directory>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> App {
        let hub = Arc::new(Hub::new(dir.flows().len(), config.history, metrics.clone()));
        let presence = Arc::new(Presence::new(
            dir.clone(),
            hub.clone(),
            metrics.clone(),
            config.max_streams_per_user,
        ));
        let conversations = Conversations::new(
            dir.clone(),
            config.one_to_one_latency,
            config.one_to_one_fail_rate,
            config.seed,
        );
        let faults = Faults::new(&config.inject, config.seed ^ 0x5eed);
        App {
            config,
            dir,
            hub,
            presence,
            conversations,
            faults,
            metrics,
            lost: Arc::new(Mutex::new(HashMap::new())),
            shutdown,
            dashboard: Mutex::new(None),
            cut: watch::Sender::new(0),
            next_stream: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_stream_id(&self) -> StreamId {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Ends every open stream (as for a deploy); their clients resume with Last-Event-ID.
    /// Returns how many were open.
    pub fn cut_streams(&self) -> usize {
        let open = self.metrics.streams.open_count();
        self.cut.send_modify(|g| *g += 1);
        open
    }

    /// Streams whose close was lost (close-race fault) and not yet reaped.
    pub fn lost_streams(&self) -> usize {
        self.lost.lock().len()
    }
}

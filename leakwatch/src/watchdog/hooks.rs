//! Alert hooks and their delivery: every hook runs on its own thread behind a bounded queue,
//! so a slow, hanging or panicking hook can never delay sampling or other hooks.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::event::EventCounter;
use crate::registry::Registry;
use crate::watchdog::alert::{Alert, AlertState};

/// Receives alerts. Implemented for closures `FnMut(&Alert) + Send`.
///
/// Hooks run on a thread of their own; they may block (e.g. on the network) without holding
/// up the watchdog, but a hook that never returns stops receiving alerts (they are dropped and
/// counted once its queue is full).
pub trait AlertHook: Send + 'static {
    /// Handles one alert.
    fn on_alert(&mut self, alert: &Alert);

    /// A short name for thread names and failure counters.
    fn name(&self) -> &str {
        "hook"
    }
}

impl<F: FnMut(&Alert) + Send + 'static> AlertHook for F {
    fn on_alert(&mut self, alert: &Alert) {
        self(alert)
    }
}

/// Logs every alert through `tracing`: firing alerts at WARN, resolved at INFO, target
/// `leakwatch`.
///
/// When no `tracing` subscriber is installed (no global default), the alert would vanish:
/// it is written to standard error instead, as `leakwatch: <state> <rule> <series>: <text>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogHook;

/// Whether `tracing` output goes nowhere: no subscriber set for this thread or globally.
pub(crate) fn no_subscriber() -> bool {
    tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
}

impl AlertHook for LogHook {
    fn on_alert(&mut self, alert: &Alert) {
        if no_subscriber() {
            eprintln!(
                "leakwatch: {} {} {}: {alert}",
                alert.state.as_str(),
                alert.rule,
                alert.series
            );
            return;
        }
        match alert.state {
            AlertState::Firing => tracing::warn!(
                target: "leakwatch",
                rule = %alert.rule,
                series = %alert.series,
                state = alert.state.as_str(),
                "{alert}"
            ),
            AlertState::Resolved => tracing::info!(
                target: "leakwatch",
                rule = %alert.rule,
                series = %alert.series,
                state = alert.state.as_str(),
                "{alert}"
            ),
        }
    }

    fn name(&self) -> &str {
        "log"
    }
}

/// Counters of hook failures, kept as event counters in the watched registry so they show up
/// in snapshots and exports: `count.leakwatch.hook.panics`, `count.leakwatch.hook.dropped`.
#[derive(Clone, Debug)]
pub(crate) struct HookCounters {
    pub(crate) panics: EventCounter,
    pub(crate) dropped: EventCounter,
    pub(crate) delivered: EventCounter,
}

impl HookCounters {
    pub(crate) fn new(registry: &Registry) -> Self {
        HookCounters {
            panics: EventCounter::new_in(registry, "leakwatch.hook.panics"),
            dropped: EventCounter::new_in(registry, "leakwatch.hook.dropped"),
            delivered: EventCounter::new_in(registry, "leakwatch.hook.delivered"),
        }
    }
}

/// Alerts a hook may have waiting before new ones are dropped.
const QUEUE: usize = 256;

struct Worker {
    tx: Sender<Arc<Alert>>,
    /// The hook thread's queue, also held here so a shutdown can take back (and count) what
    /// a hook that is still busy will never get to.
    rx: Receiver<Arc<Alert>>,
    thread: JoinHandle<()>,
}

/// Delivers alerts to every hook, each on its own thread.
pub(crate) struct Dispatcher {
    workers: Vec<Worker>,
    counters: HookCounters,
}

impl Dispatcher {
    pub(crate) fn start(hooks: Vec<Box<dyn AlertHook>>, counters: HookCounters) -> Dispatcher {
        let workers = hooks
            .into_iter()
            .enumerate()
            .map(|(i, hook)| {
                let (tx, rx) = bounded::<Arc<Alert>>(QUEUE);
                let counters = counters.clone();
                let name = format!("leakwatch-hook-{i}-{}", hook.name());
                let hook_rx = rx.clone();
                let thread = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || run_hook(hook, hook_rx, counters))
                    .expect("spawn a leakwatch hook thread");
                Worker { tx, rx, thread }
            })
            .collect();
        Dispatcher { workers, counters }
    }

    /// Queues `alert` for every hook without blocking.
    pub(crate) fn send(&self, alert: Alert) {
        let alert = Arc::new(alert);
        for w in &self.workers {
            match w.tx.try_send(alert.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.counters.dropped.incr();
                }
            }
        }
    }

    /// Closes the queues and waits up to `timeout` in all for hooks to drain. A hook still
    /// busy after that (slow or hung) keeps the alert it is handling, but the alerts queued
    /// behind it are taken back and counted as dropped (`count.leakwatch.hook.dropped`), so
    /// its thread ends once that one alert returns and nothing is lost without a count.
    pub(crate) fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let workers: Vec<(Receiver<Arc<Alert>>, JoinHandle<()>)> = self
            .workers
            .into_iter()
            .map(|w| {
                drop(w.tx);
                (w.rx, w.thread)
            })
            .collect();
        for (rx, t) in workers {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
                continue;
            }
            // Each queued alert is received exactly once, by the hook thread (delivered) or
            // here (abandoned): the two counts add up to what was queued.
            let abandoned = rx.try_iter().count() as u64;
            if abandoned > 0 {
                self.counters.dropped.add(abandoned);
            }
        }
    }
}

fn run_hook(mut hook: Box<dyn AlertHook>, rx: Receiver<Arc<Alert>>, counters: HookCounters) {
    for alert in rx {
        match std::panic::catch_unwind(AssertUnwindSafe(|| hook.on_alert(&alert))) {
            Ok(()) => counters.delivered.incr(),
            Err(_) => counters.panics.incr(),
        }
    }
}

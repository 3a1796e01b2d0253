//! Scope findings as plain data (late registrations, outlived scopes) and the log a registry
//! keeps of them, with its observers. Scopes report here; the registry holds the log;
//! snapshots and the watchdog read it. Nothing here knows scopes themselves.

use std::collections::VecDeque;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// A finding about scope hygiene, delivered to observers and kept in snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum ScopeFinding {
    /// Something tried to register on a scope that was already closed (and was refused).
    LateRegistration {
        /// Scope name.
        scope: String,
        /// Name of the item that tried to register.
        item: String,
        /// `file:line:column` of the registration attempt.
        site: String,
        /// How long after the close it came.
        after_close_ms: u64,
    },
    /// An item bound to a scope was still alive a grace period after the scope closed.
    Outlived {
        /// Scope name.
        scope: String,
        /// Item name.
        item: String,
        /// `file:line:column` where the item was created.
        site: String,
        /// Age of the item when reported.
        age_ms: u64,
        /// Time since the scope closed.
        since_close_ms: u64,
    },
}

impl ScopeFinding {
    /// The scope's name.
    pub fn scope(&self) -> &str {
        match self {
            ScopeFinding::LateRegistration { scope, .. } | ScopeFinding::Outlived { scope, .. } => {
                scope
            }
        }
    }

    /// The item's name.
    pub fn item(&self) -> &str {
        match self {
            ScopeFinding::LateRegistration { item, .. } | ScopeFinding::Outlived { item, .. } => {
                item
            }
        }
    }

    /// The source location involved.
    pub fn site(&self) -> &str {
        match self {
            ScopeFinding::LateRegistration { site, .. } | ScopeFinding::Outlived { site, .. } => {
                site
            }
        }
    }

    /// `late_registration` or `outlived`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScopeFinding::LateRegistration { .. } => "late_registration",
            ScopeFinding::Outlived { .. } => "outlived",
        }
    }
}

impl fmt::Display for ScopeFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeFinding::LateRegistration {
                scope,
                item,
                site,
                after_close_ms,
            } => write!(
                f,
                "late registration: `{item}` at {site} tried to register on scope `{scope}` \
                 {after_close_ms} ms after it closed (refused)"
            ),
            ScopeFinding::Outlived {
                scope,
                item,
                site,
                age_ms,
                since_close_ms,
            } => write!(
                f,
                "outlived its scope: `{item}` created at {site} ({age_ms} ms old) is still \
                 alive {since_close_ms} ms after scope `{scope}` closed"
            ),
        }
    }
}

/// Registering on a scope that has already closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot register `{item}` on scope `{scope}`: the scope closed {after_close:?} ago, so \
     nothing would ever clean it up. Check `Scope::is_closed` (or handle this error) in code \
     that can finish after the scope ends, e.g. a slow lookup completing after a 409. \
     (attempt at {site})"
)]
pub struct ScopeClosed {
    /// Scope name.
    pub scope: String,
    /// Item that tried to register.
    pub item: String,
    /// Where the attempt was made.
    pub site: String,
    /// How long after the close.
    pub after_close: Duration,
}

type Observer = Arc<dyn Fn(&ScopeFinding) + Send + Sync>;

/// Names an observer added with [`Registry::on_scope_finding`](crate::Registry::on_scope_finding), so it can be removed with
/// [`Registry::remove_scope_observer`](crate::Registry::remove_scope_observer) (a watchdog removes its own when it stops).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeObserverId(u64);

/// Recent findings of a registry plus its observers.
#[derive(Default)]
pub(crate) struct FindingLog {
    recent: Mutex<VecDeque<ScopeFinding>>,
    observers: RwLock<Vec<(ScopeObserverId, Observer)>>,
    next_observer: AtomicU64,
    observer_panics: AtomicU64,
}

/// How many findings a registry keeps for snapshots; observers see every one.
const RECENT_FINDINGS: usize = 256;

impl FindingLog {
    pub(crate) fn add_observer(&self, o: Observer) -> ScopeObserverId {
        let id = ScopeObserverId(self.next_observer.fetch_add(1, Ordering::Relaxed));
        self.observers.write().push((id, o));
        id
    }

    #[cfg(test)]
    pub(crate) fn observer_count(&self) -> usize {
        self.observers.read().len()
    }

    /// Removes an observer; false if it was not there (already removed).
    pub(crate) fn remove_observer(&self, id: ScopeObserverId) -> bool {
        let removed = {
            let mut observers = self.observers.write();
            let i = observers.iter().position(|(o, _)| *o == id);
            i.map(|i| observers.remove(i))
        };
        // Dropped after the lock is released: the closure may own anything.
        removed.is_some()
    }

    pub(crate) fn recent(&self) -> Vec<ScopeFinding> {
        self.recent.lock().iter().cloned().collect()
    }

    /// Observer callbacks that panicked (caught).
    pub(crate) fn observer_panics(&self) -> u64 {
        self.observer_panics.load(Ordering::Relaxed)
    }

    pub(crate) fn report(&self, finding: ScopeFinding) {
        {
            let mut r = self.recent.lock();
            if r.len() == RECENT_FINDINGS {
                r.pop_front();
            }
            r.push_back(finding.clone());
        }
        let observers: Vec<Observer> = self
            .observers
            .read()
            .iter()
            .map(|(_, o)| o.clone())
            .collect();
        for o in observers {
            if std::panic::catch_unwind(AssertUnwindSafe(|| o(&finding))).is_err() {
                self.observer_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

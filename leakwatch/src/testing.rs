//! Test-time assertions: every count returns to its baseline.
//!
//! ```
//! let reg = leakwatch::Registry::new();
//! let base = reg.snapshot();
//! {
//!     let _t = leakwatch::Token::new_in(&reg, "request.buffer");
//! }
//! leakwatch::assert_returns_to(&base);
//! ```
//!
//! Use an isolated [`Registry`] per test so parallel tests do not disturb each other. `#[tracked]`
//! types are process-wide statics: tests that assert on the same tracked type from several
//! threads at once should hold [`serial`] while they do.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::registry::Registry;
use crate::snapshot::{SeriesChange, Snapshot};

/// Series that did not return to their baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaks {
    /// Every series whose live count is above the baseline (event counters excepted: see
    /// [`SnapshotDiff::grown`](crate::SnapshotDiff::grown)).
    pub grown: Vec<SeriesChange>,
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} series did not return to their baseline:",
            self.grown.len()
        )?;
        for c in &self.grown {
            writeln!(
                f,
                "  {} ({}): +{} live (now {}; {} created, {} dropped since the baseline)",
                c.name,
                c.kind.as_str(),
                c.live,
                c.live_now,
                c.created,
                c.dropped
            )?;
            for s in c.sites.iter().take(5) {
                writeln!(
                    f,
                    "      {} live created at {} (for {} ms)",
                    s.live, s.location, s.age_ms
                )?;
            }
            if c.sites.is_empty() {
                writeln!(f, "      (creation sites unknown for this kind)")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Leaks {}

fn registry_of(base: &Snapshot) -> Registry {
    base.registry()
        .cloned()
        .unwrap_or_else(|| Registry::global().clone())
}

/// Compares the registry `base` was taken from against `base`: `Err` lists every series whose
/// live count grew. Event counters are not live items, so counting events never fails this.
pub fn check_returns_to(base: &Snapshot) -> Result<(), Leaks> {
    let now = registry_of(base).snapshot();
    let grown: Vec<SeriesChange> = now.diff(base).grown().cloned().collect();
    if grown.is_empty() {
        Ok(())
    } else {
        Err(Leaks { grown })
    }
}

/// Panics, naming each series that grew, by how much, and the creation sites of what is still
/// alive, unless every live count is back at (or below) `base`.
#[track_caller]
pub fn assert_returns_to(base: &Snapshot) {
    if let Err(leaks) = check_returns_to(base) {
        panic!("{leaks}");
    }
}

/// Like [`assert_returns_to`], but gives asynchronous cleanup (other threads, tasks) up to
/// `timeout` to finish before failing. A timeout too long to add to the clock (e.g.
/// `Duration::MAX`) waits for as long as it takes.
#[track_caller]
pub fn assert_returns_within(base: &Snapshot, timeout: Duration) {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match check_returns_to(base) {
            Ok(()) => return,
            Err(leaks) if deadline.is_some_and(|d| Instant::now() >= d) => panic!("{leaks}"),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// A process-wide lock for tests that assert on `#[tracked]` types (which are global): hold the
/// guard for the test's duration to keep other such tests from running at the same time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Token;

    #[test]
    fn failure_names_series_amount_and_site() {
        let reg = Registry::new();
        let base = reg.snapshot();
        let kept = Token::new_in(&reg, "leaky.thing");
        let _kept2 = kept.clone();
        let err = check_returns_to(&base).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("leaky.thing"), "{msg}");
        assert!(msg.contains("+2 live"), "{msg}");
        assert!(msg.contains("testing.rs"), "{msg}");
    }

    #[test]
    fn passes_when_counts_return() {
        let reg = Registry::new();
        let _before = Token::new_in(&reg, "pre-existing");
        let base = reg.snapshot();
        drop(Token::new_in(&reg, "temp"));
        assert_returns_to(&base);
    }

    #[test]
    fn waits_for_cleanup_on_other_threads() {
        let reg = Registry::new();
        let base = reg.snapshot();
        let t = Token::new_in(&reg, "async");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(t);
        });
        assert_returns_within(&base, Duration::from_secs(5));
    }

    #[test]
    fn an_endless_timeout_is_accepted() {
        let reg = Registry::new();
        let base = reg.snapshot();
        drop(Token::new_in(&reg, "temp"));
        assert_returns_within(&base, Duration::MAX);
    }

    #[test]
    fn counted_events_are_not_leaks() {
        let reg = Registry::new();
        let base = reg.snapshot();
        crate::EventCounter::new_in(&reg, "http.status.409").add(2);
        assert_returns_to(&base);
    }

    #[test]
    #[should_panic(expected = "did not return")]
    fn assert_panics_on_leak() {
        let reg = Registry::new();
        let base = reg.snapshot();
        std::mem::forget(Token::new_in(&reg, "forgotten"));
        assert_returns_to(&base);
    }
}

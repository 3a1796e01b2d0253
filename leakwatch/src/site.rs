//! Creation sites of live items: which line of code made the things that are still alive.
//!
//! Every token, subscription, named callback and connection remembers its creation site
//! (`#[track_caller]`) and when it was created; its series keeps a small table of sites with
//! live items and their creation times. A site's age is the age of its oldest live item, so
//! a site still holding something created ten minutes ago stands out as a leak suspect,
//! however many younger items come and go beside it.

use std::collections::{BTreeMap, HashMap};
use std::panic::Location;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A source location, as recorded by `#[track_caller]`.
pub type SiteLocation = &'static Location<'static>;

#[derive(Debug, Default)]
struct SiteEntry {
    live: u64,
    /// Live items by creation time ([`now_ms`]), oldest first.
    born: BTreeMap<u64, u32>,
}

/// The instant creation times count from: the first use in this process.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`] at `at`.
fn ms_at(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

/// Live items per creation site.
#[derive(Debug, Default)]
pub(crate) struct SiteTable {
    sites: Mutex<HashMap<SiteLocation, SiteEntry>>,
}

impl SiteTable {
    /// Counts an item created at `site` now; returns its creation time, which the item
    /// hands back to [`remove`](Self::remove).
    pub(crate) fn add(&self, site: SiteLocation) -> u64 {
        // Before the lock: the clock read needs no exclusion.
        let born = ms_at(Instant::now());
        let mut sites = self.sites.lock();
        let e = sites.entry(site).or_default();
        e.live += 1;
        *e.born.entry(born).or_insert(0) += 1;
        born
    }

    /// Forgets an item created at `site` at `born` (what [`add`](Self::add) returned).
    pub(crate) fn remove(&self, site: SiteLocation, born: u64) {
        let mut sites = self.sites.lock();
        if let Some(e) = sites.get_mut(site) {
            e.live -= 1;
            if let Some(n) = e.born.get_mut(&born) {
                *n -= 1;
                if *n == 0 {
                    e.born.remove(&born);
                }
            }
            if e.live == 0 {
                // Dropping empty sites keeps the table bounded by the number of sites with
                // live items, however many sites ever created something.
                sites.remove(site);
            }
        }
    }

    /// Sites with live items, the one whose oldest live item is oldest first.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<Site> {
        let now = ms_at(now);
        let sites = self.sites.lock();
        let mut v: Vec<Site> = sites
            .iter()
            .map(|(loc, e)| {
                let oldest = e.born.keys().next().copied().unwrap_or(now);
                Site {
                    location: format!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
                    live: e.live,
                    age_ms: now.saturating_sub(oldest),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            b.age_ms
                .cmp(&a.age_ms)
                .then_with(|| a.location.cmp(&b.location))
        });
        v
    }
}

/// A creation site with live items, as reported in a [`Snapshot`](crate::Snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// `file:line:column` of the code that created the items.
    pub location: String,
    /// How many items created there are alive now.
    pub live: u64,
    /// Age in milliseconds of the oldest item created here that is still alive. Series
    /// counted without per-item bookkeeping (a `StaticSeries`) report the time since their
    /// live count last rose from zero instead: the oldest live item is at most that old.
    pub age_ms: u64,
}

impl Site {
    /// Age of the oldest item created here that is still alive.
    pub fn age(&self) -> Duration {
        Duration::from_millis(self.age_ms)
    }
}

/// Formats a location as `file:line:column`.
pub(crate) fn fmt_location(loc: SiteLocation) -> String {
    format!("{}:{}:{}", loc.file(), loc.line(), loc.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counts_live_per_site_and_forgets_empty_sites() {
        let t = SiteTable::default();
        let a = Location::caller();
        let x = t.add(a);
        let y = t.add(a);
        let snap = t.snapshot(Instant::now());
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].live, 2);
        t.remove(a, x);
        t.remove(a, y);
        assert!(t.snapshot(Instant::now()).is_empty());
    }

    #[test]
    fn age_is_the_oldest_live_items_and_orders_sites() {
        let t = SiteTable::default();
        let (a, b) = (Location::caller(), Location::caller());
        let old = t.add(a);
        std::thread::sleep(Duration::from_millis(30));
        let young_b = t.add(b);
        std::thread::sleep(Duration::from_millis(30));
        let young_a = t.add(a);
        let now = Instant::now();
        let snap = t.snapshot(now);
        assert_eq!(snap[0].location, fmt_location(a), "a holds the oldest item");
        assert!(snap[0].age_ms >= snap[1].age_ms + 30, "{snap:?}");
        // The oldest item of `a` goes: its age is now its younger item's, and `b` leads,
        // although `a` never stopped holding something.
        t.remove(a, old);
        let snap = t.snapshot(now);
        assert_eq!(snap[0].location, fmt_location(b), "{snap:?}");
        assert_eq!(snap[1].age_ms, ms_at(now) - young_a);
        assert_eq!(snap[0].age_ms, ms_at(now) - young_b);
    }
}

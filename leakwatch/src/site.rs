//! Creation sites of live items: which line of code made the things that are still alive.
//!
//! Every token, subscription, named callback and connection remembers its creation site
//! (`#[track_caller]`); its series keeps a small table of sites with live items. A site's
//! `since` is when its live count last rose from zero, so a site that has held items
//! continuously for ten minutes stands out as a leak suspect.

use std::collections::HashMap;
use std::panic::Location;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A source location, as recorded by `#[track_caller]`.
pub type SiteLocation = &'static Location<'static>;

#[derive(Debug)]
struct SiteEntry {
    live: u64,
    since: Instant,
}

/// Live items per creation site.
#[derive(Debug, Default)]
pub(crate) struct SiteTable {
    sites: Mutex<HashMap<SiteLocation, SiteEntry>>,
}

impl SiteTable {
    pub(crate) fn add(&self, site: SiteLocation) {
        let mut sites = self.sites.lock();
        let e = sites.entry(site).or_insert_with(|| SiteEntry {
            live: 0,
            since: Instant::now(),
        });
        e.live += 1;
    }

    pub(crate) fn remove(&self, site: SiteLocation) {
        let mut sites = self.sites.lock();
        if let Some(e) = sites.get_mut(site) {
            e.live -= 1;
            if e.live == 0 {
                // Dropping empty sites keeps the table bounded by the number of sites with
                // live items, however many sites ever created something.
                sites.remove(site);
            }
        }
    }

    /// Sites with live items, oldest first.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<Site> {
        let sites = self.sites.lock();
        let mut v: Vec<(Instant, Site)> = sites
            .iter()
            .map(|(loc, e)| {
                (
                    e.since,
                    Site {
                        location: format!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
                        live: e.live,
                        age_ms: now.saturating_duration_since(e.since).as_millis() as u64,
                    },
                )
            })
            .collect();
        v.sort_by_key(|(since, s)| (*since, s.location.clone()));
        v.into_iter().map(|(_, s)| s).collect()
    }
}

/// A creation site with live items, as reported in a [`Snapshot`](crate::Snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// `file:line:column` of the code that created the items.
    pub location: String,
    /// How many items created there are alive now.
    pub live: u64,
    /// Milliseconds since this site's live count last rose from zero.
    pub age_ms: u64,
}

impl Site {
    /// How long this site has continuously held live items.
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
        t.add(a);
        t.add(a);
        let snap = t.snapshot(Instant::now());
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].live, 2);
        t.remove(a);
        t.remove(a);
        assert!(t.snapshot(Instant::now()).is_empty());
    }
}

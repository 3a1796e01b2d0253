//! Recent samples of every series, bounded: what a dashboard or an alert's reader looks at.
//!
//! Memory: one column per tick holding that tick's value of every flattened metric as `f32`,
//! indexed by the interned metric id. With the default 300 ticks that is 1.2 KB per metric
//! (about 48 MB for 10,000 series' 40,000 flattened metrics), plus the names. A tick writes one
//! contiguous column (recycling the oldest), so appending 40,000 values touches 160 KB in
//! order instead of one cache line in each of 40,000 separate rings; reading one series walks
//! the columns, which only readers (dashboards, tests) do. A series absent for a full history
//! length is forgotten.

use std::collections::{HashMap, VecDeque};

use crate::snapshot::MetricKind;

/// One tick: its time and every metric's value by id (`NaN`: absent at that tick).
struct Column {
    t: f64,
    values: Vec<f32>,
}

/// Samples of several series read at once by [`Watchdog::samples_since`](super::Watchdog::samples_since).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Time of the newest tick in the history (seconds since the watchdog started), `None`
    /// before the first tick. Pass it as `since` next time to get only newer samples.
    pub newest: Option<f64>,
    /// One entry per requested series, in request order: its `(t, value)` samples newer than
    /// `since`, oldest first; `None` for a series without history.
    pub series: Vec<Option<Vec<(f64, f64)>>>,
}

/// Bounded per-series history.
pub(crate) struct History {
    capacity: usize,
    /// The last `capacity` ticks, oldest first.
    columns: VecDeque<Column>,
    tick: u64,
    /// Per metric id: the tick of its newest value (0: none).
    last_tick: Vec<u64>,
    /// Per metric id: whether `index` holds its name (checked per value, so a tick costs no
    /// hashing).
    known: Vec<bool>,
    index: HashMap<String, u32>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        History {
            capacity: capacity.max(1),
            columns: VecDeque::new(),
            tick: 0,
            last_tick: Vec::new(),
            known: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Appends one tick: `(id, kind, value)` per metric, as
    /// [`MetricNames::interned`](crate::snapshot::MetricNames::interned) leaves them, with
    /// `name` giving an id's name (asked only for ids new to the history).
    pub(crate) fn push<'a>(
        &mut self,
        t: f64,
        metrics: &[(u32, MetricKind, u64)],
        name: impl Fn(u32) -> &'a str,
    ) {
        self.tick += 1;
        let width = metrics
            .iter()
            .map(|&(id, ..)| id as usize + 1)
            .max()
            .unwrap_or(0)
            .max(self.last_tick.len());
        self.last_tick.resize(width, 0);
        self.known.resize(width, false);
        let mut column = if self.columns.len() == self.capacity {
            self.columns.pop_front().expect("capacity >= 1")
        } else {
            Column {
                t,
                values: Vec::new(),
            }
        };
        column.t = t;
        column.values.clear();
        column.values.resize(width, f32::NAN);
        for &(id, _, value) in metrics {
            let i = id as usize;
            column.values[i] = value as f32;
            self.last_tick[i] = self.tick;
            if !self.known[i] {
                self.known[i] = true;
                self.index.insert(name(id).to_owned(), id);
            }
        }
        self.columns.push_back(column);
        // Sweeping once per history length is enough to bound the names kept.
        if self.tick.is_multiple_of(self.capacity as u64) {
            self.forget_absent();
        }
    }

    fn forget_absent(&mut self) {
        let (tick, cap) = (self.tick, self.capacity as u64);
        let (last_tick, known) = (&self.last_tick, &mut self.known);
        self.index.retain(|_, id| {
            let keep = tick - last_tick[*id as usize] < cap;
            if !keep {
                known[*id as usize] = false;
            }
            keep
        });
    }

    /// The value of metric `id` in column `c`, if present there.
    fn value(&self, c: &Column, id: u32) -> Option<f32> {
        c.values.get(id as usize).copied().filter(|v| !v.is_nan())
    }

    /// `(t, value)` pairs of `name`, oldest first (absent ticks skipped).
    pub(crate) fn get(&self, name: &str) -> Vec<(f64, f64)> {
        self.get_since(name, f64::NEG_INFINITY).unwrap_or_default()
    }

    /// `(t, value)` pairs of `name` with `t > since`, oldest first (absent ticks skipped);
    /// `None` when `name` has no history.
    pub(crate) fn get_since(&self, name: &str, since: f64) -> Option<Vec<(f64, f64)>> {
        let id = *self.index.get(name)?;
        // Walk back from the newest tick, stopping at `since`, so a poll for the last few
        // samples costs only those.
        let mut out: Vec<(f64, f64)> = self
            .columns
            .iter()
            .rev()
            .take_while(|c| c.t > since)
            .filter_map(|c| self.value(c, id).map(|v| (c.t, f64::from(v))))
            .collect();
        out.reverse();
        Some(out)
    }

    /// Time of the newest tick, if any.
    pub(crate) fn newest_time(&self) -> Option<f64> {
        self.columns.back().map(|c| c.t)
    }

    /// Name and newest value of every series whose name passes `filter`, sorted by name.
    pub(crate) fn latest(&self, mut filter: impl FnMut(&str) -> bool) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .index
            .iter()
            .filter(|(name, _)| filter(name))
            .filter_map(|(name, id)| {
                let back = (self.tick - self.last_tick[*id as usize]) as usize;
                let c = self.columns.iter().rev().nth(back)?;
                Some((name.clone(), f64::from(self.value(c, *id)?)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Names of series with history.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metric `id` (named by [`name`]) with `value`.
    fn m(id: u32, value: u64) -> (u32, MetricKind, u64) {
        (id, MetricKind::Gauge, value)
    }

    fn name(id: u32) -> &'static str {
        ["a", "b"][id as usize]
    }

    #[test]
    fn bounded_and_aligned() {
        let mut h = History::new(3);
        h.push(1.0, &[m(0, 1), m(1, 10)], name);
        h.push(2.0, &[m(0, 2)], name);
        h.push(3.0, &[m(0, 3), m(1, 30)], name);
        h.push(4.0, &[m(0, 4)], name);
        assert_eq!(h.get("a"), vec![(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]);
        assert_eq!(h.get("b"), vec![(3.0, 30.0)]);
        for t in 5..=9u32 {
            h.push(f64::from(t), &[m(0, u64::from(t))], name);
        }
        assert!(h.get("b").is_empty(), "b absent for a full ring: forgotten");
        assert_eq!(h.names(), ["a"]);
        assert_eq!(h.get("a").len(), 3);
    }

    #[test]
    fn since_and_latest() {
        let mut h = History::new(4);
        assert_eq!(h.newest_time(), None);
        h.push(1.0, &[m(0, 1), m(1, 10)], name);
        h.push(2.0, &[m(0, 2)], name);
        h.push(3.0, &[m(0, 3), m(1, 30)], name);
        assert_eq!(h.newest_time(), Some(3.0));
        assert_eq!(h.get_since("a", 1.0), Some(vec![(2.0, 2.0), (3.0, 3.0)]));
        assert_eq!(h.get_since("a", 3.0), Some(vec![]));
        // The gap at t=2 is skipped, not returned as a value.
        assert_eq!(h.get_since("b", 0.5), Some(vec![(1.0, 10.0), (3.0, 30.0)]));
        assert_eq!(h.get_since("b", 1.5), Some(vec![(3.0, 30.0)]));
        assert_eq!(h.get_since("nope", 0.0), None);
        h.push(4.0, &[m(0, 4)], name);
        assert_eq!(
            h.latest(|_| true),
            vec![("a".to_owned(), 4.0), ("b".to_owned(), 30.0)]
        );
        assert_eq!(h.latest(|n| n == "b"), vec![("b".to_owned(), 30.0)]);
    }

    #[test]
    fn late_series_starts_aligned() {
        let mut h = History::new(5);
        h.push(1.0, &[m(0, 1)], name);
        h.push(2.0, &[m(0, 2), m(1, 20)], name);
        assert_eq!(h.get("b"), vec![(2.0, 20.0)]);
    }

    #[test]
    fn a_forgotten_series_comes_back_without_stale_values() {
        let mut h = History::new(2);
        h.push(1.0, &[m(0, 1), m(1, 10)], name);
        for t in 2..=4u32 {
            h.push(f64::from(t), &[m(0, u64::from(t))], name);
        }
        assert_eq!(h.get_since("b", 0.0), None, "forgotten");
        h.push(5.0, &[m(1, 50)], name);
        assert_eq!(h.get("b"), vec![(5.0, 50.0)]);
        assert_eq!(h.get("a"), vec![(4.0, 4.0)]);
        assert_eq!(
            h.latest(|_| true),
            vec![("a".to_owned(), 4.0), ("b".to_owned(), 50.0)]
        );
    }
}

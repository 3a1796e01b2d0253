//! Recent samples of every series, bounded: what a dashboard or an alert's reader looks at.
//!
//! Memory: one shared ring of timestamps plus, per series, a ring of `f32` values of the same
//! length. With the default 300 samples that is 1.2 KB per series (about 48 MB for 10,000
//! series' 40,000 flattened metrics), plus the name. A series absent for a full ring length is
//! forgotten. Rings are indexed by the interned metric id, so a tick costs no hashing.

use std::collections::{HashMap, VecDeque};

use crate::snapshot::FlatMetric;

struct Ring {
    values: VecDeque<f32>,
    /// Tick index of the newest value, to align with the shared time ring.
    last_tick: u64,
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
    times: VecDeque<f64>,
    tick: u64,
    rings: Vec<Option<Ring>>,
    index: HashMap<String, u32>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        History {
            capacity: capacity.max(1),
            times: VecDeque::new(),
            tick: 0,
            rings: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Appends one tick.
    pub(crate) fn push(&mut self, t: f64, metrics: &[FlatMetric<'_>]) {
        self.tick += 1;
        if self.times.len() == self.capacity {
            self.times.pop_front();
        }
        self.times.push_back(t);
        for m in metrics {
            let i = m.id as usize;
            if i >= self.rings.len() {
                self.rings.resize_with(i + 1, || None);
            }
            let ring = self.rings[i].get_or_insert_with(|| {
                self.index.insert(m.name.to_owned(), m.id);
                Ring {
                    values: VecDeque::new(),
                    last_tick: self.tick - 1,
                }
            });
            // Ticks where the series was absent are filled with NaN so values stay aligned.
            let gap = (self.tick - ring.last_tick).saturating_sub(1) as usize;
            for _ in 0..gap.min(self.capacity) {
                push_bounded(&mut ring.values, f32::NAN, self.capacity);
            }
            push_bounded(&mut ring.values, m.value as f32, self.capacity);
            ring.last_tick = self.tick;
        }
        // Sweeping once per ring length is enough to bound memory.
        if self.tick.is_multiple_of(self.capacity as u64) {
            self.forget_absent();
        }
    }

    fn forget_absent(&mut self) {
        let (tick, cap) = (self.tick, self.capacity as u64);
        let rings = &mut self.rings;
        self.index.retain(|_, id| {
            let slot = &mut rings[*id as usize];
            let keep = slot.as_ref().is_some_and(|r| tick - r.last_tick < cap);
            if !keep {
                *slot = None;
            }
            keep
        });
    }

    /// `(t, value)` pairs of `name`, oldest first (absent ticks skipped).
    pub(crate) fn get(&self, name: &str) -> Vec<(f64, f64)> {
        self.get_since(name, f64::NEG_INFINITY).unwrap_or_default()
    }

    /// `(t, value)` pairs of `name` with `t > since`, oldest first (absent ticks skipped);
    /// `None` when `name` has no history.
    pub(crate) fn get_since(&self, name: &str, since: f64) -> Option<Vec<(f64, f64)>> {
        let ring = self
            .index
            .get(name)
            .and_then(|id| self.rings[*id as usize].as_ref())?;
        // The ring's newest value belongs to tick `last_tick`; walk back through the times,
        // stopping at `since` so a poll for the last few samples costs only those.
        let newest_offset = (self.tick - ring.last_tick) as usize;
        let n_times = self.times.len();
        let mut out: Vec<(f64, f64)> = ring
            .values
            .iter()
            .rev()
            .enumerate()
            .map_while(|(i, v)| {
                let back = i + newest_offset;
                if back >= n_times {
                    return None;
                }
                let t = self.times[n_times - 1 - back];
                (t > since).then_some((t, *v))
            })
            .filter(|(_, v)| !v.is_nan())
            .map(|(t, v)| (t, f64::from(v)))
            .collect();
        out.reverse();
        Some(out)
    }

    /// Time of the newest tick, if any.
    pub(crate) fn newest_time(&self) -> Option<f64> {
        self.times.back().copied()
    }

    /// Name and newest value of every series whose name passes `filter`, sorted by name.
    pub(crate) fn latest(&self, mut filter: impl FnMut(&str) -> bool) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .index
            .iter()
            .filter(|(name, _)| filter(name))
            .filter_map(|(name, id)| {
                // The newest value is never a gap filler: gaps are only written before a value.
                let v = self.rings[*id as usize].as_ref()?.values.back()?;
                Some((name.clone(), f64::from(*v)))
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

fn push_bounded(q: &mut VecDeque<f32>, v: f32, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::MetricKind;

    fn m(id: u32, name: &str, value: f64) -> FlatMetric<'_> {
        FlatMetric {
            id,
            name,
            value,
            kind: MetricKind::Gauge,
        }
    }

    #[test]
    fn bounded_and_aligned() {
        let mut h = History::new(3);
        h.push(1.0, &[m(0, "a", 1.0), m(1, "b", 10.0)]);
        h.push(2.0, &[m(0, "a", 2.0)]);
        h.push(3.0, &[m(0, "a", 3.0), m(1, "b", 30.0)]);
        h.push(4.0, &[m(0, "a", 4.0)]);
        assert_eq!(h.get("a"), vec![(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]);
        assert_eq!(h.get("b"), vec![(3.0, 30.0)]);
        for t in 5..=9 {
            h.push(f64::from(t), &[m(0, "a", f64::from(t))]);
        }
        assert!(h.get("b").is_empty(), "b absent for a full ring: forgotten");
        assert_eq!(h.names(), ["a"]);
        assert_eq!(h.get("a").len(), 3);
    }

    #[test]
    fn since_and_latest() {
        let mut h = History::new(4);
        assert_eq!(h.newest_time(), None);
        h.push(1.0, &[m(0, "a", 1.0), m(1, "b", 10.0)]);
        h.push(2.0, &[m(0, "a", 2.0)]);
        h.push(3.0, &[m(0, "a", 3.0), m(1, "b", 30.0)]);
        assert_eq!(h.newest_time(), Some(3.0));
        assert_eq!(h.get_since("a", 1.0), Some(vec![(2.0, 2.0), (3.0, 3.0)]));
        assert_eq!(h.get_since("a", 3.0), Some(vec![]));
        // The gap at t=2 is skipped, not returned as a value.
        assert_eq!(h.get_since("b", 0.5), Some(vec![(1.0, 10.0), (3.0, 30.0)]));
        assert_eq!(h.get_since("b", 1.5), Some(vec![(3.0, 30.0)]));
        assert_eq!(h.get_since("nope", 0.0), None);
        h.push(4.0, &[m(0, "a", 4.0)]);
        assert_eq!(
            h.latest(|_| true),
            vec![("a".to_owned(), 4.0), ("b".to_owned(), 30.0)]
        );
        assert_eq!(h.latest(|n| n == "b"), vec![("b".to_owned(), 30.0)]);
    }

    #[test]
    fn late_series_starts_aligned() {
        let mut h = History::new(5);
        h.push(1.0, &[m(0, "a", 1.0)]);
        h.push(2.0, &[m(0, "a", 2.0), m(1, "b", 20.0)]);
        assert_eq!(h.get("b"), vec![(2.0, 20.0)]);
    }
}

//! Recent samples of every series, bounded: what a dashboard or an alert's reader looks at.
//!
//! Memory: one shared ring of timestamps plus, per series, a ring of `f32` values of the same
//! length. With the default 300 samples that is 1.2 KB per series (12 MB for 10,000 series),
//! plus the series name. A series absent for a full ring length is forgotten.

use std::collections::HashMap;
use std::collections::VecDeque;

struct Ring {
    values: VecDeque<f32>,
    /// Tick index of the newest value, to align with the shared time ring.
    last_tick: u64,
}

/// Bounded per-series history.
pub(crate) struct History {
    capacity: usize,
    times: VecDeque<f64>,
    tick: u64,
    series: HashMap<String, Ring>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        History {
            capacity: capacity.max(1),
            times: VecDeque::new(),
            tick: 0,
            series: HashMap::new(),
        }
    }

    /// Appends one tick.
    pub(crate) fn push<'a>(&mut self, t: f64, values: impl IntoIterator<Item = (&'a str, f64)>) {
        self.tick += 1;
        if self.times.len() == self.capacity {
            self.times.pop_front();
        }
        self.times.push_back(t);
        for (name, v) in values {
            let ring = match self.series.get_mut(name) {
                Some(r) => r,
                None => self.series.entry(name.to_owned()).or_insert(Ring {
                    values: VecDeque::new(),
                    last_tick: 0,
                }),
            };
            // Ticks where the series was absent are filled with NaN so values stay aligned.
            let gap = (self.tick - ring.last_tick).saturating_sub(1) as usize;
            for _ in 0..gap.min(self.capacity) {
                push_bounded(&mut ring.values, f32::NAN, self.capacity);
            }
            push_bounded(&mut ring.values, v as f32, self.capacity);
            ring.last_tick = self.tick;
        }
        let (tick, cap) = (self.tick, self.capacity as u64);
        self.series.retain(|_, r| tick - r.last_tick < cap);
    }

    /// `(t, value)` pairs of `name`, oldest first (absent ticks skipped).
    pub(crate) fn get(&self, name: &str) -> Vec<(f64, f64)> {
        let Some(ring) = self.series.get(name) else {
            return Vec::new();
        };
        // The ring's newest value belongs to tick `last_tick`; walk back through the times.
        let newest_offset = (self.tick - ring.last_tick) as usize;
        let n_times = self.times.len();
        ring.values
            .iter()
            .rev()
            .enumerate()
            .filter_map(|(i, v)| {
                let back = i + newest_offset;
                (back < n_times && !v.is_nan())
                    .then(|| (self.times[n_times - 1 - back], f64::from(*v)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// Names of series with history.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.series.keys().cloned().collect();
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

    #[test]
    fn bounded_and_aligned() {
        let mut h = History::new(3);
        h.push(1.0, [("a", 1.0), ("b", 10.0)]);
        h.push(2.0, [("a", 2.0)]);
        h.push(3.0, [("a", 3.0), ("b", 30.0)]);
        h.push(4.0, [("a", 4.0)]);
        assert_eq!(h.get("a"), vec![(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]);
        assert_eq!(h.get("b"), vec![(3.0, 30.0)]);
        h.push(5.0, [("a", 5.0)]);
        h.push(6.0, [("a", 6.0)]);
        assert!(h.get("b").is_empty(), "b absent for a full ring: forgotten");
        assert_eq!(h.names(), ["a"]);
    }
}

//! Bounded per-series history: bucket values at two resolutions.
//!
//! Raw samples are never kept. Samples falling in one *fine* bucket (default 10 s) are
//! reduced to one value when the bucket closes: their mean without the samples further
//! than 3σ from their median (σ from consecutive differences inside the bucket), or their
//! median with fewer than 3 samples; each fine point also keeps the variance that value
//! would have on independent noise (the start-up test's white-noise yardstick). Fine
//! values are reduced to a *coarse* median (default 6 fine buckets = 60 s). Each
//! resolution keeps a fixed ring of points, so memory per series is fixed at construction:
//! `12 bytes × fine_capacity + 8 bytes × coarse_capacity` on the heap plus [`History`]'s
//! ~250 bytes inline (see [`History::state_bytes`]).
//!
//! Trimmed means and medians, not plain means or minima, because they ignore one-off
//! spikes and half of a sawtooth tooth, and (unlike a rolling minimum) they do not drift
//! when the noise level changes; the trimmed mean is the more efficient of the two on
//! Gaussian noise (variance σ²/k against ≈ 1.4σ²/k for k = 10). Buckets do not overlap, so the trend test's points stay close to independent.
//! Bucket boundaries are shifted by a per-series phase so that, across thousands of series,
//! bucket closings (and so the evaluations they trigger) are spread evenly over time.

/// One closed bucket: its index (in fine buckets from the history's origin) and median.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Point {
    off: u32,
    v: f32,
}

/// One closed fine bucket: a [`Point`] and the variance its median would have if the
/// samples inside the bucket were independent (`NaN` with fewer than 3 samples): the
/// white-noise yardstick of the start-up test (see `rules::onset::white_ar_z`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FinePoint {
    p: Point,
    white: f32,
}

/// Fixed-capacity ring, oldest first.
#[derive(Debug)]
struct Ring<P> {
    buf: Box<[P]>,
    head: usize,
    len: usize,
}

impl<P: Copy + Default> Ring<P> {
    fn new(cap: usize) -> Self {
        Self {
            buf: vec![P::default(); cap.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }
    fn push(&mut self, p: P) {
        let cap = self.buf.len();
        if self.len < cap {
            self.buf[(self.head + self.len) % cap] = p;
            self.len += 1;
        } else {
            self.buf[self.head] = p;
            self.head = (self.head + 1) % cap;
        }
    }
    fn iter(&self) -> impl DoubleEndedIterator<Item = P> + '_ {
        let cap = self.buf.len();
        (0..self.len).map(move |i| self.buf[(self.head + i) % cap])
    }
    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Samples of the bucket being filled. Bounded: past 16 samples it keeps every other one
/// and then takes every 2nd (4th, ...) new sample, so fast samplers stay evenly represented.
#[derive(Debug, Default, Clone)]
struct SampleBuf {
    vals: [f32; 16],
    len: u8,
    stride: u8,
    skip: u8,
}

impl SampleBuf {
    fn push(&mut self, v: f32) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        if usize::from(self.len) == self.vals.len() {
            for i in 0..self.vals.len() / 2 {
                self.vals[i] = self.vals[2 * i];
            }
            self.len /= 2;
            self.stride = self.stride.max(1).saturating_mul(2);
        }
        self.vals[usize::from(self.len)] = v;
        self.len += 1;
        self.skip = self.stride.max(1) - 1;
    }
    fn take_median(&mut self) -> Option<f32> {
        self.take().map(|(m, _)| m)
    }

    /// The bucket's value (a trimmed mean, or the median of fewer than 3 samples or of
    /// samples that do not vary), and the variance it would have if the samples were
    /// independent (`NaN` with fewer than 3 samples).
    ///
    /// The samples' scale is the median absolute difference of consecutive samples
    /// (/ 0.954, σ-equivalent for Gaussian noise), so a trend or a spike inside the bucket
    /// barely moves it; a median of `k` independent Gaussian samples has variance
    /// ≈ `f·σ²/k` with `f` = π/2 · k/(k + 1.3) for even `k` and k/(k + 0.5) for odd `k`
    /// (within 3% of simulation for k = 3..16).
    fn take(&mut self) -> Option<(f32, f32)> {
        let n = usize::from(self.len);
        let vals = self.vals;
        *self = Self::default();
        if n == 0 {
            return None;
        }
        let mut tmp = [0f64; 16];
        for (d, s) in tmp.iter_mut().zip(&vals) {
            *d = f64::from(*s);
        }
        let median = crate::trend::median_in_place(&mut tmp[..n]) as f32;
        if n < 3 {
            return Some((median, f32::NAN));
        }
        for i in 0..n - 1 {
            tmp[i] = (f64::from(vals[i + 1]) - f64::from(vals[i])).abs();
        }
        let sigma = crate::trend::median_in_place(&mut tmp[..n - 1]) / 0.9539;
        // A mean is more efficient than a median on Gaussian noise (variance σ²/k against
        // ≈ 1.4σ²/k for k = 10): samples further than 3σ from the median (a spike, a
        // sawtooth drop inside the bucket) are left out, so it stays as robust. Measured
        // (start-up z 4, detection bench): the share of 1%/min leaks found within 5 min went
        // from 0.865–0.87 (medians, seed sets 0–1) to 0.905–0.94 (sets 0–3).
        let m = f64::from(median);
        let (mut sum, mut used) = (0.0, 0usize);
        for v in &vals[..n] {
            let v = f64::from(*v);
            if (v - m).abs() <= 3.0 * sigma {
                sum += v;
                used += 1;
            }
        }
        if used >= 3 && sigma > 0.0 {
            let u = used as f64;
            return Some((
                (sum / u) as f32,
                (white_var_of(&vals[..n], sigma) / u) as f32,
            ));
        }
        let k = n as f64;
        let f = std::f64::consts::FRAC_PI_2 * k / (k + if n % 2 == 0 { 1.3 } else { 0.5 });
        Some((median, (f * sigma * sigma / k) as f32))
    }
}

/// The samples' variance for the white-noise yardstick: half the mean square of consecutive
/// differences, leaving out those beyond 4σ (a spike's two differences; σ the robust scale
/// of [`SampleBuf::take`]) and corrected for that truncation (a normal truncated at ±2.83 sd
/// keeps 95.9% of its variance).
///
/// Why not σ² from the median absolute difference, as before: that estimate has about three
/// times the variance (the median of 9 differences uses a third of their information), and
/// the start-up test compares the residual variance of a few minutes of buckets with this
/// yardstick. A yardstick 20% low by chance made a white series look like a wander; measured
/// on the detection bench, the start-up test judged 10% of the evaluations of slow leaks on
/// white noise "not white" (7% with this estimate), and the share of 1%/min leaks found
/// within 5 min rose by 0.5–1.5 points per seed set.
fn white_var_of(vals: &[f32], sigma: f64) -> f64 {
    let (mut ss, mut m) = (0.0, 0usize);
    for w in vals.windows(2) {
        let d = f64::from(w[1]) - f64::from(w[0]);
        if d.abs() <= 4.0 * sigma {
            ss += d * d;
            m += 1;
        }
    }
    if m == 0 {
        return sigma * sigma;
    }
    ss / (2.0 * m as f64) / 0.9587
}

/// Geometry shared by all series of one growth rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Fine bucket width, seconds.
    pub fine: f64,
    /// Fine buckets per coarse bucket.
    pub factor: u32,
    /// Fine points kept.
    pub fine_cap: usize,
    /// Coarse points kept.
    pub coarse_cap: usize,
}

/// Which resolutions closed a bucket on the last push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Closed {
    pub fine: bool,
    pub coarse: bool,
}

/// Where a history's current fine bucket lies: enough for the engine to tell, without
/// touching the history, that a sample stays in that bucket and so closes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BucketKey {
    fine: f64,
    phase: f64,
    cur: i64,
}

impl BucketKey {
    /// True when a sample at `t` falls in the current bucket (the same arithmetic as
    /// [`History::push`], so the answer is exactly what a push would find).
    pub(crate) fn holds(&self, t: f64) -> bool {
        ((t + self.phase) / self.fine).floor() as i64 == self.cur
    }
}

/// Bounded two-resolution history of one series (see the module docs).
#[derive(Debug)]
pub(crate) struct History {
    geo: Geometry,
    /// Shifts bucket boundaries per series (seconds in `[0, coarse width)`).
    phase: f64,
    origin: i64,
    started: f64,
    cur_fine: Option<i64>,
    fine_buf: SampleBuf,
    fine: Ring<FinePoint>,
    coarse_buf: SampleBuf,
    coarse: Ring<Point>,
}

impl History {
    /// `phase` in `[0, 1)` shifts bucket boundaries by that fraction of a coarse bucket.
    pub(crate) fn new(geo: Geometry, phase: f64) -> Self {
        Self {
            geo,
            phase: phase.clamp(0.0, 1.0) * geo.fine * f64::from(geo.factor),
            origin: 0,
            started: f64::NAN,
            cur_fine: None,
            fine_buf: SampleBuf::default(),
            fine: Ring::new(geo.fine_cap),
            coarse_buf: SampleBuf::default(),
            coarse: Ring::new(geo.coarse_cap),
        }
    }

    /// Bytes of state one history holds (inline plus heap), for capacity planning.
    pub(crate) fn state_bytes(geo: &Geometry) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of::<FinePoint>() * geo.fine_cap
            + std::mem::size_of::<Point>() * geo.coarse_cap
    }

    /// Forgets everything (after a counter reset).
    pub(crate) fn clear(&mut self) {
        self.cur_fine = None;
        self.started = f64::NAN;
        self.fine_buf = SampleBuf::default();
        self.coarse_buf = SampleBuf::default();
        self.fine.clear();
        self.coarse.clear();
    }

    /// Seconds since the first sample kept (0 before any).
    pub(crate) fn age(&self, now: f64) -> f64 {
        if self.started.is_nan() {
            0.0
        } else {
            now - self.started
        }
    }

    /// Time of the first sample kept.
    pub(crate) fn started(&self) -> f64 {
        self.started
    }

    /// Adds one sample; samples must come in non-decreasing time (the engine guarantees it).
    pub(crate) fn push(&mut self, t: f64, v: f64) -> Closed {
        let idx = ((t + self.phase) / self.geo.fine).floor() as i64;
        let factor = i64::from(self.geo.factor);
        let mut closed = Closed::default();
        match self.cur_fine {
            None => {
                self.origin = idx.div_euclid(factor) * factor;
                self.started = t;
                self.cur_fine = Some(idx);
            }
            Some(cur) if idx > cur => {
                if let Some((m, white)) = self.fine_buf.take() {
                    self.fine.push(FinePoint {
                        p: Point {
                            off: (cur - self.origin) as u32,
                            v: m,
                        },
                        white,
                    });
                    self.coarse_buf.push(m);
                    closed.fine = true;
                }
                let (c_old, c_new) = (cur.div_euclid(factor), idx.div_euclid(factor));
                if c_new > c_old
                    && let Some(m) = self.coarse_buf.take_median()
                {
                    self.coarse.push(Point {
                        off: (c_old * factor - self.origin) as u32,
                        v: m,
                    });
                    closed.coarse = true;
                }
                self.cur_fine = Some(idx);
            }
            Some(_) => {}
        }
        self.fine_buf.push(v as f32);
        closed
    }

    /// The current fine bucket (`None` before the first sample).
    pub(crate) fn bucket_key(&self) -> Option<BucketKey> {
        self.cur_fine.map(|cur| BucketKey {
            fine: self.geo.fine,
            phase: self.phase,
            cur,
        })
    }

    /// Adds a sample known to fall in the current fine bucket ([`BucketKey::holds`]): what
    /// [`push`](Self::push) does for such a sample, without its time.
    pub(crate) fn push_within(&mut self, v: f32) {
        debug_assert!(self.cur_fine.is_some(), "push_within before the first push");
        self.fine_buf.push(v);
    }

    fn fine_time(&self, p: Point) -> f64 {
        (self.origin as f64 + f64::from(p.off) + 0.5) * self.geo.fine - self.phase
    }

    fn coarse_time(&self, p: Point) -> f64 {
        (self.origin as f64 + f64::from(p.off) + f64::from(self.geo.factor) / 2.0) * self.geo.fine
            - self.phase
    }

    fn coarse_end(&self, p: Point) -> f64 {
        (self.origin as f64 + f64::from(p.off) + f64::from(self.geo.factor)) * self.geo.fine
            - self.phase
    }

    /// Time of the most recent closed point at a resolution.
    pub(crate) fn last_time(&self, res: Resolution) -> Option<f64> {
        match res {
            Resolution::Fine => self.fine.iter().next_back().map(|p| self.fine_time(p.p)),
            Resolution::Coarse => self.coarse.iter().next_back().map(|p| self.coarse_time(p)),
        }
    }

    /// Points with centre time ≥ `from` at a resolution; times are made relative to `from`.
    pub(crate) fn window(&self, res: Resolution, from: f64, ts: &mut Vec<f64>, ys: &mut Vec<f64>) {
        ts.clear();
        ys.clear();
        let mut take = |t: f64, v: f32| {
            if t >= from {
                ts.push(t - from);
                ys.push(f64::from(v));
            }
        };
        match res {
            Resolution::Fine => self
                .fine
                .iter()
                .for_each(|p| take(self.fine_time(p.p), p.p.v)),
            Resolution::Coarse => self
                .coarse
                .iter()
                .for_each(|p| take(self.coarse_time(p), p.v)),
        }
    }

    /// The white-noise variance of a fine bucket value over fine points with centre time
    /// ≥ `from`: the mean of the buckets' own estimates (see `SampleBuf::take`; each is
    /// unbiased, and spikes were left out inside the buckets, so the mean is both the
    /// efficient and a safe summary, where a median of the skewed estimates would run
    /// low); `None`
    /// when fewer than half of those buckets had 3 samples or more (slow sampling: nothing
    /// inside a bucket to measure the noise on).
    pub(crate) fn white_var(&self, from: f64, out: &mut Vec<f64>) -> Option<f64> {
        out.clear();
        let mut n = 0usize;
        for p in self.fine.iter() {
            if self.fine_time(p.p) >= from {
                n += 1;
                if p.white.is_finite() {
                    out.push(f64::from(p.white));
                }
            }
        }
        if n == 0 || out.len() * 2 < n {
            return None;
        }
        Some(out.iter().sum::<f64>() / out.len() as f64)
    }

    /// Highest bucket median seen strictly before `before` (both resolutions), if any.
    pub(crate) fn prior_max(&self, before: f64) -> Option<f64> {
        let fine = self
            .fine
            .iter()
            .filter(|p| self.fine_time(p.p) < before)
            .map(|p| p.p.v);
        let coarse = self
            .coarse
            .iter()
            .filter(|p| self.coarse_end(*p) <= before)
            .map(|p| p.v);
        fine.chain(coarse).map(f64::from).reduce(f64::max)
    }

    /// Like [`prior_max`](Self::prior_max), but each fine point is replaced by the median of
    /// it and its two neighbours (runs of 3 consecutive fine buckets, all before `before`).
    /// For comparison with a level that is itself a median of 3 fine buckets: the maximum of
    /// single buckets is the more extreme statistic (on white noise about 2.4σ of a bucket
    /// over 30 buckets, against about 1.5σ for medians of 3), and holding a median of 3 to it
    /// delays a true new high for no gain.
    pub(crate) fn prior_max_of_3(&self, before: f64) -> Option<f64> {
        let mut best: Option<f32> = None;
        let mut w = [f32::NAN; 3];
        let mut k = 0usize;
        for FinePoint { p, .. } in self.fine.iter() {
            if self.fine_time(p) >= before {
                break;
            }
            w[k % 3] = p.v;
            k += 1;
            if k >= 3 {
                let (a, b, c) = (w[0], w[1], w[2]);
                let m = a.max(b).min(a.min(b).max(c));
                best = Some(best.map_or(m, |x| x.max(m)));
            }
        }
        let coarse = self
            .coarse
            .iter()
            .filter(|p| self.coarse_end(*p) <= before)
            .map(|p| p.v)
            .reduce(f32::max);
        match (best, coarse) {
            (Some(a), Some(b)) => Some(f64::from(a.max(b))),
            (a, b) => a.or(b).map(f64::from),
        }
    }

    /// Values of all kept coarse points, oldest first.
    pub(crate) fn coarse_values(&self, out: &mut Vec<f64>) {
        out.clear();
        out.extend(self.coarse.iter().map(|p| f64::from(p.v)));
    }

    /// Values of coarse points that ended before `before`, oldest first.
    pub(crate) fn coarse_values_before(&self, before: f64, out: &mut Vec<f64>) {
        out.clear();
        out.extend(
            self.coarse
                .iter()
                .filter(|p| self.coarse_end(*p) <= before)
                .map(|p| f64::from(p.v)),
        );
    }

    /// Values of all kept fine points, oldest first.
    pub(crate) fn fine_values(&self, out: &mut Vec<f64>) {
        out.clear();
        out.extend(self.fine.iter().map(|p| f64::from(p.p.v)));
    }
}

/// One of the two resolutions of a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Fine buckets (default 10 s).
    Fine,
    /// Coarse buckets (default 60 s).
    Coarse,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            fine: 10.0,
            factor: 6,
            fine_cap: 4,
            coarse_cap: 3,
        }
    }

    #[test]
    fn buckets_close_and_ring_is_bounded() {
        let mut h = History::new(geo(), 0.0);
        let mut fine_closes = 0;
        let mut coarse_closes = 0;
        for s in 0..1000 {
            let c = h.push(f64::from(s), f64::from(s));
            fine_closes += usize::from(c.fine);
            coarse_closes += usize::from(c.coarse);
        }
        assert_eq!(fine_closes, 99);
        assert_eq!(coarse_closes, 16);
        let (mut ts, mut ys) = (Vec::new(), Vec::new());
        h.window(Resolution::Fine, 0.0, &mut ts, &mut ys);
        assert_eq!(ys.len(), 4);
        assert_eq!(ys, [954.5, 964.5, 974.5, 984.5]);
        assert_eq!(ts[0], 955.0);
        h.window(Resolution::Coarse, 0.0, &mut ts, &mut ys);
        assert_eq!(ys.len(), 3);
        assert_eq!(ts, [810.0, 870.0, 930.0]);
    }

    #[test]
    fn sample_buffer_decimates() {
        let mut b = SampleBuf::default();
        for i in 0..100 {
            b.push(i as f32);
        }
        let m = b.take_median().unwrap();
        assert!((40.0..60.0).contains(&m), "{m}");
    }

    #[test]
    fn bucket_value_is_a_trimmed_mean_with_its_white_variance() {
        let mut b = SampleBuf::default();
        // Ten samples 0, 2, 0, 2, ... and one spike: the spike is left out of the mean.
        for i in 0..10 {
            b.push(if i == 4 { 1000.0 } else { (i % 2 * 2) as f32 });
        }
        let (v, white) = b.take().unwrap();
        assert!((0.8..1.2).contains(&v), "{v}");
        // Consecutive differences of ±2 (the spike's two are left out): variance 2 / 0.9587
        // (half their mean square, truncation-corrected), over the 9 samples kept.
        assert!(
            (f64::from(white) - 2.0 / 0.9587 / 9.0).abs() < 1e-3,
            "{white}"
        );
        // Two samples: the median, and no variance.
        b.push(1.0);
        b.push(3.0);
        let (v, white) = b.take().unwrap();
        assert_eq!(v, 2.0);
        assert!(white.is_nan());
    }

    #[test]
    fn prior_max_excludes_window() {
        let mut h = History::new(
            Geometry {
                fine: 1.0,
                factor: 2,
                fine_cap: 10,
                coarse_cap: 10,
            },
            0.0,
        );
        for (t, v) in [(0.0, 5.0), (1.0, 1.0), (2.0, 2.0), (3.0, 9.0), (4.0, 0.0)] {
            h.push(t, v);
        }
        assert_eq!(h.prior_max(3.0), Some(5.0));
        assert_eq!(h.prior_max(0.0), None);
        // Medians of 3 consecutive fine buckets before t = 3: median(5, 1, 2) = 2; the coarse
        // bucket [0, 2) has median 3.
        assert_eq!(h.prior_max_of_3(3.0), Some(3.0));
    }
}

//! Onset test: has a flat series *started* to rise? A sequential generalized likelihood
//! ratio for a change in slope on fine bucket medians.
//!
//! # Model
//!
//! Over the last few minutes of fine bucket medians `y_i` at times `t_i`, two models of a
//! change at bucket `c` are fitted by least squares, each with a free intercept:
//!
//! * **hinge** ("broken stick"): `y = a + b·(t − t_c + w)⁺`, flat until `c`, then rising
//!   with slope `b` (`w` is the bucket width, so the first bucket after the change is
//!   already one bucket up the ramp);
//! * **jump**: `y = a + d·clamp(t − t_c + w, 0, r·w)` for a rise over `r ≤ max_jump`
//!   buckets: flat, a quick rise, flat again at another level (a step is `r = 1`).
//!
//! For a candidate `c` the hinge's evidence is the t-statistic of `b`,
//! `z(c) = S_zy / (σ · √S_zz)` with `z` the hinge regressor (centred sums), and its fit gain
//! is `S_zy² / S_zz`. The test statistic is the maximum of `z(c)` over change points that
//! leave at least `min_post` buckets after the change and `min_ref` before it (the
//! generalized likelihood ratio over the unknown onset). All sums come from prefix sums,
//! so all candidates cost O(n).
//!
//! Why this and not the windowed Mann–Kendall alone: a leak that starts inside a window is
//! half flat, half rising; a rank test over the whole window, with its intercept free,
//! spends most of its evidence estimating what the flat part already says. The hinge
//! anchors the ramp on the flat level before it: with white noise of σ per bucket, `m`
//! buckets after the onset give `z ≈ b·√(m³/3)/σ`, against `b·√(m³/12)/σ` for a slope
//! fitted on the `m` rising buckets alone, i.e. twice the z for the same data; on the
//! benchmark's 1%/min leak (σ ≈ 1.2% of the level per 10 s median) the expected z passes
//! 5 about 2.5–3 minutes after the onset.
//!
//! # Noise
//!
//! σ is the larger of the hinge fit's residual standard deviation and a robust scale of the
//! first differences (MAD / √2), so neither a spike nor a bad fit makes it small. Serial
//! correlation is accounted for with an AR(1) model: the variance of the ramp statistic is
//! inflated by the long-run factor `(1 + ρ)/(1 − ρ)`, with ρ the larger of
//!
//! * the lag-1 autocorrelation of the hinge fit's residuals (bias-corrected for the short
//!   sample), and
//! * the variogram's: for AR(1), lag-2 differences have `1 + ρ` times the variance of lag-1
//!   differences. The fit absorbs part of a slow wander, so the residuals understate its
//!   correlation; the variogram fits nothing. On white noise the ratio's estimate has a
//!   standard error of about `1.5/√n` (0.21 on 48 buckets, simulated), and only the excess
//!   over one standard error is counted, so white noise is not charged for the estimate's
//!   own spread. Measured (benchmark seed sets 0–3): counting all of it cut the share of
//!   1%/min leaks found within 5 min from 0.95–0.98 to 0.92–0.98 (0.83–0.91 with MADs in
//!   place of variances); with the dead zone, false alarms on mean-reverting wander fell
//!   from 4/5/2/5 to 1/3/1/3 per 100 series at no cost in speed.
//!
//! ρ is clamped to `[0, 0.95]`. Wander slower than the window (correlation times of many
//! minutes) is still not fully seen; the caller's size floor against the series' own
//! wander over the post-change span (coarse medians of the hour before) covers it.
//!
//! # Steps are not leaks
//!
//! A level shift (a deploy, a pool resize) also makes the hinge fit well at first: a ramp
//! through a step. The two shapes differ *after* the change: a step is a jump then flat,
//! a leak keeps rising. So the best jump anywhere in the window must not explain the data
//! better than the best hinge by more than the caller's margin (`over_step` is the hinge's
//! gain minus the jump's, in units of the statistic's variance: twice a log-likelihood
//! ratio under Gaussian noise), and the change must lie at least `min_post` buckets back,
//! so the rise has been seen to continue for that long. A plain step model (`r = 1`) was
//! not enough: a rise over 10–60 s is not a step at 10 s resolution, and level shifts
//! fired on 12–21 of 100 series with it, against 1–5 (all from the then-default 4 min
//! window) with jumps of up to `max_jump` = 1 min.

use crate::trend::median_in_place;

/// Parameters of one onset evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnsetParams {
    /// Fine bucket width, seconds.
    pub width: f64,
    /// Fewest buckets after the change point.
    pub min_post: usize,
    /// Fewest buckets before the change point (the reference level).
    pub min_ref: usize,
    /// Longest rise (buckets) still called a jump rather than a ramp.
    pub max_jump: usize,
}

fn sub(a: &[f64; 4], b: &[f64; 4]) -> [f64; 4] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]
}

/// Result of the best hinge over the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Onset {
    /// Index (into the window) of the first bucket after the change.
    pub at: usize,
    /// Hinge slope, per second.
    pub slope: f64,
    /// Autocorrelation-corrected z of the slope.
    pub z: f64,
    /// (Hinge gain − best jump gain) / corrected σ²: > 0 when a ramp explains the data better.
    pub over_step: f64,
    /// The best jump: index of its first rising bucket and of its first plateau bucket.
    pub jump: (usize, usize),
    /// Evidence for that jump against a flat line: its fit gain over the first differences'
    /// robust scale (no correlation correction).
    pub jump_z: f64,
}

/// Curvature of `(t, y)`: the t-statistic of the quadratic term of a least-squares
/// quadratic fit, with the same noise model as [`best_hinge`] (the larger of the fit's
/// residual scale and the first differences' robust scale; variance inflated for AR(1)
/// correlation of the residuals, or the variogram's excess). Negative: the rise slows
/// down (a filling cache, a warm-up); near zero: a straight line (a leak); `None` with
/// fewer than 6 points.
///
/// Why a quadratic term: among smooth departures from a straight line it is the one with
/// the most power against "ever slower" shapes (exponential fills, ease-out ramps) on a
/// few minutes of data, and on a straight line plus noise its z is standard normal, so
/// the threshold is a plain false-rejection rate for leaks.
pub(crate) fn curvature_z(t: &[f64], y: &[f64], s: &mut OnsetScratch) -> Option<f64> {
    let n = y.len();
    if n < 6 {
        return None;
    }
    let nf = n as f64;
    let tm = t.iter().sum::<f64>() / nf;
    // Orthogonal basis: 1, u = t − t̄, q = u² − (projection of u² on 1 and u).
    let (mut suu, mut su3, mut su2) = (0.0, 0.0, 0.0);
    for &ti in t {
        let u = ti - tm;
        suu += u * u;
        su3 += u * u * u;
        su2 += u * u;
    }
    let q_mean = su2 / nf;
    let q_lin = su3 / suu;
    let q = |i: usize| {
        let u = t[i] - tm;
        u * u - q_mean - q_lin * u
    };
    let ym = y.iter().sum::<f64>() / nf;
    let (mut sqq, mut sqy, mut suy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let qi = q(i);
        sqq += qi * qi;
        sqy += qi * (y[i] - ym);
        suy += (t[i] - tm) * (y[i] - ym);
    }
    if sqq <= 0.0 || suu <= 0.0 {
        return None;
    }
    let (c, b) = (sqy / sqq, suy / suu);
    let resid = |i: usize| y[i] - ym - b * (t[i] - tm) - c * q(i);
    let (mut c0, mut c1) = (0.0, 0.0);
    let mut prev = resid(0);
    c0 += prev * prev;
    for i in 1..n {
        let r = resid(i);
        c0 += r * r;
        c1 += prev * r;
        prev = r;
    }
    let sigma_res = (c0 / (nf - 3.0)).sqrt();
    let sigma = sigma_res.max(diff_scale(y, s));
    if sigma.is_nan() || sigma <= 0.0 {
        return None;
    }
    let raw = if c0 > 0.0 { c1 / c0 } else { 0.0 };
    let rho_fit = raw + (1.0 + 4.0 * raw) / nf;
    let rho = rho_fit.max(vario_rho(y)).clamp(0.0, 0.95);
    let var = sigma * sigma * (1.0 + rho) / (1.0 - rho);
    Some(c * sqq.sqrt() / var.sqrt())
}

/// Robust scale of the noise from first differences (MAD / √2, σ-equivalent).
fn diff_scale(y: &[f64], s: &mut OnsetScratch) -> f64 {
    s.d.clear();
    s.d.extend(y.windows(2).map(|w| w[1] - w[0]));
    let med = median_in_place(&mut s.d);
    for v in &mut s.d {
        *v = (*v - med).abs();
    }
    median_in_place(&mut s.d) * 1.4826 / std::f64::consts::SQRT_2
}

/// AR(1) ρ from the variogram (lag-2 over lag-1 difference variance, minus 1), counting only
/// the excess over one standard error of the estimate on white noise (≈ 1.5/√n).
fn vario_rho(y: &[f64]) -> f64 {
    let (v1, v2) = (lag_var(y, 1), lag_var(y, 2));
    if v1 > 0.0 {
        v2 / v1 - 1.0 - 1.5 / (y.len() as f64).sqrt()
    } else {
        0.0
    }
}

/// Reused buffers.
#[derive(Debug, Default)]
pub(crate) struct OnsetScratch {
    pre: Vec<[f64; 4]>,
    d: Vec<f64>,
}

/// Best hinge over `(t, y)` (bucket centres, ascending; bucket medians); `None` when the
/// window is too short or no candidate rises.
pub(crate) fn best_hinge(
    t: &[f64],
    y: &[f64],
    p: OnsetParams,
    s: &mut OnsetScratch,
) -> Option<Onset> {
    let n = y.len();
    if n < p.min_post + p.min_ref || n < 8 {
        return None;
    }
    let nf = n as f64;
    // Suffix sums from i to the end: Σy, Σt, Σt², Σty.
    s.pre.clear();
    s.pre.resize(n + 1, [0.0; 4]);
    for i in (0..n).rev() {
        let (ti, yi) = (t[i] - t[0], y[i]);
        let nx = s.pre[i + 1];
        s.pre[i] = [nx[0] + yi, nx[1] + ti, nx[2] + ti * ti, nx[3] + ti * yi];
    }
    let sum_y = s.pre[0][0];
    let mean_y = sum_y / nf;
    let syy: f64 = y.iter().map(|v| (v - mean_y) * (v - mean_y)).sum();
    // Best "jump": a rise over at most `max_jump` buckets, flat before and after (a step
    // is the one-bucket case). Any position, any plateau length (0 included: a jump that is
    // happening now).
    let mut step_gain = 0.0f64;
    let mut jump = (0, 0);
    for c in 1..n {
        let k = t[c] - t[0] - p.width;
        for r in 1..=p.max_jump.min(n - c) {
            let e = c + r; // first plateau bucket
            let h = t[e - 1] - t[0] - k; // plateau height (regressor units)
            let tail = (n - e) as f64;
            let [ry, rt, rtt, rty] = sub(&s.pre[c], &s.pre[e]);
            let rm = r as f64;
            let sz = rt - k * rm + h * tail;
            let szz_raw = rtt - 2.0 * k * rt + k * k * rm + h * h * tail;
            let szy_raw = rty - k * ry + h * s.pre[e][0];
            let szz = szz_raw - sz * sz / nf;
            let szy = szy_raw - sz * mean_y;
            if szz > 0.0 && szy > 0.0 && szy * szy / szz > step_gain {
                step_gain = szy * szy / szz;
                jump = (c, e);
            }
        }
    }
    // Best hinge among admissible change points.
    let mut best: Option<(usize, f64, f64, f64)> = None; // (c, z_white_unscaled, gain, b)
    for c in p.min_ref..=n - p.min_post {
        let m = (n - c) as f64;
        let k = t[c] - t[0] - p.width; // regressor z_i = t_i - k for i ≥ c
        let [sy, st, stt, sty] = s.pre[c];
        let sz = st - k * m;
        let szz_raw = stt - 2.0 * k * st + k * k * m;
        let szy_raw = sty - k * sy;
        let szz = szz_raw - sz * sz / nf;
        let szy = szy_raw - sz * mean_y;
        if szz <= 0.0 || szy <= 0.0 {
            continue;
        }
        let score = szy / szz.sqrt();
        if best.is_none_or(|b| score > b.1) {
            best = Some((c, score, szy * szy / szz, szy / szz));
        }
    }
    let (c, score, gain, b) = best?;
    // Residuals of the best hinge: scale and lag-1 autocorrelation.
    let k = t[c] - t[0] - p.width;
    let zbar = (s.pre[c][1] - k * (n - c) as f64) / nf;
    let a = mean_y - b * zbar;
    let resid = |i: usize| {
        let z = if i >= c { t[i] - t[0] - k } else { 0.0 };
        y[i] - a - b * z
    };
    let sse = (syy - gain).max(0.0);
    let sigma_res = (sse / (nf - 3.0)).sqrt();
    let short = diff_scale(y, s);
    let sigma = sigma_res.max(short);
    if sigma.is_nan() || sigma <= 0.0 {
        return None;
    }
    let (mut c0, mut c1) = (0.0, 0.0);
    let mut prev = resid(0);
    c0 += prev * prev;
    for i in 1..n {
        let r = resid(i);
        c0 += r * r;
        c1 += prev * r;
        prev = r;
    }
    let raw = if c0 > 0.0 { c1 / c0 } else { 0.0 };
    let rho_fit = raw + (1.0 + 4.0 * raw) / nf;
    // The fitted hinge absorbs part of a slow wander, so the residuals understate its
    // correlation; the variogram does not fit anything: for AR(1), the variance of lag-2
    // differences is (1 + ρ) times that of lag-1 differences.
    // On white noise this ratio's estimate has a standard error of about 1.5/√n (0.21 on
    // 48 buckets, simulated); only the excess over one standard error is counted, so that
    // white noise is not penalised for the estimate's own spread.
    let rho = rho_fit.max(vario_rho(y)).clamp(0.0, 0.95);
    let inflation = (1.0 + rho) / (1.0 - rho);
    let var = sigma * sigma * inflation;
    Some(Onset {
        at: c,
        slope: b,
        z: score / var.sqrt(),
        // In units of the statistic's variance, so that the margin is a calibrated
        // likelihood ratio on correlated noise too (measured: with the short-range σ² the
        // 1%/min share ≤ 300 s fell by 0–2 points per set, no level shift was saved).
        over_step: (gain - step_gain) / var,
        jump,
        // Against the short-range scale alone: a jump followed by a ramp is a poor fit for
        // either model, and the misfit's correlation would hide the jump itself.
        jump_z: step_gain.sqrt() / short.max(f64::MIN_POSITIVE),
    })
}

/// z of the slope of the hinge with its change at bucket `c` (a straight line for `c = 0`),
/// least squares on `(t, y)`, with the noise measured against a known white-noise yardstick:
/// `white` is the variance a bucket median would have if the samples inside the bucket were
/// independent (measured inside the buckets, see `history`).
///
/// Model: bucket medians = fit + white noise (variance `white`) + an AR(1) wander
/// (variance `u`, correlation `φ` per bucket). The residuals' semivariogram at lags 1 and 2
/// gives `γ(h) = white + u·(1 − φ^h)`. When the lag-1 excess over `white` is within
/// `dead_zone` standard errors of zero (white noise: SE ≈ white·√(3/(n−1))), and so is the
/// residual variance's (SE ≈ white·√(2/(n−2))), or when the excess is anti-correlated, the
/// noise is taken as white (variance the larger of `white` and `γ(1)`); otherwise `φ = γ(2)/γ(1) − 1`
/// on the excesses and `u = excess(1)/(1 − φ)`. The slope's variance is then exact for that
/// model: `Σᵢⱼ wᵢ wⱼ C(i − j)` with `w` the least-squares weights, in O(n).
pub(crate) fn white_ar_z(
    t: &[f64],
    y: &[f64],
    c: usize,
    width: f64,
    white: f64,
    dead_zone: f64,
    s: &mut OnsetScratch,
) -> Option<(f64, f64)> {
    let n = y.len();
    if n < 6 || c + 3 > n || white.is_nan() || white <= 0.0 {
        return None;
    }
    let nf = n as f64;
    let reg = |i: usize| if i >= c { t[i] - t[c] + width } else { 0.0 };
    let zbar = (0..n).map(reg).sum::<f64>() / nf;
    let ybar = y.iter().sum::<f64>() / nf;
    let (mut szz, mut szy) = (0.0, 0.0);
    for (i, yi) in y.iter().enumerate() {
        let d = reg(i) - zbar;
        szz += d * d;
        szy += d * (yi - ybar);
    }
    if szz <= 0.0 {
        return None;
    }
    let b = szy / szz;
    let r = |i: usize| y[i] - ybar - b * (reg(i) - zbar);
    let semi = |lag: usize| {
        (0..n - lag)
            .map(|i| (r(i + lag) - r(i)).powi(2))
            .sum::<f64>()
            / (2.0 * (n - lag) as f64)
    };
    let (g1, g2) = (semi(1), semi(2));
    let res = (0..n).map(|i| r(i).powi(2)).sum::<f64>() / (nf - 2.0);
    let e1 = g1 - white;
    let se = white * (3.0 / (nf - 1.0)).sqrt();
    // Lag-1 autocorrelation of the residuals from the von Neumann ratio (γ(1) = C(0)(1 − ρ)):
    // a lack of fit (a curve fitted by a line) shows here as well as a wander does.
    let rho_r = 1.0 - g1 / res.max(f64::MIN_POSITIVE);
    // The residuals' variance against the yardstick (under white noise it is χ²/(n − 2)
    // times it, SE ≈ √(2/(n − 2))): a slow wander of about the white level hardly shows
    // at lag 1 but adds its whole variance here. Measured (seed sets 0–3): `wander_leak`'s
    // false alarms before its onset 83 → 59 of 400.
    // An excess that is not a wander (residuals anti-correlated at lag 1 and the semivariogram
    // falling from lag 1 to 2: neighbouring buckets pushed apart, as a partly filled bucket
    // beside a full one, or a zig-zag of chance) is counted as
    // white noise of the larger variance, not as an AR(1) wander with φ ≥ 0.9, which cut a
    // 1%/min leak's z from 8–14 to 1–2 (measured: the share found within 5 min rose by 0.5–1
    // point per seed set, at the same precision).
    let anti = rho_r <= 0.0 && g2 <= g1;
    let white_ok = anti
        || e1 <= dead_zone * se
            && rho_r <= dead_zone / nf.sqrt()
            && res <= white * (1.0 + dead_zone * (2.0 / (nf - 2.0)).sqrt());
    let (sw, su, phi) = if white_ok {
        (white.max(g1).max(res), 0.0, 0.0)
    } else {
        let e1 = e1.max(0.0);
        let e2 = (g2 - white).max(e1);
        let phi_v = if e1 > 0.0 { e2 / e1 - 1.0 } else { 0.0 };
        // On a few minutes of buckets φ is biased low (the fit absorbs slow wander), so a
        // correlation, once seen, is taken as at least 0.9 (a correlation time of 10
        // buckets): with 0.8 a little more mean-reverting wander fired.
        let phi = phi_v.max(rho_r).clamp(0.9, 0.95);
        // The wander's variance: what the residuals hold beyond the white part.
        let su = (res - white).max(e1 / (1.0 - phi)).max(0.0);
        (white, su, phi)
    };
    // Σᵢ wᵢ Σⱼ wⱼ φ^|i−j| by a forward and a backward pass.
    let w = |i: usize| (reg(i) - zbar) / szz;
    let mut sum_w2 = 0.0;
    let mut cross = 0.0;
    if su > 0.0 {
        let fwd = &mut s.d;
        fwd.clear();
        fwd.resize(n, 0.0);
        let mut acc = 0.0;
        for (i, f) in fwd.iter_mut().enumerate() {
            acc = w(i) + phi * acc;
            *f = acc;
        }
        acc = 0.0;
        for i in (0..n).rev() {
            acc = w(i) + phi * acc;
            cross += w(i) * (fwd[i] + acc - w(i));
        }
    }
    for i in 0..n {
        sum_w2 += w(i) * w(i);
    }
    let var = sw * sum_w2 + su * cross;
    (var > 0.0).then(|| (b / var.sqrt(), if white_ok { 0.0 } else { phi.max(1e-9) }))
}

/// Variance of the mean-centred lag-`lag` differences.
fn lag_var(y: &[f64], lag: usize) -> f64 {
    let n = y.len().saturating_sub(lag);
    if n < 2 {
        return 0.0;
    }
    let d = |i: usize| y[i + lag] - y[i];
    let mean = (0..n).map(d).sum::<f64>() / n as f64;
    (0..n).map(|i| (d(i) - mean).powi(2)).sum::<f64>() / (n - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        (x as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn params() -> OnsetParams {
        OnsetParams {
            width: 10.0,
            min_post: 12,
            min_ref: 12,
            max_jump: 6,
        }
    }

    #[test]
    fn finds_a_ramp_that_started_mid_window() {
        let t: Vec<f64> = (0..48).map(|i| 10.0 * i as f64 + 5.0).collect();
        let y: Vec<f64> = (0..48)
            .map(|i| 100.0 + noise(i) + if i >= 28 { 0.5 * (i - 27) as f64 } else { 0.0 })
            .collect();
        let o = best_hinge(&t, &y, params(), &mut OnsetScratch::default()).unwrap();
        assert!((26..=30).contains(&o.at), "{o:?}");
        assert!(o.z > 5.0 && o.over_step > 0.0, "{o:?}");
        assert!((o.slope - 0.05).abs() < 0.01, "{o:?}");
    }

    #[test]
    fn a_step_fits_better_as_a_step() {
        let t: Vec<f64> = (0..48).map(|i| 10.0 * i as f64 + 5.0).collect();
        let y: Vec<f64> = (0..48)
            .map(|i| 100.0 + noise(i) + if i >= 30 { 8.0 } else { 0.0 })
            .collect();
        let o = best_hinge(&t, &y, params(), &mut OnsetScratch::default()).unwrap();
        assert!(o.over_step < 0.0, "{o:?}");
    }

    #[test]
    fn white_yardstick_keeps_a_line_and_discounts_a_random_walk() {
        let t: Vec<f64> = (0..30).map(|i| 10.0 * i as f64 + 5.0).collect();
        // Uniform noise in [-1, 1] has variance 1/3.
        let line: Vec<f64> = (0..30).map(|i| 100.0 + 0.02 * t[i] + noise(i)).collect();
        let mut s = OnsetScratch::default();
        let (z, phi) = white_ar_z(&t, &line, 0, 10.0, 1.0 / 3.0, 3.0, &mut s).unwrap();
        // Slope 0.2 per bucket over 30 buckets against σ ≈ 0.58: z ≈ 0.2·√(30³/12)/0.58 ≈ 16.
        assert_eq!(phi, 0.0, "white residuals stay white");
        assert!(z > 10.0, "{z}");
        // A random walk with steps of ±1 drifts as much, but its residuals are far from white.
        let mut x = 100.0;
        let walk: Vec<f64> = (0..30)
            .map(|i| {
                x += 0.2 + noise(i + 100);
                x
            })
            .collect();
        let (zw, phiw) = white_ar_z(&t, &walk, 0, 10.0, 1.0 / 3.0 / 10.0, 3.0, &mut s).unwrap();
        assert!(phiw >= 0.9, "{phiw}");
        assert!(zw < z / 3.0, "walk {zw}, line {z}");
    }

    #[test]
    fn an_anti_correlated_excess_is_not_taken_for_a_wander() {
        let t: Vec<f64> = (0..30).map(|i| 10.0 * i as f64 + 5.0).collect();
        // A line on white noise with two neighbouring buckets pushed apart (+6, −6): a large
        // excess at lag 1, less at lag 2, negative lag-1 autocorrelation.
        let y: Vec<f64> = (0..30)
            .map(|i| {
                let kick = match i {
                    14 => 6.0,
                    15 => -6.0,
                    _ => 0.0,
                };
                100.0 + 0.02 * t[i] + noise(i) + kick
            })
            .collect();
        let mut s = OnsetScratch::default();
        let (z, phi) = white_ar_z(&t, &y, 0, 10.0, 1.0 / 3.0, 3.0, &mut s).unwrap();
        assert_eq!(
            phi, 0.0,
            "anti-correlated residuals are white noise of a larger variance"
        );
        // The larger variance lowers the z (16 without the kick), but not to the 1–2 that an
        // AR(1) wander with φ ≥ 0.9 would leave.
        assert!(z > 3.5, "{z}");
    }

    #[test]
    fn flat_noise_is_not_an_onset() {
        let t: Vec<f64> = (0..48).map(|i| 10.0 * i as f64 + 5.0).collect();
        let y: Vec<f64> = (0..48).map(|i| 100.0 + noise(i)).collect();
        let z = best_hinge(&t, &y, params(), &mut OnsetScratch::default()).map_or(0.0, |o| o.z);
        assert!(z < 4.0, "{z}");
    }
}

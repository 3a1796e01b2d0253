//! Robust trend statistics on short sequences of bucket medians.
//!
//! Everything here works on a few dozen points (one window of buckets), so the O(n²)
//! pairwise estimators are cheap and exact; callers pass a scratch buffer so that the
//! steady state allocates nothing.

/// Median of `xs` (reorders it). `NaN` for an empty slice.
pub(crate) fn median_in_place(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (lower, hi, _) = xs.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// Theil–Sen slope: the median of all pairwise slopes.
///
/// Chosen because it ignores up to ~29% of arbitrarily bad points (spikes, a half-captured
/// sawtooth tooth) while being almost as efficient as least squares on Gaussian noise.
pub(crate) fn theil_sen(t: &[f64], y: &[f64], scratch: &mut Vec<f64>) -> Option<f64> {
    scratch.clear();
    for i in 0..t.len() {
        for j in i + 1..t.len() {
            let dt = t[j] - t[i];
            if dt > 0.0 {
                scratch.push((y[j] - y[i]) / dt);
            }
        }
    }
    if scratch.is_empty() {
        None
    } else {
        Some(median_in_place(scratch))
    }
}

/// Mann–Kendall trend z-score with the variance inflated for serial correlation.
///
/// Plain Mann–Kendall assumes independent points and raises false alarms on
/// autocorrelated series (a mean-reverting wander looks like a trend over short
/// windows). Following Hamed & Rao (1998) the variance of S is multiplied by
/// `1 + 2/(n(n-1)(n-2)) Σ (n-k)(n-k-1)(n-k-2) ρ_k`; the ρ_k are taken as ρ₁^k (AR(1))
/// from the lag-1 autocorrelation of the Theil–Sen residuals, bias-corrected for the
/// short window, because estimating every lag on ~20 points is mostly noise.
/// Ties (frequent for integer counts) are corrected in the variance as usual.
pub(crate) fn mann_kendall_z(t: &[f64], y: &[f64], slope: f64, scratch: &mut Vec<f64>) -> f64 {
    let n = y.len();
    if n < 4 {
        return 0.0;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match y[j].partial_cmp(&y[i]) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let nf = n as f64;
    let mut var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    scratch.clear();
    scratch.extend_from_slice(y);
    scratch.sort_unstable_by(f64::total_cmp);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && scratch[j] == scratch[i] {
            j += 1;
        }
        let g = (j - i) as f64;
        if g > 1.0 {
            var -= g * (g - 1.0) * (2.0 * g + 5.0) / 18.0;
        }
        i = j;
    }
    if var <= 0.0 {
        return 0.0;
    }
    var *= autocorrelation_factor(t, y, slope);
    // Continuity correction: S moves in steps of 2.
    let s = s as f64;
    let s = if s > 0.0 {
        s - 1.0
    } else if s < 0.0 {
        s + 1.0
    } else {
        0.0
    };
    s / var.sqrt()
}

/// Hamed–Rao variance inflation with AR(1)-implied autocorrelations (≥ 1).
fn autocorrelation_factor(t: &[f64], y: &[f64], slope: f64) -> f64 {
    let n = y.len();
    let nf = n as f64;
    let mean_r = y.iter().zip(t).map(|(y, t)| y - slope * t).sum::<f64>() / nf;
    let r = |i: usize| y[i] - slope * t[i] - mean_r;
    let c0: f64 = (0..n).map(|i| r(i) * r(i)).sum();
    if c0 <= 0.0 {
        return 1.0;
    }
    let c1: f64 = (0..n - 1).map(|i| r(i) * r(i + 1)).sum();
    let raw = c1 / c0;
    // Lag-1 estimates on short detrended windows are biased low by about (1 + 4ρ)/n.
    let rho = (raw + (1.0 + 4.0 * raw) / nf).clamp(0.0, 0.95);
    if rho == 0.0 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut rk = 1.0;
    for k in 1..n.saturating_sub(2) {
        rk *= rho;
        if rk < 1e-4 {
            break;
        }
        let kf = k as f64;
        sum += (nf - kf) * (nf - kf - 1.0) * (nf - kf - 2.0) * rk;
    }
    1.0 + 2.0 * sum / (nf * (nf - 1.0) * (nf - 2.0))
}

/// Spread (σ-equivalent) of the differences `y[i + l] - y[i]` for up to 4 lags `l` from
/// ⌈`lag`/2⌉ to `lag`: how much the series typically moves over (up to) `lag` points.
/// `None` with fewer than `min` differences at lag `lag`.
///
/// Lags are pooled because a single lag on the 15-60 points of a young history gave a
/// scale so noisy (the 90th percentile of a dozen differences) that the size floor built
/// on it (3× this) swung between 2% and 4% of the level on plain white noise, holding back
/// leaks for minutes. For wander whose correlation time is shorter than the half lag (the
/// false-trend source this guards against) the half-to-full lags have nearly the same
/// spread, so pooling cuts the estimate's noise without lowering it much.
///
/// Measured as the 90th percentile of |difference − median difference at its lag| / 1.645, which
/// equals σ for Gaussian wander, ignores a constant trend (it only shifts the differences)
/// and up to 10% of outliers (spikes), but, unlike the MAD, still sees the rare large
/// moves of a sawtooth (mostly small differences, sometimes a whole tooth).
pub(crate) fn lag_scale(y: &[f64], lag: usize, min: usize, scratch: &mut Vec<f64>) -> Option<f64> {
    if lag == 0 || y.len() < lag + min {
        return None;
    }
    scratch.clear();
    // At most 4 lags (evenly spaced, always including `lag`): enough to steady the
    // estimate, and the cost stays a small multiple of one lag's.
    let half = lag.div_ceil(2);
    let step = ((lag - half) / 3).max(1);
    for l in (half..=lag).rev().step_by(step).take(4) {
        // Centre each lag on its own median: a trend shifts lag-l differences by slope × l,
        // so one median for all lags would count the trend as spread.
        let start = scratch.len();
        scratch.extend(y.iter().zip(&y[l..]).map(|(a, b)| b - a));
        let med = median_in_place(&mut scratch[start..]);
        for d in &mut scratch[start..] {
            *d = (*d - med).abs();
        }
    }
    let k = ((scratch.len() - 1) as f64 * 0.9).round() as usize;
    let (_, q, _) = scratch.select_nth_unstable_by(k, f64::total_cmp);
    Some(*q / 1.645)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_even_odd() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median_in_place(&mut []).is_nan());
    }

    #[test]
    fn theil_sen_ignores_a_spike() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        let mut y: Vec<f64> = t.iter().map(|t| 2.0 * t + 1.0).collect();
        y[7] = 1000.0;
        let mut s = Vec::new();
        assert!((theil_sen(&t, &y, &mut s).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn mann_kendall_sign_and_ties() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        let up: Vec<f64> = t
            .iter()
            .map(|t| t + if (*t as i64) % 2 == 0 { 0.3 } else { -0.3 })
            .collect();
        let mut s = Vec::new();
        assert!(mann_kendall_z(&t, &up, 1.0, &mut s) > 4.0);
        let flat = vec![5.0; 20];
        assert_eq!(mann_kendall_z(&t, &flat, 0.0, &mut s), 0.0);
    }

    #[test]
    fn lag_scale_pools_lags_half_to_full() {
        // Period-4 pattern: differences at lag 4 are all zero, at lags 2 and 3 they are not.
        let y: Vec<f64> = (0..40).map(|i| [0.0, 1.0, 0.0, -1.0][i % 4]).collect();
        let mut s = Vec::new();
        assert!(lag_scale(&y, 4, 6, &mut s).unwrap() > 0.5);
        // Lag 1 pools only itself.
        assert!(lag_scale(&y, 1, 6, &mut s).unwrap() > 0.5);
    }

    #[test]
    fn lag_scale_ignores_trend() {
        let y: Vec<f64> = (0..50).map(|i| 10.0 * i as f64).collect();
        let mut s = Vec::new();
        assert!(lag_scale(&y, 4, 6, &mut s).unwrap() < 1e-9);
        assert!(lag_scale(&y, 45, 6, &mut s).is_none());
    }
}

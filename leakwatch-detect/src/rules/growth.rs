//! Growth: a sustained upward trend of a series, or of its ratio to a load series.
//!
//! # Method, and why
//!
//! Each watched series keeps a bounded history of bucket medians
//! (10 s fine buckets, 60 s coarse buckets by default). Two paths judge it, and either
//! may fire:
//!
//! * the **onset test** (below, and the `onset` module), at every fine bucket: has a flat
//!   series *started* to rise? It finds leaks that begin while the series is watched, the
//!   5-minute target's case, about twice as efficiently as a trend test over a window;
//! * **windows** (default 16 min and 48 min on coarse buckets), at every bucket of their
//!   resolution: slow leaks, leaks older than the onset test's view, leaks hidden under a
//!   sawtooth, staircases.
//!
//! A window *hits* when all of these hold:
//!
//! 1. **New high**: the level at the end of the window (median of its last 3 points) is above
//!    every bucket median kept from *before* the window. A leak keeps making new highs;
//!    oscillations, mean-reverting wander and recoveries mostly do not. It is also the
//!    cheapest check, so it runs first and spares the rest for most healthy series.
//! 2. **Trend test**: Mann–Kendall z ≥ `min_z` (default 3.0), with the variance inflated for
//!    serial correlation (Hamed–Rao with an AR(1) model, see `trend`). Rank-based, so
//!    indifferent to the noise distribution; the correction keeps mean-reverting series
//!    (the main source of false trends) quiet.
//! 3. **Size floor**: the rise over the window, Theil–Sen slope × span, is at least
//!    `min_rise`, `min_rise_fraction` (default 2%) of the level, and `noise_multiple`
//!    (default 3) × the series' wander (robust scale of lagged differences of the coarse
//!    medians from before the window, pooled over half to full window lags), so
//!    statistically real but tiny drifts are not called leaks.
//! 4. **Still growing**: the Theil–Sen slope of the second half of the window is at least
//!    `halves_ratio` (default 0.3) × the whole window's slope, and the first half's is at
//!    least −`halves_ratio` × it (flat is fine, falling is not). Rejects steps and ramps
//!    that stopped (flat second half), decelerating warm-ups and recoveries, and sawtooth
//!    drops. Earlier versions required *both* halves to grow, which also rejected a leak
//!    whose onset lies inside the window until the onset left its first third: that alone
//!    cost ~1 min of delay on the 4 min window.
//!
//! A finding fires after `confirm` (default 3) consecutive hits of the same window, and
//! resolves after `confirm` consecutive evaluations of that window with z < `resolve_z`
//! (default 1.0) or a non-positive slope. Nothing is judged during `warmup` (default
//! 10 min) after a series appears or restarts: start-up ramps look exactly like leaks. At
//! least `prior` (default 2 min) of history must precede a window for the new-high check,
//! so young series are judged on shorter windows first.
//!
//! With `relative_to(load)`, the watched quantity is `series / load` (samples with load ≤ 0
//! are skipped): growth that merely follows load (diurnal swing) keeps the ratio flat, while
//! a leak makes the per-load ratio grow. Medians (not minima) keep the ratio unbiased when
//! its noise grows at low load.
//!
//! 5. **The series itself rises** (with `relative_to` only): the ratio assumes the series is
//!    proportional to load, but most are `c + a·load` with a fixed part `c` (a pool,
//!    resident memory, or `a = 0`: a count unrelated to load). Their ratio `a + c/load`
//!    rises whenever load falls, though nothing accumulates: the CLI flagged a constant
//!    `live.presence.Watch` under `--load live.http.streams` in the evening. So a hit
//!    also needs the series' own bucket medians, over the same window, to rise by at least
//!    the size floor's `min_rise` / `min_rise_fraction` of their level with Mann–Kendall
//!    z ≥ `own_min_z` (default 2.5). Ratio rising rules out "follows rising load"; series
//!    rising rules out "fixed part under falling load": together they reject every
//!    `c + a·load` with `c, a ≥ 0`, with no model to fit. Regressing on load instead was
//!    rejected: under a steady decline load and time are collinear within a window, so
//!    "follows load" and "leaks" cannot be told apart and the fit's noise would become
//!    the detector's. The price: a per-load leak whose series still *falls* (load falls
//!    faster than the leak adds) waits until load stops falling; in the benchmark's
//!    `per_unit_leak` (load −30%/h, series +0.2–0.4%/min) the median delay went from
//!    228 s to ~610 s, still found 400/400. `own_min_z` 2.5 rather than 2: on flat series
//!    under falling load, where the ratio hits all the time, z ≥ 2 on 4 min windows still
//!    fired on ~4% (2.5: ~1.5%; 3: ~0.5% but per-load leak delays ~950 s). This keeps a
//!    second history for the series (≈1.1 KB more per relative series).
//!
//! # Onset test
//!
//! Over the last `onset_window` (default 8 min = 48 fine medians) a "broken stick" (flat,
//! then rising from bucket `c` on) is fitted for every admissible `c` and compared with a
//! flat line: a generalized likelihood ratio for a change in slope, with the noise scale
//! from the fit's residuals (or the first differences, whichever is larger) and the
//! variance inflated for AR(1) serial correlation (see `onset` for the model and the
//! figures). It *hits* when all of these hold:
//!
//! 1. **New high**: the median of the last 3 fine buckets is above every coarse median
//!    and every median of 3 consecutive fine buckets before the change;
//! 2. **Evidence**: the hinge z ≥ `onset_z` (default 5; 0 turns the path off);
//! 3. **Not a step**: the best "jump" (a rise within `onset_sustain / 2`, flat before and
//!    after, anywhere in the window) does not fit better than the ramp by more than
//!    `onset_jump_margin` (default 1.5, in σ² units: twice the log-likelihood ratio in
//!    favour of the jump), and the change lies at least `onset_sustain` (default 2 min)
//!    back, so the rise has been seen to go on; a rise from `onset_early` (80 s) on may
//!    fire sooner when the ramp fits better than any jump by `onset_step_margin` (1). A
//!    step is a jump then flat; a leak keeps rising;
//! 4. **Size floor**: the rise since the change is at least `min_rise`, `min_rise_fraction`
//!    of the level before it, and `onset_noise_multiple` (default 4) × the series' wander
//!    over that span, measured (as for the windows) on the coarse medians *before* the
//!    change; without enough history for that (≈ 8 min plus the span) the path stays
//!    silent. This is the guard against slow mean-reverting wander, which a few minutes of
//!    fine buckets cannot tell from a trend;
//! 5. with `relative_to`: the series' own rise over the span (as for windows) *and* its own
//!    hinge z ≥ `own_min_z`.
//!
//! It fires after `onset_confirm` (default 2) consecutive hits, and the finding resolves
//! like a window's, judged once per coarse bucket on the trend (Mann–Kendall z, Theil–Sen
//! slope) of the onset window's fine buckets.
//!
//! Why a separate path rather than tuning the windows: the former 4 min window on fine
//! buckets reached the 1%/min leak within 5 min only 86–89% of the time, and every
//! parameter that made it faster (confirmations, z, wander floor, a two-segment
//! autocorrelation fit) raised false alarms on wander and level shifts as much. The onset
//! test uses the flat part as an anchor instead of spending it on a free intercept, so it
//! has the evidence earlier, and its step check is explicit. Beside it the 4 min window
//! still added a little speed (1%/min found within 5 min: 0.98 instead of 0.96) but most
//! of the false alarms: 3/9/12/4 per 100 series on mean-reverting wander and 6/4/6/1 on
//! level shifts (benchmark seed sets 0–3), against 1/2/1/2 and 3/1/3/0 without it, which
//! is the difference between missing and meeting a precision of 0.98. So it is no longer
//! a default; `windows` still accepts it.
//!
//! # Start-up test
//!
//! While a series is within its `warmup`, at every fine bucket: is it rising in a straight
//! line since it appeared (or since a change point in its young history)? The onset test's
//! hinge with the change allowed at the first bucket gives the candidate; its z is
//! recomputed against a white-noise yardstick measured *inside* the buckets (the variance a
//! bucket value would have on independent samples, see `history`), with the residuals'
//! semivariogram deciding between white noise and an AR(1) wander (`onset::white_ar_z`).
//! When the residuals look white the z is used at full strength; otherwise the smaller of
//! it (with φ ≥ 0.9) and the AR(1)-corrected z; an excess that is anti-correlated (one odd
//! bucket) counts as white. It hits when z ≥ `startup_z` (4.5), the ramp is not explained
//! better by a jump (by `startup_step_margin`; by `startup_weak_step_margin` when the jump's
//! own evidence is less than 2 above the ramp's z, the chance wobble of a straight line's
//! fit), the rise does not slow down (curvature z ≥ −`startup_curvature_z`), a fill-fast
//! rise (> `startup_fill_rate` of its starting level per minute) has gone on
//! `startup_fill`, a rise after a flat stretch `startup_sustain`, the rise is ≥
//! `min_rise_fraction` of the level (6% in the first 3 min), and the sample that closed the
//! bucket is not far below the level (the series is not dropping right now); it fires after
//! `onset_confirm` hits, or at once on z ≥ 16. Unlike the onset test it asks for no new
//! high (see `startup_hit`).
//!
//! A series that appears with a **fill** (a jump to its working level within the first
//! minute, as the streams of a service that takes traffic at once) and then leaks is a jump
//! followed by a line: the line through both curves like a warm-up and fits worse than the
//! jump, so the test above rejects it. When it does and the best jump (z ≥ `startup_z`
//! against the short-range noise) starts within the first 20 s, the rise after the jump is
//! judged on its own, as if the series had started there, with `startup_z` + 1.5 and once the
//! series is `startup_fill` old (a fill's slower tail passes for a leak over 2 min: measured
//! with 2 min after the jump and `startup_z`, `fill_3min` fired on 7–12 of 100 and `restart`
//! on 5–9).
//!
//! Theil–Sen and Mann–Kendall are O(n²) in the points of a window; with ≤ 48 points and
//! evaluation only at bucket boundaries (staggered per series) the amortised cost stays well
//! under a microsecond per series per second.

use crate::duration_secs;
use crate::finding::{Evidence, Finding, ResolvedBy, RuleKind, Window};
use crate::history::{BucketKey, Closed, Geometry, History, Resolution};
use crate::rules::onset::{OnsetParams, OnsetScratch, best_hinge, curvature_z, white_ar_z};
use crate::trend::{lag_scale, mann_kendall_z, median_in_place, theil_sen};
use crate::{ConfigError, Selector};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most fine buckets one window may span.
const MAX_FINE_POINTS: usize = 36;
/// Most coarse buckets one window may span.
const MAX_COARSE_POINTS: usize = 64;
/// Coarse buckets kept beyond the longest coarse window, as "before the window" context.
const COARSE_CONTEXT: usize = 16;
/// `Firing::window` of a finding fired by the onset test.
const ONSET: usize = usize::MAX;
/// Most fine buckets the onset test may search.
const MAX_ONSET_POINTS: usize = 120;
/// Start-up test: the residuals count as white noise while their excess over the white
/// yardstick (and their lag-1 autocorrelation) is within this many standard errors.
/// Measured at start-up z 4.5 (seed sets 0–3): 2 (with φ ≥ 0.8) found 0.885–0.935 of the
/// 1%/min leaks within 5 min, 3 (with φ ≥ 0.9) 0.91–0.96, at about the same precision.
const WHITE_DEAD_ZONE: f64 = 3.0;
/// Start-up test: the rise needed (fraction of the level) before `EARLY_RISE_POINTS` buckets.
/// A 10%/min leak has risen 10–20% by then, a 1%/min one is rarely found that early.
/// Measured on seed sets 0–3: precision +0.000–0.002 alone, −0.001 to +0.002 beside the
/// residual-variance check (`onset::white_ar_z`); neither share moved.
const EARLY_RISE_FRACTION: f64 = 0.06;
/// Start-up test: fine buckets (3 min at 10 s) before which a rise must be at least
/// `EARLY_RISE_FRACTION` of the level. Measured (seed sets 0–7): until 12 buckets, a
/// mean-reverting wander's first upswing fired at the first evaluation after (124 s); until
/// 18, those fires moved to 184 s and fewer passed, while a 1%/min leak (3% by then) is
/// rarely found before 180 s anyway and a 10%/min one has risen 30%.
const EARLY_RISE_POINTS: usize = 18;
/// Young and onset paths: a hit this strong fires at once instead of waiting for
/// `onset_confirm` hits (a 10%/min leak reaches it within 60–90 s; wander and steps that
/// pass the other checks stay well below it). Measured (seed sets 0–7): the share of 10%/min
/// leaks found within 2 min rose from 0.935–0.97 to 0.955–0.99, at 0–3 more false alarms
/// per set.
const DECISIVE_Z: f64 = 16.0;
/// Start-up test: extra z asked of a rise judged after a jump at the series' start (see
/// `startup_hit`).
const RETRY_EXTRA_Z: f64 = 1.5;
/// Start-up test: fewest fine buckets on which the white-noise yardstick may raise the z
/// above the AR(1)-corrected one (2 min at 10 s).
const WHITE_MIN_POINTS: usize = 12;
/// Start-up test: a jump is *weak* when its own evidence (`jump_z`, against the short-range
/// noise) is less than this above the ramp's z; a weak jump takes the rise for a step only
/// by `startup_weak_step_margin`. Measured with that margin at 5 (seed sets 0–7, offline
/// replay of the start-up evaluations): 1 → 32 of 800 `start_1pct` series past 5 min,
/// 1.5 → 30, 2 → 26, 3 → 23; false alarms on healthy series 158, 161, 164, 174
/// (48 and 146 with no weak-jump rule).
const WEAK_JUMP_Z: f64 = 2.0;
/// Start-up test: a hit is void when the sample that closed the bucket lies more than this
/// many white-noise σ of a bucket value (the yardstick, see `history`) below the level: the
/// series is dropping as the finding would fire (an allocator sawtooth's first drop, whose
/// samples the closed bucket's trimmed mean left out). On 1 s samples and 10 s buckets that
/// is about 2.5σ of one sample, so a leak loses < 1% of its evaluations (a voided one also
/// restarts the `onset_confirm` count). With fewer than 3 samples a bucket has no yardstick,
/// and the veto does not apply. Measured on 24 seed sets: false alarms −2 to −6 per set
/// (`sawtooth_leak` before its onset, `sawtooth`); 6: one more per set, but 1%/min leaks lose
/// up to 0.005 of their share; 10: about half the gain.
const DROP_SIGMAS: f64 = 8.0;

/// Configuration of a growth rule. See the [module docs](self) for the method.
///
/// ```
/// use leakwatch_detect::{GrowthRule, Selector};
/// use std::time::Duration;
/// let rule = GrowthRule::new(Selector::new(["memory.resident"]).unwrap())
///     .name("memory-per-stream")
///     .relative_to("live.http.streams")
///     .warmup(Duration::from_secs(300));
/// assert_eq!(rule.min_z, 3.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrowthRule {
    /// Rule name, reported in findings. Default `growth`.
    pub name: String,
    /// Series watched.
    pub series: Selector,
    /// Watch `series / relative_to` instead of the series itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_to: Option<String>,
    /// Fine bucket width. Default 10 s.
    #[serde(rename = "bucket_secs", with = "duration_secs")]
    pub bucket: Duration,
    /// Fine buckets per coarse bucket. Default 6 (60 s).
    pub coarse_factor: u32,
    /// Windows judged. Up to 36 fine buckets use fine buckets, longer ones coarse buckets
    /// (at most 64). Default 16 min, 48 min (fast leaks are the onset test's; see the
    /// module docs for why the former 4 min window is no longer a default).
    #[serde(rename = "windows_secs", with = "duration_secs::vec")]
    pub windows: Vec<Duration>,
    /// Minimum autocorrelation-corrected Mann–Kendall z to call a trend. Default 3.0.
    pub min_z: f64,
    /// A firing finding resolves once z falls below this. Default 1.0.
    pub resolve_z: f64,
    /// Minimum rise over the window, as a fraction of the level. Default 0.02.
    pub min_rise_fraction: f64,
    /// Minimum rise over the window, absolute. Default 0.
    pub min_rise: f64,
    /// Minimum rise over the window, in multiples of the series' wander. Default 3.
    pub noise_multiple: f64,
    /// Each half of the window must grow at least this fraction of the whole's slope. Default 0.3.
    pub halves_ratio: f64,
    /// Consecutive hits (and clears) needed to fire (and resolve). Default 3.
    pub confirm: u32,
    /// Nothing is judged this long after a series appears or restarts. Default 10 min.
    #[serde(rename = "warmup_secs", with = "duration_secs")]
    pub warmup: Duration,
    /// History required before a window, for the new-high check. Default 2 min.
    #[serde(rename = "prior_secs", with = "duration_secs")]
    pub prior: Duration,
    /// With `relative_to`: the series' *own* trend over the window (autocorrelation-corrected
    /// Mann–Kendall z of its bucket medians) must be at least this, besides the ratio's.
    /// A ratio that rises only because the load falls under a flat series is not a leak.
    /// Default 2.5. Ignored without `relative_to`.
    pub own_min_z: f64,
    /// Onset test (see the [module docs](self#onset-test)): the autocorrelation-corrected
    /// hinge z needed to fire on the onset path. Default 5.0; 0 turns the onset path off
    /// (then add a short window, e.g. 240 s, for fast leaks).
    pub onset_z: f64,
    /// Onset test: how far back (in fine buckets) the change point is searched, reference
    /// included (at least a quarter of it precedes the change). At most 120 fine buckets.
    /// Default 8 min.
    #[serde(rename = "onset_window_secs", with = "duration_secs")]
    pub onset_window: Duration,
    /// Onset test: the rise must have gone on at least this long after the change point.
    /// Default 2 min.
    #[serde(rename = "onset_sustain_secs", with = "duration_secs")]
    pub onset_sustain: Duration,
    /// Onset test: the rise since the change point must be at least this many times the
    /// series' wander over that span. Default 4.
    pub onset_noise_multiple: f64,
    /// Onset test: a change is taken for a step, and ignored, when the best jump (a rise
    /// within `onset_sustain / 2`, flat before and after) fits better than the ramp by more
    /// than this, in units of the statistic's σ² (twice the log-likelihood ratio); before
    /// `onset_sustain`, the ramp must fit better than any jump by this much. Default 1
    /// (was 2: the early firing then held back 5–10% of the 10%/min leaks past 2 min, and
    /// level shifts did not fire more often at 1). Requiring the ramp to fit *better* than any
    /// jump for the whole test (margin 0) held the 1%/min leak back by 20–30 s (90th
    /// percentile); from 3 on, level shifts start to fire.
    pub onset_step_margin: f64,
    /// Onset test: a rise is taken for a step, and ignored, when the best jump fits better
    /// than the ramp by more than this (σ² units, as `onset_step_margin`). Default 1.5: at 1
    /// (when one margin served both roles) a 1%/min leak whose noise happened to look like
    /// a jump waited past 5 min (measured on 24 seed sets: the share found within 5 min
    /// 0.930–0.985 → 0.935–0.985, every target met on 22 sets instead of 20, precision
    /// unchanged at 0.981–0.988); at 2–2.5 one-off steps and wander fired on 1–3 more
    /// series per seed set, at 4 precision fell to 0.971–0.983.
    pub onset_jump_margin: f64,
    /// Onset test: consecutive hits needed to fire. Default 2.
    pub onset_confirm: u32,
    /// Onset test: a rise younger than `onset_sustain` but at least this old may fire when
    /// the ramp fits clearly *better* than any jump (by `onset_step_margin`), so fast leaks
    /// (10%/min) need not wait the full sustain. Default 80 s; `onset_sustain` turns it off.
    #[serde(rename = "onset_early_secs", with = "duration_secs")]
    pub onset_early: Duration,
    /// Start-up test (see the [module docs](self#start-up-test)): the autocorrelation-corrected
    /// z of the rise since the series appeared (or since a change point in its warm-up)
    /// needed to fire while the series is within its `warmup`. Default 4.5; 0 turns the
    /// path off (then nothing is judged during the warm-up, as before).
    pub startup_z: f64,
    /// Start-up test: a rise whose curvature z (quadratic term of a fit over the rise) is
    /// below −this is slowing down, like a cache or pool filling up, and is not called a
    /// leak. Default 2.0.
    pub startup_curvature_z: f64,
    /// Start-up test: the rise must have gone on at least this long. Default 60 s.
    #[serde(rename = "startup_min_secs", with = "duration_secs")]
    pub startup_min: Duration,
    /// Start-up test: a young rise faster than this fraction of its starting level per
    /// minute looks like a cache or pool filling from (near) empty, and must go on in a
    /// straight line for `startup_fill` before it is called a leak. Default 0.2 (20%/min).
    pub startup_fill_rate: f64,
    /// Start-up test: how long a fill-fast rise must go on, and how old a series must be
    /// before a rise after a fill at its start is judged. Default 240 s: at 180 s a fill
    /// levelling off at 4–5 min (`fill_5min`) fired on 0–7 of 100 series per seed set, just
    /// after 3 min, before its curvature showed; at 240 s on none of 2400, and no scored leak
    /// of the detection bench is fill-fast (a leak that starts from zero is, and waits 4 min).
    #[serde(rename = "startup_fill_secs", with = "duration_secs")]
    pub startup_fill: Duration,
    /// Start-up test: a young rise is taken for a step, and ignored, when the best jump fits
    /// better than the ramp by more than this (σ² units, as `onset_step_margin`). Default
    /// 1.5: at 1 a 1%/min leak whose noise happened to look like a jump waited past 5 min
    /// (0.5–1 point of the share per seed set); at 2–3 one-off steps fired (2–10 of 100).
    pub startup_step_margin: f64,
    /// Start-up test: the margin of `startup_step_margin` when the best jump is *weak*: its
    /// own evidence against the short-range noise is less than 2 above the ramp's z. A
    /// ramp's fit against the best of dozens of jump positions and widths wobbles by chance
    /// in proportion to its z, so on a straight leak the jump often fits a little better
    /// (measured, offline replay of seed sets 0–7: 1.5 held 48 of 800 `start_1pct` series
    /// past 5 min, 5 held 26); a real step stands out against the short-range noise far more
    /// than the ramp fitted through it (its misfit inflates the ramp's noise estimate), so
    /// it is not weak. Default 5: 4 held 0–2 more leaks per seed set past 5 min (set 19
    /// missed its target), 6 gave 0–1 more false alarms per set and no share.
    pub startup_weak_step_margin: f64,
    /// Start-up test: a rise that starts after a flat stretch in the warm-up must have gone on
    /// this long (as `onset_sustain` for the onset test). Default 130 s: at 120 s (the onset
    /// test's) a mean-reverting wander's upswing fired on 1–4 more series per 100 per seed
    /// set; 140 s held back 1%/min leaks whose fit placed the change late.
    #[serde(rename = "startup_sustain_secs", with = "duration_secs")]
    pub startup_sustain: Duration,
}

impl Default for GrowthRule {
    fn default() -> Self {
        Self {
            name: "growth".to_owned(),
            series: Selector::none(),
            relative_to: None,
            bucket: Duration::from_secs(10),
            coarse_factor: 6,
            windows: vec![Duration::from_secs(960), Duration::from_secs(2880)],
            min_z: 3.0,
            resolve_z: 1.0,
            min_rise_fraction: 0.02,
            min_rise: 0.0,
            noise_multiple: 3.0,
            halves_ratio: 0.3,
            confirm: 3,
            warmup: Duration::from_secs(600),
            prior: Duration::from_secs(120),
            own_min_z: 2.5,
            onset_z: 5.0,
            onset_window: Duration::from_secs(480),
            onset_sustain: Duration::from_secs(120),
            onset_noise_multiple: 4.0,
            onset_step_margin: 1.0,
            onset_jump_margin: 1.5,
            onset_confirm: 2,
            onset_early: Duration::from_secs(80),
            startup_z: 4.5,
            startup_curvature_z: 2.0,
            startup_min: Duration::from_secs(60),
            startup_fill_rate: 0.2,
            startup_fill: Duration::from_secs(240),
            startup_step_margin: 1.5,
            startup_weak_step_margin: 5.0,
            startup_sustain: Duration::from_secs(130),
        }
    }
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.$name = v;
            self
        }
    };
}
pub(crate) use setter;

impl GrowthRule {
    /// A rule with default parameters watching `series`.
    pub fn new(series: Selector) -> Self {
        Self {
            series,
            ..Self::default()
        }
    }

    /// Sets the rule name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Watches `series / load` instead of the series: growth that follows load is not a leak.
    pub fn relative_to(mut self, load: impl Into<String>) -> Self {
        self.relative_to = Some(load.into());
        self
    }

    setter!(/// Sets the watched series.
        series: Selector);
    setter!(/// Sets the fine bucket width.
        bucket: Duration);
    setter!(/// Sets the fine buckets per coarse bucket.
        coarse_factor: u32);
    setter!(/// Sets the windows judged.
        windows: Vec<Duration>);
    setter!(/// Sets the trend z-score needed to fire.
        min_z: f64);
    setter!(/// Sets the z-score under which a firing finding resolves.
        resolve_z: f64);
    setter!(/// Sets the minimum rise as a fraction of the level.
        min_rise_fraction: f64);
    setter!(/// Sets the minimum absolute rise.
        min_rise: f64);
    setter!(/// Sets the minimum rise in multiples of the series' wander.
        noise_multiple: f64);
    setter!(/// Sets the slope fraction each half of the window must keep.
        halves_ratio: f64);
    setter!(/// Sets the consecutive hits needed to fire (and clears to resolve).
        confirm: u32);
    setter!(/// Sets the warm-up after a series appears or restarts.
        warmup: Duration);
    setter!(/// Sets the history required before a window.
        prior: Duration);
    setter!(/// Sets the series' own trend z required with `relative_to`.
        own_min_z: f64);
    setter!(/// Sets the onset test's z (0 turns the onset path off).
        onset_z: f64);
    setter!(/// Sets how far back the onset test searches for a change point.
        onset_window: Duration);
    setter!(/// Sets how long a rise must have gone on before the onset test may fire.
        onset_sustain: Duration);
    setter!(/// Sets the onset test's size floor in multiples of the series' wander.
        onset_noise_multiple: f64);
    setter!(/// Sets how much better than a step the onset test's ramp must fit.
        onset_step_margin: f64);
    setter!(/// Sets how much better than the ramp a jump must fit for the onset test to take
        /// the rise for a step.
        onset_jump_margin: f64);
    setter!(/// Sets the consecutive onset hits needed to fire.
        onset_confirm: u32);
    setter!(/// Sets how old a rise may be at the earliest for the onset test's early firing.
        onset_early: Duration);
    setter!(/// Sets the start-up test's z (0 turns the start-up path off).
        startup_z: f64);
    setter!(/// Sets the curvature z below −which a young rise counts as a filling warm-up.
        startup_curvature_z: f64);
    setter!(/// Sets how long a young rise must have gone on before the start-up test may fire.
        startup_min: Duration);
    setter!(/// Sets the rise per minute, as a fraction of the starting level, above which a
        /// young rise is taken for a fill and must last `startup_fill`.
        startup_fill_rate: f64);
    setter!(/// Sets how long a fill-fast young rise must go on before it is called a leak,
        /// and how old a series must be before a rise after a fill at its start is judged.
        startup_fill: Duration);
    setter!(/// Sets how much better than a step the start-up test's ramp must fit.
        startup_step_margin: f64);
    setter!(/// Sets the start-up test's step margin against a weak jump.
        startup_weak_step_margin: f64);
    setter!(/// Sets how long a young rise after a flat stretch must go on before it may fire.
        startup_sustain: Duration);

    /// Bytes of state this rule keeps per watched series (fixed: the history is bounded).
    pub fn state_bytes_per_series(&self) -> Result<usize, ConfigError> {
        Ok(self.compile()?.state_bytes())
    }

    pub(crate) fn compile(&self) -> Result<CompiledGrowth, ConfigError> {
        let bad = |field, value: f64, expected| ConfigError::OutOfRange {
            rule: self.name.clone(),
            field,
            value,
            expected,
        };
        let fine = self.bucket.as_secs_f64();
        if fine <= 0.0 {
            return Err(bad("bucket_secs", fine, "a positive duration, e.g. 10"));
        }
        if !(1..=60).contains(&self.coarse_factor) {
            return Err(bad(
                "coarse_factor",
                f64::from(self.coarse_factor),
                "an integer in 1..=60, e.g. 6",
            ));
        }
        if self.windows.is_empty() {
            return Err(bad(
                "windows_secs",
                0.0,
                "at least one window, e.g. [960, 2880]",
            ));
        }
        for (field, v, ok, expected) in [
            (
                "min_z",
                self.min_z,
                self.min_z > 0.0,
                "a positive z-score, e.g. 3",
            ),
            (
                "resolve_z",
                self.resolve_z,
                self.resolve_z < self.min_z,
                "below min_z, e.g. 1",
            ),
            (
                "min_rise_fraction",
                self.min_rise_fraction,
                self.min_rise_fraction >= 0.0,
                "a fraction ≥ 0, e.g. 0.02",
            ),
            ("min_rise", self.min_rise, self.min_rise >= 0.0, "≥ 0"),
            (
                "noise_multiple",
                self.noise_multiple,
                self.noise_multiple >= 0.0,
                "≥ 0, e.g. 3",
            ),
            (
                "halves_ratio",
                self.halves_ratio,
                (0.0..=1.0).contains(&self.halves_ratio),
                "a fraction in 0..=1, e.g. 0.3",
            ),
            (
                "own_min_z",
                self.own_min_z,
                true,
                "a finite z-score, e.g. 2.5",
            ),
            (
                "confirm",
                f64::from(self.confirm),
                self.confirm >= 1,
                "at least 1",
            ),
            (
                "onset_z",
                self.onset_z,
                self.onset_z >= 0.0,
                "a z-score ≥ 0 (0: off), e.g. 5",
            ),
            (
                "onset_noise_multiple",
                self.onset_noise_multiple,
                self.onset_noise_multiple >= 0.0,
                "≥ 0, e.g. 4",
            ),
            (
                "onset_step_margin",
                self.onset_step_margin,
                true,
                "a finite margin, e.g. 2",
            ),
            (
                "onset_jump_margin",
                self.onset_jump_margin,
                self.onset_jump_margin >= 0.0,
                "≥ 0, e.g. 1.5",
            ),
            (
                "onset_confirm",
                f64::from(self.onset_confirm),
                self.onset_confirm >= 1,
                "at least 1",
            ),
            (
                "startup_z",
                self.startup_z,
                self.startup_z >= 0.0,
                "a z-score ≥ 0 (0: off), e.g. 5",
            ),
            (
                "startup_fill_rate",
                self.startup_fill_rate,
                self.startup_fill_rate > 0.0,
                "a positive fraction per minute, e.g. 0.2",
            ),
            (
                "startup_step_margin",
                self.startup_step_margin,
                self.startup_step_margin >= 0.0,
                "≥ 0, e.g. 1.5",
            ),
            (
                // The margin against a weak jump is the lenient one: below the step margin a
                // weak jump would reject a ramp more readily than a clear one.
                "startup_weak_step_margin",
                self.startup_weak_step_margin,
                self.startup_weak_step_margin >= self.startup_step_margin,
                "≥ startup_step_margin (1.5 by default), e.g. 5",
            ),
            (
                "startup_curvature_z",
                self.startup_curvature_z,
                self.startup_curvature_z >= 0.0,
                "a z-score ≥ 0, e.g. 2",
            ),
        ] {
            if !v.is_finite() || !ok {
                return Err(bad(field, v, expected));
            }
        }
        if self.relative_to.as_deref() == Some("") {
            return Err(bad(
                "relative_to",
                0.0,
                "a series name, or no relative_to at all",
            ));
        }
        let coarse = fine * f64::from(self.coarse_factor);
        let mut windows = Vec::with_capacity(self.windows.len());
        let (mut fine_cap, mut coarse_cap) = (0, 0);
        for w in &self.windows {
            let len = w.as_secs_f64();
            let fine_points = (len / fine).round() as usize;
            let (res, width, points, max) = if fine_points <= MAX_FINE_POINTS {
                (Resolution::Fine, fine, fine_points, MAX_FINE_POINTS)
            } else {
                (
                    Resolution::Coarse,
                    coarse,
                    (len / coarse).round() as usize,
                    MAX_COARSE_POINTS,
                )
            };
            if points > max {
                return Err(ConfigError::WindowTooLong {
                    rule: self.name.clone(),
                    window_secs: len,
                    bucket_secs: width,
                    points,
                    max,
                });
            }
            if points < 6 {
                return Err(bad(
                    "windows_secs",
                    len,
                    "at least 6 buckets long (e.g. ≥ 60 s with 10 s buckets)",
                ));
            }
            match res {
                Resolution::Fine => fine_cap = fine_cap.max(points),
                Resolution::Coarse => coarse_cap = coarse_cap.max(points),
            }
            windows.push(PlannedWindow {
                len,
                res,
                width,
                points,
            });
        }
        let prior_fine = (self.prior.as_secs_f64() / fine).ceil() as usize;
        let mut fine_cap = fine_cap + prior_fine.clamp(3, 18);
        let onset = if self.onset_z > 0.0 {
            let points = (self.onset_window.as_secs_f64() / fine).round() as usize;
            let sustain_post = ((self.onset_sustain.as_secs_f64() / fine).ceil() as usize).max(6);
            let early = self.onset_early.as_secs_f64();
            let min_post = ((early / fine).ceil() as usize).clamp(6, sustain_post);
            let min_ref = (points / 4).max(6);
            if points > MAX_ONSET_POINTS || points < min_post + min_ref {
                return Err(bad(
                    "onset_window_secs",
                    self.onset_window.as_secs_f64(),
                    "long enough for onset_sustain plus a reference, at most 120 fine buckets",
                ));
            }
            fine_cap = fine_cap.max(points);
            Some(OnsetPlan {
                points,
                params: OnsetParams {
                    width: fine,
                    min_post,
                    min_ref,
                    max_jump: (sustain_post / 2).max(1),
                },
            })
        } else {
            None
        };
        let startup = if self.startup_z > 0.0 {
            let points = ((self.onset_window.as_secs_f64() / fine).round() as usize)
                .clamp(8, MAX_ONSET_POINTS);
            let min_post = ((self.startup_min.as_secs_f64() / fine).ceil() as usize).max(6);
            if min_post + 2 > points {
                return Err(bad(
                    "startup_min_secs",
                    self.startup_min.as_secs_f64(),
                    "shorter than onset_window_secs, e.g. 60",
                ));
            }
            // The start-up test sees one onset window: a fill-fast rise (or a rise after a
            // fill) could never have gone on longer, and would never fire.
            if self.startup_fill > self.onset_window {
                return Err(bad(
                    "startup_fill_secs",
                    self.startup_fill.as_secs_f64(),
                    "at most onset_window_secs, e.g. 240",
                ));
            }
            fine_cap = fine_cap.max(points);
            Some(OnsetPlan {
                points,
                params: OnsetParams {
                    width: fine,
                    min_post,
                    min_ref: 0,
                    max_jump: 6,
                },
            })
        } else {
            None
        };
        let geo = Geometry {
            fine,
            factor: self.coarse_factor,
            fine_cap,
            coarse_cap: coarse_cap + COARSE_CONTEXT,
        };
        Ok(CompiledGrowth {
            rule: self.clone(),
            geo,
            windows,
            onset,
            startup,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PlannedWindow {
    len: f64,
    res: Resolution,
    width: f64,
    points: usize,
}

/// The onset test's layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnsetPlan {
    points: usize,
    params: OnsetParams,
}

/// A validated growth rule with its history layout.
#[derive(Debug, Clone)]
pub(crate) struct CompiledGrowth {
    pub rule: GrowthRule,
    geo: Geometry,
    windows: Vec<PlannedWindow>,
    onset: Option<OnsetPlan>,
    startup: Option<OnsetPlan>,
}

impl CompiledGrowth {
    /// Bytes of state per watched series (history plus detector state).
    pub(crate) fn state_bytes(&self) -> usize {
        let own = if self.rule.relative_to.is_some() {
            History::state_bytes(&self.geo)
        } else {
            0
        };
        History::state_bytes(&self.geo) + std::mem::size_of::<GrowthTrack>()
            - std::mem::size_of::<History>()
            + own
            + self.windows.len() * std::mem::size_of::<WindowState>()
    }

    pub(crate) fn track(&self, phase: f64) -> GrowthTrack {
        GrowthTrack {
            history: History::new(self.geo, phase),
            own: self
                .rule
                .relative_to
                .is_some()
                .then(|| Box::new(History::new(self.geo, phase))),
            windows: vec![WindowState::default(); self.windows.len()].into_boxed_slice(),
            onset: WindowState::default(),
            firing: None,
        }
    }
}

/// Reused buffers, so steady-state evaluation allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    ts: Vec<f64>,
    ys: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    onset: OnsetScratch,
}

#[derive(Debug, Clone, Copy, Default)]
struct WindowState {
    streak: u32,
    since: f64,
}

#[derive(Debug)]
struct Firing {
    window: usize,
    clears: u32,
    finding: Finding,
}

/// What the finding should say about the series besides statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub series: &'a str,
    pub value: f64,
    pub other: Option<(&'a str, f64)>,
}

/// Growth detector state for one (rule, series).
#[derive(Debug)]
pub(crate) struct GrowthTrack {
    history: History,
    /// With `relative_to`: the series' own bucket medians (the history holds the ratio).
    own: Option<Box<History>>,
    windows: Box<[WindowState]>,
    /// Consecutive hits of the onset test.
    onset: WindowState,
    firing: Option<Firing>,
}

struct Stats {
    from: f64,
    window: Window,
    slope: f64,
    z: f64,
    level: f64,
    hit: bool,
}

impl GrowthTrack {
    /// Forgets history after a counter reset; resolves a firing finding.
    pub(crate) fn reset(&mut self, t: f64, out: &mut Vec<Finding>) {
        self.history.clear();
        if let Some(own) = &mut self.own {
            own.clear();
        }
        self.windows
            .iter_mut()
            .for_each(|w| *w = WindowState::default());
        self.onset = WindowState::default();
        if let Some(f) = self.firing.take() {
            out.push(f.finding.resolved(t, ResolvedBy::Reset));
        }
    }

    /// The current fine bucket of the watched quantity (`None` before the first sample).
    pub(crate) fn bucket_key(&self) -> Option<BucketKey> {
        self.history.bucket_key()
    }

    /// Adds samples that fall in the current fine bucket ([`BucketKey::holds`]), in order:
    /// the same state as pushing each, for samples that close nothing. Only for plain tracks:
    /// a relative track's own history needs each sample's value beside the ratio.
    pub(crate) fn push_within(&mut self, vals: &[f32]) {
        debug_assert!(self.own.is_none(), "push_within on a relative track");
        for &v in vals {
            self.history.push_within(v);
        }
    }

    /// The series is gone: resolves a firing finding.
    pub(crate) fn gone(&mut self, t: f64, out: &mut Vec<Finding>) {
        if let Some(f) = self.firing.take() {
            out.push(f.finding.resolved(t, ResolvedBy::Gone));
        }
    }

    /// The firing finding, if any.
    pub(crate) fn active(&self) -> Option<&Finding> {
        self.firing.as_ref().map(|f| &f.finding)
    }

    /// Adds a sample of the watched quantity; evaluates windows whose bucket closed.
    pub(crate) fn push(
        &mut self,
        c: &CompiledGrowth,
        t: f64,
        v: f64,
        ctx: Context<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<Finding>,
    ) {
        let closed = self.history.push(t, v);
        if let Some(own) = &mut self.own {
            own.push(t, ctx.value);
        }
        if closed == Closed::default() {
            return;
        }
        if self.history.age(t) < c.rule.warmup.as_secs_f64() {
            // Young series: only the start-up test speaks (windows and the onset test need
            // history before the rise that a young series does not have).
            if closed.fine
                && let Some(plan) = c.startup
            {
                self.evaluate_young(c, plan, Evidence::Startup, closed, t, v, ctx, scratch, out);
            }
            return;
        }
        for (i, w) in c.windows.iter().enumerate() {
            let due = match w.res {
                Resolution::Fine => closed.fine,
                Resolution::Coarse => closed.coarse,
            };
            if due {
                self.evaluate(c, i, t, ctx, scratch, out);
            }
        }
        if closed.fine {
            if let Some(plan) = c.onset {
                self.evaluate_young(c, plan, Evidence::Onset, closed, t, v, ctx, scratch, out);
            } else if let Some(f) = &self.firing
                && f.window == ONSET
                && closed.coarse
                && let Some(plan) = c.startup
            {
                // A start-up finding outlives the warm-up: keep judging its resolution.
                self.evaluate_young(c, plan, Evidence::Onset, closed, t, v, ctx, scratch, out);
            }
        }
    }

    /// One resolution step of the firing finding, on the statistics of the window it is
    /// judged on: `confirm` evaluations in a row with z < `resolve_z` or a non-positive
    /// slope resolve it.
    fn judge_clear(
        &mut self,
        r: &GrowthRule,
        stats: Option<&Stats>,
        t: f64,
        ctx: Context<'_>,
        out: &mut Vec<Finding>,
    ) {
        let Some(f) = &mut self.firing else { return };
        // Too little data (a gap in the recording) is no evidence either way.
        let Some(st) = stats else { return };
        let cleared = st.slope <= 0.0 || st.z < r.resolve_z;
        f.clears = if cleared { f.clears + 1 } else { 0 };
        if !cleared {
            f.finding.slope_per_sec = Some(st.slope);
            f.finding.z = Some(st.z);
        }
        if f.clears >= r.confirm {
            let f = self.firing.take().expect("checked above");
            let mut done = f.finding.resolved(t, ResolvedBy::Cleared);
            fill_context(&mut done, ctx, Some(st.level));
            out.push(done);
        }
    }

    /// The onset and start-up paths: each fires on its own when its hinge test (see
    /// [`onset`](self#onset-test), [`start-up`](self#start-up-test)) and guards hold for
    /// `onset_confirm` consecutive fine buckets. A finding either fires resolves like any
    /// other, judged at each coarse bucket on the trend of the fine buckets in `plan`.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_young(
        &mut self,
        c: &CompiledGrowth,
        plan: OnsetPlan,
        evidence: Evidence,
        closed: Closed,
        t: f64,
        newest: f64,
        ctx: Context<'_>,
        s: &mut Scratch,
        out: &mut Vec<Finding>,
    ) {
        if let Some(f) = &self.firing {
            // Resolution is judged once per coarse bucket (as the coarse windows are): per
            // fine bucket it would cost more than the detection itself on a leaking series.
            if f.window == ONSET && closed.coarse {
                // Judged on the trend of the onset window's fine buckets (Mann–Kendall z
                // and Theil–Sen slope, as the windows are).
                let w = PlannedWindow {
                    len: plan.points as f64 * plan.params.width,
                    res: Resolution::Fine,
                    width: plan.params.width,
                    points: plan.points,
                };
                let stats = self.stats(c, w, true, s);
                self.judge_clear(&c.rule, stats.as_ref(), t, ctx, out);
            }
            return;
        }
        let hit = match evidence {
            Evidence::Startup => self.startup_hit(c, plan, newest, s),
            _ => self.onset_hit(c, plan, s),
        };
        let r = &c.rule;
        let Some((from, slope, z, level, window)) = hit else {
            self.onset.streak = 0;
            return;
        };
        if self.onset.streak == 0 {
            self.onset.since = from;
        }
        self.onset.streak += 1;
        if self.onset.streak < r.onset_confirm && z < DECISIVE_Z {
            return;
        }
        let mut f = Finding::new(
            RuleKind::Growth,
            &r.name,
            ctx.series,
            ctx.value,
            self.onset.since,
            t,
        );
        f.slope_per_sec = Some(slope);
        f.z = Some(z);
        f.window = Some(window);
        f.evidence = Some(evidence);
        fill_context(&mut f, ctx, Some(level));
        out.push(f.clone());
        self.onset = WindowState::default();
        self.firing = Some(Firing {
            window: ONSET,
            clears: 0,
            finding: f,
        });
    }

    /// One start-up evaluation (the series is within its warm-up): `(change time, slope, z,
    /// level, window)` on a hit; `newest` is the sample that closed the bucket (not in the
    /// history's closed buckets yet). See the [module docs](self#start-up-test).
    fn startup_hit(
        &self,
        c: &CompiledGrowth,
        plan: OnsetPlan,
        newest: f64,
        s: &mut Scratch,
    ) -> Option<(f64, f64, f64, f64, Window)> {
        let p = plan.params;
        let end = self.history.last_time(Resolution::Fine)?;
        let from = end - (plan.points as f64 - 0.5) * p.width;
        self.history
            .window(Resolution::Fine, from, &mut s.ts, &mut s.ys);
        let n = s.ys.len();
        if n < p.min_post.max(8) {
            return None;
        }
        // The level (median of the last 3 buckets), reported with a finding. Unlike the onset
        // test, the start-up test does not ask for a new high: on a slow leak from the first
        // sample the running maximum of a few minutes of noisy buckets is often ahead of the
        // latest median, and that check alone rejected 43% of the evaluations of 1%/min
        // leaks between 190 and 300 s (a fill that has levelled off is rejected by the
        // curvature test, a tooth that dropped by the fit itself).
        s.a.clear();
        s.a.extend_from_slice(&s.ys[n - 3..]);
        let level = median_in_place(&mut s.a);
        // Cheap necessary condition instead: the level is above the window's start by half
        // the smallest rise that can fire. Most evaluations of a flat young series stop here
        // (measured: the watchdog bench's tick 4.9 → 4.4 ms for 10,000 series), no leak does.
        s.a.clear();
        s.a.extend_from_slice(&s.ys[..3]);
        let start = median_in_place(&mut s.a);
        if level - start < 0.5 * c.rule.min_rise_fraction * start.abs() {
            return None;
        }
        // A series that is dropping right now (the sample that closed this bucket is far below
        // the level) is not leaking, whatever its buckets say: the first drop of an allocator
        // sawtooth lands in the closed bucket's last samples, which its trimmed mean leaves
        // out, and the finding would fire on the first tooth alone a moment after it ended.
        if let Some(white) = self.history.white_var(from, &mut s.b)
            && newest < level - DROP_SIGMAS * white.sqrt()
        {
            return None;
        }
        let first = self.startup_from(c, p, from, 0, level, s);
        if let Err(Some((jump_start, jump_end))) = first {
            // A fill at the very start (the series appeared and jumped to its working level
            // within a minute, as a pool or a set of streams does when traffic is already
            // there) followed by a rise: the line through jump and rise curves like a warm-up
            // and fits worse than the jump, so the rise is judged on its own, as if the
            // series had started at the end of the jump (`caught_live`'s callback series).
            if jump_start <= 2 && jump_end + p.min_post.max(8) <= n {
                if self.own.is_some() {
                    // The own-series checks of the first try reuse the scratch buffers:
                    // judge the retry on the watched quantity's window again.
                    self.history
                        .window(Resolution::Fine, from, &mut s.ts, &mut s.ys);
                }
                return self.startup_from(c, p, from, jump_end, level, s).ok();
            }
        }
        first.ok()
    }

    /// The start-up test on the fine buckets from index `k` of the window loaded in `s`
    /// (times relative to `from`). `Err(Some(jump))` when it does not hit and the window
    /// holds a clear jump (z ≥ `startup_z`, as `(first rising, first plateau)` bucket);
    /// `Err(None)` otherwise.
    #[allow(clippy::type_complexity)]
    fn startup_from(
        &self,
        c: &CompiledGrowth,
        p: OnsetParams,
        from: f64,
        k: usize,
        level: f64,
        s: &mut Scratch,
    ) -> Result<(f64, f64, f64, f64, Window), Option<(usize, usize)>> {
        let r = &c.rule;
        let (ts, ys) = (&s.ts[k..], &s.ys[k..]);
        let n = ys.len();
        let Some(mut o) = best_hinge(ts, ys, p, &mut s.onset) else {
            return Err(None);
        };
        let jump = (o.jump_z >= r.startup_z).then_some((k + o.jump.0, k + o.jump.1));
        let miss = Err(jump);
        // With samples inside the buckets to measure white noise on, the hinge's z is
        // recomputed against that yardstick (see `onset::white_ar_z`): at full strength when
        // the residuals look white, and never above the AR(1)-corrected z otherwise.
        if let Some(white) = self
            .history
            .white_var(from + ts[0] - 0.5 * p.width, &mut s.b)
            && let Some((z, phi)) =
                white_ar_z(ts, ys, o.at, p.width, white, WHITE_DEAD_ZONE, &mut s.onset)
        {
            // Under `WHITE_MIN_POINTS` buckets the semivariogram cannot tell white noise
            // from a slow swing (its standard error is over half the white level), so
            // the yardstick may only lower the z there.
            o.z = if phi == 0.0 && n >= WHITE_MIN_POINTS {
                z
            } else {
                o.z.min(z)
            };
        }
        // The rise after a jump is a second look at the same young series, and the tail of a
        // fill is what it mostly sees: measured, 2 fills of 400 fired there at z 4.5–5.8.
        let need = if k > 0 {
            r.startup_z + RETRY_EXTRA_Z
        } else {
            r.startup_z
        };
        // A jump whose own evidence is not clearly above the ramp's is a chance wobble of the
        // fit more often than a step (see `startup_weak_step_margin`).
        let margin = if o.jump_z < o.z + WEAK_JUMP_Z {
            r.startup_weak_step_margin
        } else {
            r.startup_step_margin
        };
        if o.z < need || o.over_step < -margin {
            return miss;
        }
        // A warm-up decelerates, a leak does not.
        let curvature = match curvature_z(&ts[o.at..], &ys[o.at..], &mut s.onset) {
            Some(z) => z,
            None => return miss,
        };
        if curvature < -r.startup_curvature_z {
            return miss;
        }
        let change = from + ts[o.at] - 0.5 * p.width;
        let span = ts[n - 1] - ts[o.at] + p.width;
        // A rise that starts inside the young window (after a flat stretch) must have gone on
        // as long as the onset test requires: it is told from a step the same way.
        if o.at > p.min_post && span < r.startup_sustain.as_secs_f64() {
            return miss;
        }
        // After a jump at the start (a fill), the series must be as old as a fill-fast rise
        // must have gone on (`startup_fill`, counted from the window's first bucket: the
        // series' first, where the fill began, while it is younger than `onset_window`;
        // older, the window alone is longer than `startup_fill`): a fill's slower tail would pass for a leak over 2 min (measured: `fill_3min`
        // fired on 7–12 of 100 at exactly 2 min after the jump, `restart` 5–9). It was 3 min
        // after the jump's end, the same ≈ 3.5–4 min from the start for a jump of 20–60 s.
        if k > 0 && s.ts[k + n - 1] - s.ts[0] + p.width < r.startup_fill.as_secs_f64() {
            return miss;
        }
        let rise = o.slope * span;
        s.a.clear();
        s.a.extend_from_slice(&ys[o.at..(o.at + 3).min(n)]);
        let base = median_in_place(&mut s.a).abs();
        // Filling from (near) empty: far faster than its own starting level, so it has to
        // show for longer that it does not slow down (the curvature test needs the span).
        if o.slope * 60.0 > r.startup_fill_rate * base && span < r.startup_fill.as_secs_f64() {
            return miss;
        }
        s.a.clear();
        s.a.extend_from_slice(if o.at >= 3 { &ys[..o.at] } else { ys });
        let typical = median_in_place(&mut s.a).abs();
        // Before `EARLY_RISE_POINTS` buckets the noise's correlation can hardly be measured,
        // and a wander's first upswing passes the z: a rise that early must also be large.
        let frac = if n < EARLY_RISE_POINTS {
            r.min_rise_fraction.max(EARLY_RISE_FRACTION)
        } else {
            r.min_rise_fraction
        };
        if rise < r.min_rise.max(frac * typical) {
            return miss;
        }
        let window = Window {
            start: change,
            end: from + ts[n - 1],
        };
        if let Some(own) = &self.own {
            let w = PlannedWindow {
                len: span,
                res: Resolution::Fine,
                width: p.width,
                points: n - o.at,
            };
            if !own_rises(own, w, change, r, s) {
                return miss;
            }
            own.window(Resolution::Fine, from, &mut s.ts, &mut s.ys);
            let own_z = best_hinge(&s.ts, &s.ys, p, &mut s.onset).map_or(0.0, |o| o.z);
            if own_z < r.own_min_z {
                return miss;
            }
        }
        Ok((change, o.slope, o.z, level, window))
    }

    /// One onset evaluation: `(change time, slope, z, level, window)` on a hit.
    fn onset_hit(
        &self,
        c: &CompiledGrowth,
        plan: OnsetPlan,
        s: &mut Scratch,
    ) -> Option<(f64, f64, f64, f64, Window)> {
        let r = &c.rule;
        let p = plan.params;
        let end = self.history.last_time(Resolution::Fine)?;
        let from = end - (plan.points as f64 - 0.5) * p.width;
        self.history
            .window(Resolution::Fine, from, &mut s.ts, &mut s.ys);
        let n = s.ys.len();
        if n < p.min_post + p.min_ref {
            return None;
        }
        // Cheapest check first: a new high against everything before the *earliest*
        // admissible change point. The check below, against everything before the chosen
        // change, holds for some candidate only if this one does, so it is a necessary
        // condition. (It was made against the latest admissible change point, a stricter
        // test: a slow ramp's own buckets between the two then had to be beaten too, and
        // measured on 24 seed sets, 1%/min leaks starting late waited up to 10 s longer; the
        // share found within 5 min rose by 0–0.005 per set when this was fixed.)
        s.a.clear();
        s.a.extend_from_slice(&s.ys[n - 3..]);
        let level = median_in_place(&mut s.a);
        let earliest = from + s.ts[p.min_ref] - 0.5 * p.width;
        if !self
            .history
            .prior_max_of_3(earliest)
            .is_some_and(|m| level > m)
        {
            return None;
        }
        let o = best_hinge(&s.ts, &s.ys, p, &mut s.onset)?;
        if o.z < r.onset_z || o.over_step < -r.onset_jump_margin {
            return None;
        }
        let change = from + s.ts[o.at] - 0.5 * p.width;
        // Before `onset_sustain` has passed, the ramp must fit clearly *better* than any jump.
        if s.ts[n - 1] - s.ts[o.at] + p.width < r.onset_sustain.as_secs_f64()
            && o.over_step < r.onset_step_margin
        {
            return None;
        }
        if !self
            .history
            .prior_max_of_3(change)
            .is_some_and(|m| level > m)
        {
            return None;
        }
        let span = s.ts[n - 1] - s.ts[o.at] + p.width;
        let rise = o.slope * span;
        s.a.clear();
        s.a.extend_from_slice(&s.ys[..o.at]);
        let typical = median_in_place(&mut s.a).abs();
        // The series' wander must be measured on its own history before the change (no
        // young-series fallback as the windows have): this floor is the onset path's guard
        // against slow wander, which the window's autocorrelation cannot see. So the onset
        // path speaks only once ≈ 8 coarse buckets plus the span precede the change.
        let coarse = c.geo.fine * f64::from(c.geo.factor);
        let lag = ((span / coarse).round() as usize).max(1);
        self.history.coarse_values_before(change, &mut s.a);
        let wander = lag_scale(&s.a, lag, 8, &mut s.b)?;
        let floor = r
            .min_rise
            .max(r.min_rise_fraction * typical)
            .max(r.onset_noise_multiple * wander);
        if rise < floor {
            return None;
        }
        let window = Window {
            start: change,
            end: from + s.ts[n - 1],
        };
        if let Some(own) = &self.own {
            let w = PlannedWindow {
                len: span,
                res: Resolution::Fine,
                width: p.width,
                points: n - o.at,
            };
            if !own_rises(own, w, change, r, s) {
                return None;
            }
            // The series itself must show an onset too (its own hinge z ≥ `own_min_z`):
            // over the onset's short span, a rank trend of the series (above) passes by
            // chance on a flat series under falling load far more often than on a window.
            own.window(Resolution::Fine, from, &mut s.ts, &mut s.ys);
            let own_z = best_hinge(&s.ts, &s.ys, p, &mut s.onset).map_or(0.0, |o| o.z);
            if own_z < r.own_min_z {
                return None;
            }
        }
        Some((change, o.slope, o.z, level, window))
    }

    fn evaluate(
        &mut self,
        c: &CompiledGrowth,
        i: usize,
        t: f64,
        ctx: Context<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<Finding>,
    ) {
        let firing_here = self.firing.as_ref().is_some_and(|f| f.window == i);
        let stats = self.stats(c, c.windows[i], firing_here, scratch);
        let r = &c.rule;
        let ws = &mut self.windows[i];
        match &stats {
            Some(s) if s.hit => {
                if ws.streak == 0 {
                    ws.since = s.from;
                }
                ws.streak += 1;
            }
            _ => ws.streak = 0,
        }
        if self.firing.is_some() {
            if firing_here {
                self.judge_clear(r, stats.as_ref(), t, ctx, out);
            }
            return;
        }
        let Some(s) = stats.filter(|s| s.hit) else {
            return;
        };
        if ws.streak < r.confirm {
            return;
        }
        let mut f = Finding::new(
            RuleKind::Growth,
            &r.name,
            ctx.series,
            ctx.value,
            ws.since,
            t,
        );
        f.slope_per_sec = Some(s.slope);
        f.z = Some(s.z);
        f.window = Some(s.window);
        f.evidence = Some(Evidence::Window);
        fill_context(&mut f, ctx, Some(s.level));
        out.push(f.clone());
        self.firing = Some(Firing {
            window: i,
            clears: 0,
            finding: f,
        });
    }

    /// Statistics of one window; `None` when there is not enough data to judge.
    fn stats(
        &self,
        c: &CompiledGrowth,
        w: PlannedWindow,
        need_z: bool,
        s: &mut Scratch,
    ) -> Option<Stats> {
        let r = &c.rule;
        let end = self.history.last_time(w.res)?;
        let earliest = self.history.started() + r.prior.as_secs_f64();
        let from = (end - w.len + 0.5 * w.width).max(earliest);
        self.history.window(w.res, from, &mut s.ts, &mut s.ys);
        let n = s.ys.len();
        if n < (w.points / 2).max(6) {
            return None;
        }
        s.a.clear();
        s.a.extend_from_slice(&s.ys[n - 3..]);
        let level = median_in_place(&mut s.a);
        let new_high = self.history.prior_max(from).is_some_and(|p| level > p);
        if !new_high && !need_z {
            return None;
        }
        let slope = theil_sen(&s.ts, &s.ys, &mut s.a)?;
        let z = mann_kendall_z(&s.ts, &s.ys, slope, &mut s.a);
        let span = s.ts[n - 1] - s.ts[0];
        let window = Window {
            start: from + s.ts[0],
            end: from + s.ts[n - 1],
        };
        let mut stats = Stats {
            from: window.start,
            window,
            slope,
            z,
            level,
            hit: false,
        };
        if !new_high || slope <= 0.0 || z < r.min_z {
            return Some(stats);
        }
        s.a.clear();
        s.a.extend_from_slice(&s.ys);
        let typical = median_in_place(&mut s.a).abs();
        let wander = self.wander(c, span, from, s);
        let floor = r
            .min_rise
            .max(r.min_rise_fraction * typical)
            .max(r.noise_multiple * wander);
        if slope * span < floor {
            return Some(stats);
        }
        let h = n / 2;
        let first = theil_sen(&s.ts[..h], &s.ys[..h], &mut s.a).unwrap_or(0.0);
        let second = theil_sen(&s.ts[h..], &s.ys[h..], &mut s.a).unwrap_or(0.0);
        stats.hit = halves_grow(first, second, slope, r.halves_ratio);
        if let (true, Some(own)) = (stats.hit, &self.own) {
            stats.hit = own_rises(own, w, from, r, s);
        }
        Some(stats)
    }
}

impl GrowthTrack {
    /// How much this series typically moves over `span` seconds: the spread of lagged
    /// differences of bucket medians (see `trend::lag_scale`), the larger of the coarse
    /// medians from before the window (the whole ring if that is too short) and the fine
    /// ring. A rise must stand out against this to be called growth: it is what keeps
    /// mean-reverting wander and long sawtooth teeth, which look like trends over a short
    /// window, quiet.
    fn wander(&self, c: &CompiledGrowth, span: f64, from: f64, s: &mut Scratch) -> f64 {
        let coarse = c.geo.fine * f64::from(c.geo.factor);
        let lag = ((span / coarse).round() as usize).max(1);
        self.history.coarse_values_before(from, &mut s.a);
        let w = lag_scale(&s.a, lag, 8, &mut s.b);
        if let Some(w) = w {
            return w;
        }
        // Young series: too little history before the window. Take the larger of both
        // resolutions over everything kept; the fine one also counts white noise, so this
        // errs on the quiet side until the series has some history.
        self.history.coarse_values(&mut s.a);
        let coarse_w = lag_scale(&s.a, lag, 6, &mut s.b);
        self.history.fine_values(&mut s.a);
        let fine_lag = (span / c.geo.fine).round() as usize;
        let fine_w = lag_scale(&s.a, fine_lag, 6, &mut s.b);
        if coarse_w.is_some() || fine_w.is_some() {
            return coarse_w.unwrap_or(0.0).max(fine_w.unwrap_or(0.0));
        }
        // The window covers (nearly) the whole history, so no lag as long as the window has
        // enough differences: take the longest lag that has. Each lag's differences are
        // centred on their median (`lag_scale`), so a steady trend does not count as spread,
        // while a mean-reverting wander has reached most of its spread within a few coarse
        // buckets. Before, the wander was taken as 0 here, and windows over a young series'
        // whole life (from its 2nd minute) fired on wander alone: measured, 31 of the false
        // alarms of `ou_wander`, `heavy_noise` and `wander_leak` over seed sets 0–3.
        self.history.coarse_values(&mut s.a);
        let lag = lag.min(s.a.len().saturating_sub(6));
        lag_scale(&s.a, lag, 6, &mut s.b).unwrap_or(0.0)
    }
}

/// With `relative_to`: does the series itself rise over the window (its own Theil–Sen
/// slope > 0 and Mann–Kendall z ≥ `min_z`, on the same buckets as the ratio)?
///
/// Why: the ratio `series / load` assumes the series is proportional to load. Most real
/// series are not purely so: a fixed part (a pool, resident memory, presence watches that
/// do not depend on streams) makes the ratio `a + c / load` rise whenever load falls,
/// though nothing accumulates. A leak accumulates: the leaked count itself grows. Requiring
/// both (the ratio grows, so the growth is not explained by rising load; the series grows,
/// so it is not explained by falling load under a fixed part) rejects every affine
/// `series = c + a·load` with `c ≥ 0`, whichever way load moves, with no model to fit.
///
/// Alternatives considered: regressing the series on load and testing the residual's
/// trend needs the load to vary independently of time within the window; under a steady
/// evening decline load and time are collinear, the split between "follows load" and
/// "leaks" is unidentified, and the fit's noise would be the detector's. Fitting the load
/// relation on history before the window is identified only if load varied there.
///
/// Cost: a per-load leak *hidden* by a faster fall of load (the series falls, more slowly
/// than load) is not reported until load stops falling; the plain growth rule, or a
/// divergence rule, is the tool for that case.
fn own_rises(own: &History, w: PlannedWindow, from: f64, r: &GrowthRule, s: &mut Scratch) -> bool {
    own.window(w.res, from, &mut s.ts, &mut s.ys);
    let n = s.ys.len();
    if n < 6 {
        return false;
    }
    let Some(slope) = theil_sen(&s.ts, &s.ys, &mut s.a) else {
        return false;
    };
    s.a.clear();
    s.a.extend_from_slice(&s.ys);
    let level = median_in_place(&mut s.a).abs();
    let rise = slope * (s.ts[n - 1] - s.ts[0]);
    slope > 0.0
        && rise >= r.min_rise.max(r.min_rise_fraction * level)
        && mann_kendall_z(&s.ts, &s.ys, slope, &mut s.a) >= r.own_min_z
}

/// The shape check on the halves of a window whose whole Theil–Sen slope is `whole > 0`:
/// the *second* half must keep growing (≥ `ratio` × `whole`), the *first* half must not
/// fall (≥ −`ratio` × `whole`).
///
/// Why not "both halves grow": a leak that started inside the window has a flat first
/// half, so requiring the first half to grow too held every leak back until its onset had
/// left the first third of the window (≈ 2.7 min of a 4 min window, plus confirmations).
/// What the check is for still holds: a step or a ramp that stopped (flat second half),
/// a decelerating warm-up or recovery (second half slower), and a sawtooth drop inside the
/// window (one half falls) are rejected.
fn halves_grow(first: f64, second: f64, whole: f64, ratio: f64) -> bool {
    second >= ratio * whole && first >= -ratio * whole
}

fn fill_context(f: &mut Finding, ctx: Context<'_>, level: Option<f64>) {
    f.value = ctx.value;
    if let Some((name, v)) = ctx.other {
        f.other = Some(name.to_owned());
        f.other_value = Some(v);
        if let Some(l) = level {
            f.ratio = Some(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::halves_grow;

    #[test]
    fn halves_accept_a_leak_that_started_inside_the_window() {
        // Flat first half, steep second half: the shape of a leak whose onset is mid-window.
        assert!(halves_grow(0.0, 2.0, 1.0, 0.3));
        // Both halves growing: a leak older than the window.
        assert!(halves_grow(1.0, 1.0, 1.0, 0.3));
    }

    #[test]
    fn halves_reject_steps_stopped_ramps_and_drops() {
        // A step or a ramp that stopped: the second half is flat.
        assert!(!halves_grow(2.0, 0.0, 1.0, 0.3));
        // A decelerating warm-up: the second half much slower.
        assert!(!halves_grow(1.8, 0.2, 1.0, 0.3));
        // A sawtooth drop in the first half.
        assert!(!halves_grow(-1.0, 2.0, 1.0, 0.3));
    }
}

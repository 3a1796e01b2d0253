//! The engine: routes samples to the rules that watch them and collects transitions.

use crate::ConfigError;
use crate::duration_secs;
use crate::finding::Finding;
use crate::history::BucketKey;
use crate::rules::growth::{CompiledGrowth, Context, GrowthTrack, Scratch};
use crate::rules::{RuleSet, Sustained};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

/// Engine-wide settings (series lifecycle), separate from the rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// A series not seen for this long is dropped and its findings resolved (`gone`). Default 5 min.
    #[serde(rename = "stale_after_secs", with = "duration_secs")]
    pub stale_after: Duration,
    /// When pairing two series (relative growth, divergence, per-unit ceiling) the other
    /// series' latest sample must be at most this old. Default 30 s.
    #[serde(rename = "pair_skew_secs", with = "duration_secs")]
    pub pair_skew: Duration,
    /// A series that drops to at most this fraction of its previous value, on two samples in a
    /// row, has restarted (a counter reset): its growth state is forgotten. Default 0.1.
    pub reset_fraction: f64,
    /// Drops from values below this are never taken as restarts (small counts hit zero
    /// legitimately). Default 10.
    pub reset_min_level: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(300),
            pair_skew: Duration::from_secs(30),
            reset_fraction: 0.1,
            reset_min_level: 10.0,
        }
    }
}

/// FNV-1a: series names are short and trusted, so a fast non-keyed hash is the right trade.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Index = HashMap<Box<str>, u32, BuildHasherDefault<Fnv>>;

/// A series name registered with one [`Engine`] ([`Engine::register`]): a dense index that
/// lets a caller who samples the same names every round skip the lookup by name.
///
/// Valid only for the engine that returned it; observing it on another engine samples
/// whatever series has that index there (or panics when there is none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(u32);

impl SeriesId {
    /// The dense index (0, 1, 2, … in registration order), for callers' own vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug)]
struct RelativeTrack {
    rule: usize,
    /// The load series (registered when this track was made).
    load: usize,
    load_resets: u32,
    track: GrowthTrack,
}

#[derive(Debug)]
struct Ceiling {
    rule: usize,
    /// The unit series of a per-unit limit.
    per: Option<usize>,
    state: Sustained,
}

/// Samples a series may hold back from its growth tracks (one fine bucket of 1 s samples).
const PENDING: usize = 10;

/// What a sample of a series feeds besides its latest value.
#[derive(Debug, Clone, Copy, Default)]
enum Feed {
    /// No growth rule watches the series' own value.
    #[default]
    Nothing,
    /// Each sample goes straight to the growth tracks (before the first sample, or when the
    /// tracks' buckets differ).
    Direct,
    /// Samples inside the tracks' common current fine bucket wait in [`Hot::pending`] and
    /// reach the tracks together, when the bucket closes or the buffer is full.
    Buffered(BucketKey),
}

/// Per-sample state of a registered series, kept dense by id apart from the detectors.
///
/// Why: a round touches every series, and a growth track is a heap object of its own; a
/// sample that closes no bucket (9 in 10 at 1 s samples and 10 s buckets) then only writes
/// here, walking one array in id order instead of a few scattered cache lines per series.
/// Buffering changes nothing the detectors see: a sample inside the current bucket only
/// adds to that bucket's sample buffer, and the pending ones are added, in order, before any
/// sample that could close it.
#[derive(Debug, Clone, Default)]
struct Hot {
    value: f64,
    seen: f64,
    tick: u64,
    /// Value before a suspected restart (one sample dropped near zero).
    reset_from: Option<f64>,
    resets: u32,
    /// The series has detector state (`Some` in `slots`).
    live: bool,
    /// Rules over several series (relative growth, ceilings, divergence) watch it.
    paired: bool,
    feed: Feed,
    n_pending: u8,
    pending: [f32; PENDING],
}

impl Hot {
    fn new() -> Self {
        Self {
            value: f64::NAN,
            seen: f64::NEG_INFINITY,
            ..Self::default()
        }
    }
}

/// Detector state of a live series (one that has been sampled and is not stale).
#[derive(Debug)]
struct Series {
    plain: Vec<(usize, GrowthTrack)>,
    relative: Vec<RelativeTrack>,
    ceilings: Vec<Ceiling>,
    divergence: Vec<usize>,
}

/// Runs a [`RuleSet`] over sampled values and reports findings as they fire and resolve.
///
/// Feed it with [`observe`](Self::observe) once per sampling round, in non-decreasing time;
/// a caller that samples the same names every round can [`register`](Self::register) each
/// name once and feed [`observe_ids`](Self::observe_ids) instead, which skips the lookup by
/// name (both run the same detectors, and may be mixed).
/// It is single-threaded and clock-free: `t` is whatever seconds the caller uses (Unix
/// time for the live watchdog, recording time offline), so replaying a recording gives the
/// same findings as watching live.
///
/// Robustness: non-finite values are ignored; a series may appear late, skip rounds or
/// vanish (after [`EngineConfig::stale_after`] its findings resolve as `gone`); a sample
/// older than the series' previous one is ignored; a restart back to (near) zero resets the
/// series' growth state and resolves its growth findings as `reset`, and the ramp-up that
/// follows is covered by the growth warm-up.
///
/// Cost: a push into a bucket per sample, plus a hash lookup of the name when fed by name;
/// trend statistics run only when one of the series' buckets closes, and bucket boundaries
/// are staggered per series. Names of the rules' other series (loads, units, divergence
/// pairs) are resolved once, when a series is first seen, not per sample.
pub struct Engine {
    rules: RuleSet,
    growth: Vec<CompiledGrowth>,
    config: EngineConfig,
    /// Name → id; ids index `names` and `slots`. Registered names are kept for the
    /// engine's life (a stale series drops its detector state, not its id).
    index: Index,
    names: Vec<Box<str>>,
    hot: Vec<Hot>,
    slots: Vec<Option<Series>>,
    /// Live series (`Some` slots).
    live: usize,
    /// Per divergence rule: its state, the tick it was last evaluated, and its two series.
    divergence: Vec<(Sustained, u64)>,
    divergence_ids: Vec<(usize, usize)>,
    touched: Vec<usize>,
    due: Vec<usize>,
    tick: u64,
    last_sweep: f64,
    scratch: Scratch,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules)
            .field("series", &self.live)
            .finish()
    }
}

impl Engine {
    /// Builds an engine; fails if any rule is invalid.
    pub fn new(rules: RuleSet) -> Result<Self, ConfigError> {
        Self::with_config(rules, EngineConfig::default())
    }

    /// Builds an engine with explicit lifecycle settings.
    pub fn with_config(rules: RuleSet, config: EngineConfig) -> Result<Self, ConfigError> {
        rules.validate()?;
        if !(0.0..1.0).contains(&config.reset_fraction) {
            return Err(ConfigError::OutOfRange {
                rule: "engine".into(),
                field: "reset_fraction",
                value: config.reset_fraction,
                expected: "a fraction in 0..1, e.g. 0.1",
            });
        }
        let growth = rules
            .growth
            .iter()
            .map(|r| r.compile())
            .collect::<Result<Vec<_>, _>>()?;
        let divergence = rules
            .divergence
            .iter()
            .map(|_| (Sustained::default(), 0))
            .collect();
        let mut engine = Self {
            rules,
            growth,
            config,
            index: Index::default(),
            names: Vec::new(),
            hot: Vec::new(),
            slots: Vec::new(),
            live: 0,
            divergence,
            divergence_ids: Vec::new(),
            touched: Vec::new(),
            due: Vec::new(),
            tick: 0,
            last_sweep: f64::NEG_INFINITY,
            scratch: Scratch::default(),
        };
        for d in 0..engine.rules.divergence.len() {
            let (a, b) = {
                let r = &engine.rules.divergence[d];
                (r.series.clone(), r.other.clone())
            };
            let ids = (engine.id_of(&a), engine.id_of(&b));
            engine.divergence_ids.push(ids);
        }
        Ok(engine)
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Series currently tracked (sampled and not stale).
    pub fn series_count(&self) -> usize {
        self.live
    }

    /// The id of series `name` in this engine, registering it on first use (idempotent: the
    /// same name always gives the same id). Registering costs nothing per round: detector
    /// state is made when the series is first observed and dropped when it goes stale, while
    /// the id (and the name, a few bytes) stays valid for the engine's life.
    pub fn register(&mut self, name: &str) -> SeriesId {
        SeriesId(self.id_of(name) as u32)
    }

    /// The name `id` was registered under.
    ///
    /// # Panics
    /// If `id` does not come from this engine.
    pub fn name(&self, id: SeriesId) -> &str {
        &self.names[id.index()]
    }

    /// Feeds one sampling round at time `t` (seconds) and returns the transitions it caused.
    pub fn observe<'a, I>(&mut self, t: f64, values: I) -> Vec<Finding>
    where
        I: IntoIterator<Item = (&'a str, f64)>,
    {
        let mut out = Vec::new();
        self.observe_into(t, values, &mut out);
        out
    }

    /// Like [`observe`](Self::observe), appending transitions to `out` (no allocation when none).
    pub fn observe_into<'a, I>(&mut self, t: f64, values: I, out: &mut Vec<Finding>)
    where
        I: IntoIterator<Item = (&'a str, f64)>,
    {
        if !self.begin_round(t) {
            return;
        }
        for (name, v) in values {
            if v.is_finite() {
                let id = self.id_of(name);
                self.sample(t, id, v, out);
            }
        }
        self.end_round(t, out);
    }

    /// Like [`observe`](Self::observe), for series registered with [`register`](Self::register):
    /// the same detectors, without a lookup by name per sample.
    ///
    /// # Panics
    /// If an id does not come from this engine.
    pub fn observe_ids<I>(&mut self, t: f64, values: I) -> Vec<Finding>
    where
        I: IntoIterator<Item = (SeriesId, f64)>,
    {
        let mut out = Vec::new();
        self.observe_ids_into(t, values, &mut out);
        out
    }

    /// Like [`observe_ids`](Self::observe_ids), appending transitions to `out` (no
    /// allocation when none).
    ///
    /// # Panics
    /// If an id does not come from this engine.
    pub fn observe_ids_into<I>(&mut self, t: f64, values: I, out: &mut Vec<Finding>)
    where
        I: IntoIterator<Item = (SeriesId, f64)>,
    {
        if !self.begin_round(t) {
            return;
        }
        for (id, v) in values {
            assert!(
                id.index() < self.names.len(),
                "SeriesId {} was not registered with this engine",
                id.0
            );
            if v.is_finite() {
                self.sample(t, id.index(), v, out);
            }
        }
        self.end_round(t, out);
    }

    /// Starts a round at `t`; false when `t` is unusable (the round is ignored).
    fn begin_round(&mut self, t: f64) -> bool {
        if !t.is_finite() {
            return false;
        }
        self.tick += 1;
        self.touched.clear();
        true
    }

    /// Stores one finite sample of series `id` and runs its single-series growth rules.
    fn sample(&mut self, t: f64, id: usize, v: f64, out: &mut Vec<Finding>) {
        if !self.hot[id].live {
            self.insert(id);
        }
        let h = &mut self.hot[id];
        if t < h.seen || h.tick == self.tick {
            return;
        }
        let restarted = detect_restart(h, v, &self.config);
        h.value = v;
        h.seen = t;
        h.tick = self.tick;
        if h.paired {
            self.touched.push(id);
        }
        match h.feed {
            Feed::Nothing if !restarted => return,
            Feed::Buffered(key)
                if !restarted && usize::from(h.n_pending) < PENDING && key.holds(t) =>
            {
                h.pending[usize::from(h.n_pending)] = v as f32;
                h.n_pending += 1;
                return;
            }
            _ => {}
        }
        let s = self.slots[id].as_mut().expect("live");
        let pending = &h.pending[..usize::from(h.n_pending)];
        h.n_pending = 0;
        if !pending.is_empty() {
            for (_, tr) in &mut s.plain {
                tr.push_within(pending);
            }
        }
        if restarted {
            h.resets += 1;
            for (_, tr) in &mut s.plain {
                tr.reset(t, out);
            }
            for r in &mut s.relative {
                r.track.reset(t, out);
            }
        }
        if s.plain.is_empty() {
            return;
        }
        for (rule, tr) in &mut s.plain {
            let ctx = Context {
                series: &self.names[id],
                value: v,
                other: None,
            };
            tr.push(&self.growth[*rule], t, v, ctx, &mut self.scratch, out);
        }
        h.feed = common_bucket(&s.plain).map_or(Feed::Direct, Feed::Buffered);
    }

    /// Ends a round: the rules over several series, then (every 10 s) the stale sweep.
    fn end_round(&mut self, t: f64, out: &mut Vec<Finding>) {
        self.paired(t, out);
        if t - self.last_sweep >= 10.0 {
            self.last_sweep = t;
            self.sweep(t, out);
        }
    }

    /// The id of `name`, registering it (without detector state) when new.
    fn id_of(&mut self, name: &str) -> usize {
        if let Some(&id) = self.index.get(name) {
            return id as usize;
        }
        let id = self.names.len();
        let id32 = u32::try_from(id).expect("fewer than 2^32 series names");
        self.names.push(name.into());
        self.hot.push(Hot::new());
        self.slots.push(None);
        self.index.insert(name.into(), id32);
        id
    }

    /// Relative growth, ceilings and divergence: everything that needs this round's values
    /// of several series, so it runs after all of them were stored.
    fn paired(&mut self, t: f64, out: &mut Vec<Finding>) {
        let skew = self.config.pair_skew.as_secs_f64();
        let fresh = |hot: &[Hot], id: usize| {
            let h = &hot[id];
            (h.live && t - h.seen <= skew).then_some((h.value, h.resets))
        };
        self.due.clear();
        for k in 0..self.touched.len() {
            let id = self.touched[k];
            let n_rel = self.slots[id].as_ref().map_or(0, |s| s.relative.len());
            for j in 0..n_rel {
                let (rule, load_id) = {
                    let r = &self.slots[id].as_ref().expect("live").relative[j];
                    (r.rule, r.load)
                };
                let c = &self.growth[rule];
                let load_name = &self.names[load_id];
                let Some((load, load_resets)) = fresh(&self.hot, load_id) else {
                    continue;
                };
                let value = self.hot[id].value;
                let s = self.slots[id].as_mut().expect("live");
                let r = &mut s.relative[j];
                if r.load_resets != load_resets {
                    r.load_resets = load_resets;
                    r.track.reset(t, out);
                }
                if load > 0.0 {
                    let ratio = value / load;
                    let ctx = Context {
                        series: &self.names[id],
                        value,
                        other: Some((load_name, load)),
                    };
                    r.track.push(c, t, ratio, ctx, &mut self.scratch, out);
                }
            }
            let n_ceil = self.slots[id].as_ref().map_or(0, |s| s.ceilings.len());
            for j in 0..n_ceil {
                let (rule, per) = {
                    let c = &self.slots[id].as_ref().expect("live").ceilings[j];
                    (&self.rules.ceiling[c.rule], c.per)
                };
                let unit = per.and_then(|p| fresh(&self.hot, p)).map(|(v, _)| v);
                let Some(limit) = rule.limit_for(unit) else {
                    continue;
                };
                let s = self.slots[id].as_mut().expect("live");
                let (value, name) = (self.hot[id].value, &self.names[id]);
                let clear = rule.clear_after.as_secs_f64();
                s.ceilings[j].state.step(
                    t,
                    value > limit,
                    rule.sustain.as_secs_f64(),
                    clear,
                    out,
                    |since, at| rule.finding(name, value, unit, limit, since, at),
                );
            }
            let s = self.slots[id].as_ref().expect("live");
            for &d in &s.divergence {
                if self.divergence[d].1 != self.tick {
                    self.divergence[d].1 = self.tick;
                    self.due.push(d);
                }
            }
        }
        for &d in &self.due {
            let rule = &self.rules.divergence[d];
            let (a_id, b_id) = self.divergence_ids[d];
            let (Some((a, _)), Some((b, _))) = (fresh(&self.hot, a_id), fresh(&self.hot, b_id))
            else {
                continue;
            };
            let (violated, expected) = rule.check(a, b);
            let (sustain, clear) = (rule.sustain.as_secs_f64(), rule.clear_after.as_secs_f64());
            self.divergence[d]
                .0
                .step(t, violated, sustain, clear, out, |since, at| {
                    rule.finding(a, b, expected, since, at)
                });
        }
    }

    /// Makes the detector state of registered series `id`, which has none (first sample, or
    /// back after going stale), resolving the other series its rules pair it with.
    fn insert(&mut self, id: usize) {
        // Owned: registering the paired series below grows `names`.
        let name = self.names[id].clone();
        let name = &*name;
        let phase = {
            let mut h = Fnv::default();
            h.write(name.as_bytes());
            // Top 53 bits → [0, 1): bucket boundaries spread evenly across series.
            (h.finish() >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut s = Series {
            plain: Vec::new(),
            relative: Vec::new(),
            ceilings: Vec::new(),
            divergence: Vec::new(),
        };
        for i in 0..self.growth.len() {
            let c = &self.growth[i];
            if c.rule.series.matches(name) {
                let track = c.track(phase);
                match c.rule.relative_to.clone() {
                    None => s.plain.push((i, track)),
                    Some(load) if load != name => {
                        let load = self.id_of(&load);
                        s.relative.push(RelativeTrack {
                            rule: i,
                            load,
                            load_resets: 0,
                            track,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        for i in 0..self.rules.ceiling.len() {
            let r = &self.rules.ceiling[i];
            if r.series.matches(name) {
                let per = r.per().map(str::to_owned);
                let per = per.map(|p| self.id_of(&p));
                s.ceilings.push(Ceiling {
                    rule: i,
                    per,
                    state: Sustained::default(),
                });
            }
        }
        for (i, r) in self.rules.divergence.iter().enumerate() {
            if r.series == name || r.other == name {
                s.divergence.push(i);
            }
        }
        self.hot[id] = Hot {
            live: true,
            paired: !(s.relative.is_empty() && s.ceilings.is_empty() && s.divergence.is_empty()),
            feed: if s.plain.is_empty() {
                Feed::Nothing
            } else {
                Feed::Direct
            },
            ..Hot::new()
        };
        self.slots[id] = Some(s);
        self.live += 1;
    }

    /// Drops series not seen for `stale_after`, resolving what depended on them.
    fn sweep(&mut self, t: f64, out: &mut Vec<Finding>) {
        let stale_before = t - self.config.stale_after.as_secs_f64();
        for id in 0..self.slots.len() {
            let Some(s) = &mut self.slots[id] else {
                continue;
            };
            if self.hot[id].seen >= stale_before {
                continue;
            }
            for (_, tr) in &mut s.plain {
                tr.gone(t, out);
            }
            for r in &mut s.relative {
                r.track.gone(t, out);
            }
            for c in &mut s.ceilings {
                c.state.gone(t, out);
            }
            for &d in &s.divergence {
                self.divergence[d].0.gone(t, out);
            }
            self.slots[id] = None;
            self.hot[id] = Hot::new();
            self.live -= 1;
        }
        // Relative tracks whose load vanished can no longer resolve on their own.
        for id in 0..self.slots.len() {
            let Some(s) = &self.slots[id] else { continue };
            if s.relative.iter().all(|r| r.track.active().is_none()) {
                continue;
            }
            let gone: Vec<usize> = s
                .relative
                .iter()
                .enumerate()
                .filter(|(_, r)| self.slots[r.load].is_none())
                .map(|(j, _)| j)
                .collect();
            let s = self.slots[id].as_mut().expect("live");
            for j in gone {
                s.relative[j].track.gone(t, out);
            }
        }
    }

    /// Findings currently firing.
    pub fn active(&self) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = Vec::new();
        for s in self.slots.iter().flatten() {
            v.extend(s.plain.iter().filter_map(|(_, tr)| tr.active()));
            v.extend(s.relative.iter().filter_map(|r| r.track.active()));
            v.extend(s.ceilings.iter().filter_map(|c| c.state.active()));
        }
        v.extend(self.divergence.iter().filter_map(|(d, _)| d.active()));
        v
    }

    /// Bytes of detector state for one series watched by every growth rule of this engine
    /// (history, detector state and bookkeeping, excluding the name's characters, which are
    /// kept twice: in the id table and the name index).
    pub fn state_bytes_per_series(&self) -> usize {
        let tracks: usize = self
            .growth
            .iter()
            .map(|c| c.state_bytes() + std::mem::size_of::<(usize, GrowthTrack)>())
            .sum();
        std::mem::size_of::<Option<Series>>()
            + std::mem::size_of::<Hot>()
            + std::mem::size_of::<Box<str>>()
            + std::mem::size_of::<(Box<str>, u32)>()
            + tracks
    }
}

/// The fine bucket all of a series' plain tracks are in, when they share one (the common
/// case: one growth rule); `None` when they differ. Rules with the same bucket width but
/// different `coarse_factor`s differ too (a history's phase is a fraction of its coarse
/// bucket), so such a series takes the direct path: slower, with the same findings.
fn common_bucket(plain: &[(usize, GrowthTrack)]) -> Option<BucketKey> {
    let first = plain.first()?.1.bucket_key()?;
    plain[1..]
        .iter()
        .all(|(_, tr)| tr.bucket_key() == Some(first))
        .then_some(first)
}

/// Counter restart: two samples in a row at or below `reset_fraction` of the value before.
fn detect_restart(s: &mut Hot, v: f64, cfg: &EngineConfig) -> bool {
    if let Some(before) = s.reset_from.take() {
        return v <= cfg.reset_fraction * before;
    }
    if s.value.is_finite() && s.value >= cfg.reset_min_level && v <= cfg.reset_fraction * s.value {
        s.reset_from = Some(s.value);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CeilingRule, DivergenceRule, GrowthRule, ResolvedBy, Selector};

    /// Growth (plain and relative to a load), a per-unit ceiling and a divergence: every
    /// path that pairs series by name.
    fn rules() -> RuleSet {
        let live = Selector::new(["live.*"]).expect("valid selector");
        RuleSet::default_growth(live.clone())
            .with(
                GrowthRule::new(live.clone())
                    .relative_to("load.streams")
                    .name("per-stream"),
            )
            .with(CeilingRule::per_unit(live, "load.streams", 1.5))
            .with(DivergenceRule::new("live.callbacks", "load.streams"))
    }

    /// Round `s`: a steady load, a leak from minute 10, and a series that stops at minute
    /// 20 (to go stale and come back at minute 40).
    fn round(s: u32) -> Vec<(&'static str, f64)> {
        let t = f64::from(s);
        let streams = (400.0 + 8.0 * (t * 7.3).sin()).round();
        let leaked = ((t - 600.0) / 10.0).max(0.0).floor();
        let mut v = vec![
            ("load.streams", streams),
            ("live.callbacks", streams + leaked),
        ];
        if !(1200..2400).contains(&s) {
            v.push(("live.other", 100.0 + (t * 3.1).sin().round()));
        }
        if s.is_multiple_of(7) {
            v.push(("live.other", f64::NAN));
        }
        v
    }

    #[test]
    fn ids_and_names_give_the_same_findings() {
        let mut by_name = Engine::new(rules()).expect("valid rules");
        let mut by_id = Engine::new(rules()).expect("valid rules");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for s in 0..3600 {
            let t = f64::from(s);
            let values = round(s);
            by_name.observe_into(t, values.iter().copied(), &mut a);
            let ids: Vec<(SeriesId, f64)> = values
                .iter()
                .map(|&(n, v)| (by_id.register(n), v))
                .collect();
            by_id.observe_ids_into(t, ids, &mut b);
            if s == 2000 {
                // `live.other` went stale (and comes back at 2400 with fresh state).
                assert_eq!((by_name.series_count(), by_id.series_count()), (2, 2));
            }
        }
        assert!(a.iter().any(|f| f.rule == crate::RuleKind::Divergence));
        assert!(a.iter().any(|f| f.rule == crate::RuleKind::Ceiling));
        assert_eq!(a, b);
        assert_eq!((by_name.series_count(), by_id.series_count()), (3, 3));
    }

    /// Samples held back inside a bucket (the engine's fast path) must give exactly the
    /// findings of samples pushed one by one. A second rule with another bucket width makes
    /// the same series take the direct path in `direct`; the default rule's findings must
    /// match, through a leak from the first sample, a restart with samples pending, 4
    /// samples a second (more than a bucket's buffer holds) and a gap.
    #[test]
    fn buffered_samples_give_the_same_findings_as_direct_ones() {
        let live = Selector::new(["live.*"]).expect("valid selector");
        let mut buffered = Engine::new(RuleSet::default_growth(live.clone())).expect("valid");
        let mut direct = Engine::new(
            RuleSet::default_growth(live.clone()).with(
                GrowthRule::new(live)
                    .bucket(Duration::from_secs(12))
                    .name("twelve"),
            ),
        )
        .expect("valid");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut t = 0.0f64;
        while t < 5400.0 {
            // A leak of 2%/min from the first sample, restarted at 30 min (mid-bucket).
            let since = if t < 1803.5 { t } else { t - 1803.5 };
            let level = 1000.0 * (1.0 + 0.02 / 60.0 * since);
            let noise = 15.0 * ((t * 12.9898).sin() * 43_758.545).fract();
            let v = if (1803.5..1805.0).contains(&t) {
                0.0
            } else {
                level + noise
            };
            let gap = (3000.0..3100.0).contains(&t);
            if !gap {
                buffered.observe_into(t, [("live.x", v)], &mut a);
                direct.observe_into(t, [("live.x", v)], &mut b);
            }
            t += if (4000.0..4300.0).contains(&t) {
                0.25
            } else {
                0.5
            };
        }
        b.retain(|f| f.name != "twelve");
        assert!(a.iter().any(|f| f.resolved_by == Some(ResolvedBy::Reset)));
        assert!(a.len() >= 3, "{a:#?}");
        assert_eq!(a, b);
    }

    #[test]
    fn register_is_idempotent_and_names_round_trip() {
        let mut e = Engine::new(rules()).expect("valid rules");
        let x = e.register("live.x");
        assert_eq!(e.register("live.x"), x);
        let y = e.register("live.y");
        assert_ne!(x, y);
        assert_eq!((e.name(x), e.name(y)), ("live.x", "live.y"));
        // Registered is not observed: no detector state yet.
        assert_eq!(e.series_count(), 0);
        e.observe_ids(1.0, [(x, 1.0), (y, f64::NAN)]);
        assert_eq!(e.series_count(), 1);
        assert_eq!(e.observe(2.0, [("live.x", 2.0)]), Vec::new());
        assert_eq!(e.series_count(), 1);
    }

    #[test]
    #[should_panic(expected = "not registered with this engine")]
    fn an_id_from_another_engine_is_refused() {
        let mut other = Engine::new(rules()).expect("valid rules");
        for i in 0..10 {
            other.register(&format!("live.{i}"));
        }
        let foreign = other.register("live.foreign");
        let mut e = Engine::new(RuleSet::new()).expect("valid rules");
        e.observe_ids(1.0, [(foreign, 1.0)]);
    }
}

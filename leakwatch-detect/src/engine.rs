//! The engine: routes samples to the rules that watch them and collects transitions.

use crate::ConfigError;
use crate::duration_secs;
use crate::finding::Finding;
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

type Index = HashMap<Box<str>, usize, BuildHasherDefault<Fnv>>;

#[derive(Debug)]
struct RelativeTrack {
    rule: usize,
    load_resets: u32,
    track: GrowthTrack,
}

#[derive(Debug)]
struct Series {
    name: Box<str>,
    value: f64,
    seen: f64,
    tick: u64,
    /// Value before a suspected restart (one sample dropped near zero).
    reset_from: Option<f64>,
    resets: u32,
    plain: Vec<(usize, GrowthTrack)>,
    relative: Vec<RelativeTrack>,
    ceilings: Vec<(usize, Sustained)>,
    divergence: Vec<usize>,
}

/// Runs a [`RuleSet`] over sampled values and reports findings as they fire and resolve.
///
/// Feed it with [`observe`](Self::observe) once per sampling round, in non-decreasing time.
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
/// Cost: a hash lookup and a push into a bucket per sample; trend statistics run only when
/// one of the series' buckets closes, and bucket boundaries are staggered per series.
pub struct Engine {
    rules: RuleSet,
    growth: Vec<CompiledGrowth>,
    config: EngineConfig,
    index: Index,
    slots: Vec<Option<Series>>,
    free: Vec<usize>,
    divergence: Vec<(Sustained, u64)>,
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
            .field("series", &self.index.len())
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
        Ok(Self {
            rules,
            growth,
            config,
            index: Index::default(),
            slots: Vec::new(),
            free: Vec::new(),
            divergence,
            touched: Vec::new(),
            due: Vec::new(),
            tick: 0,
            last_sweep: f64::NEG_INFINITY,
            scratch: Scratch::default(),
        })
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Series currently tracked.
    pub fn series_count(&self) -> usize {
        self.index.len()
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
        if !t.is_finite() {
            return;
        }
        self.tick += 1;
        self.touched.clear();
        for (name, v) in values {
            if !v.is_finite() {
                continue;
            }
            let id = match self.index.get(name) {
                Some(&id) => id,
                None => self.insert(name),
            };
            let s = self.slots[id].as_mut().expect("indexed slot is live");
            if t < s.seen || s.tick == self.tick {
                continue;
            }
            let restarted = detect_restart(s, v, &self.config);
            s.value = v;
            s.seen = t;
            s.tick = self.tick;
            if restarted {
                s.resets += 1;
                for (_, tr) in &mut s.plain {
                    tr.reset(t, out);
                }
                for r in &mut s.relative {
                    r.track.reset(t, out);
                }
            }
            for (rule, tr) in &mut s.plain {
                let ctx = Context {
                    series: &s.name,
                    value: v,
                    other: None,
                };
                tr.push(&self.growth[*rule], t, v, ctx, &mut self.scratch, out);
            }
            self.touched.push(id);
        }
        self.paired(t, out);
        if t - self.last_sweep >= 10.0 {
            self.last_sweep = t;
            self.sweep(t, out);
        }
    }

    /// Relative growth, ceilings and divergence: everything that needs this round's values
    /// of several series, so it runs after all of them were stored.
    fn paired(&mut self, t: f64, out: &mut Vec<Finding>) {
        let skew = self.config.pair_skew.as_secs_f64();
        let fresh = |slots: &[Option<Series>], index: &Index, name: &str| {
            let s = slots[*index.get(name)?].as_ref()?;
            (t - s.seen <= skew).then_some((s.value, s.resets))
        };
        self.due.clear();
        for k in 0..self.touched.len() {
            let id = self.touched[k];
            let n_rel = self.slots[id].as_ref().map_or(0, |s| s.relative.len());
            for j in 0..n_rel {
                let rule = self.slots[id].as_ref().expect("live").relative[j].rule;
                let c = &self.growth[rule];
                let load_name = c
                    .rule
                    .relative_to
                    .as_deref()
                    .expect("relative track has a load");
                let Some((load, load_resets)) = fresh(&self.slots, &self.index, load_name) else {
                    continue;
                };
                let s = self.slots[id].as_mut().expect("live");
                let r = &mut s.relative[j];
                if r.load_resets != load_resets {
                    r.load_resets = load_resets;
                    r.track.reset(t, out);
                }
                if load > 0.0 {
                    let ratio = s.value / load;
                    let ctx = Context {
                        series: &s.name,
                        value: s.value,
                        other: Some((load_name, load)),
                    };
                    r.track.push(c, t, ratio, ctx, &mut self.scratch, out);
                }
            }
            let n_ceil = self.slots[id].as_ref().map_or(0, |s| s.ceilings.len());
            for j in 0..n_ceil {
                let rule =
                    &self.rules.ceiling[self.slots[id].as_ref().expect("live").ceilings[j].0];
                let unit = rule
                    .per()
                    .and_then(|p| fresh(&self.slots, &self.index, p))
                    .map(|(v, _)| v);
                let Some(limit) = rule.limit_for(unit) else {
                    continue;
                };
                let s = self.slots[id].as_mut().expect("live");
                let (value, name) = (s.value, &s.name);
                let clear = rule.clear_after.as_secs_f64();
                s.ceilings[j].1.step(
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
            let (Some((a, _)), Some((b, _))) = (
                fresh(&self.slots, &self.index, &rule.series),
                fresh(&self.slots, &self.index, &rule.other),
            ) else {
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

    fn insert(&mut self, name: &str) -> usize {
        let phase = {
            let mut h = Fnv::default();
            h.write(name.as_bytes());
            // Top 53 bits → [0, 1): bucket boundaries spread evenly across series.
            (h.finish() >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut s = Series {
            name: name.into(),
            value: f64::NAN,
            seen: f64::NEG_INFINITY,
            tick: 0,
            reset_from: None,
            resets: 0,
            plain: Vec::new(),
            relative: Vec::new(),
            ceilings: Vec::new(),
            divergence: Vec::new(),
        };
        for (i, c) in self.growth.iter().enumerate() {
            if c.rule.series.matches(name) {
                let track = c.track(phase);
                match &c.rule.relative_to {
                    None => s.plain.push((i, track)),
                    Some(load) if load.as_str() != name => s.relative.push(RelativeTrack {
                        rule: i,
                        load_resets: 0,
                        track,
                    }),
                    Some(_) => {}
                }
            }
        }
        for (i, r) in self.rules.ceiling.iter().enumerate() {
            if r.series.matches(name) {
                s.ceilings.push((i, Sustained::default()));
            }
        }
        for (i, r) in self.rules.divergence.iter().enumerate() {
            if r.series == name || r.other == name {
                s.divergence.push(i);
            }
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(s);
                id
            }
            None => {
                self.slots.push(Some(s));
                self.slots.len() - 1
            }
        };
        self.index.insert(name.into(), id);
        id
    }

    /// Drops series not seen for `stale_after`, resolving what depended on them.
    fn sweep(&mut self, t: f64, out: &mut Vec<Finding>) {
        let stale_before = t - self.config.stale_after.as_secs_f64();
        for id in 0..self.slots.len() {
            let Some(s) = &mut self.slots[id] else {
                continue;
            };
            if s.seen >= stale_before {
                continue;
            }
            for (_, tr) in &mut s.plain {
                tr.gone(t, out);
            }
            for r in &mut s.relative {
                r.track.gone(t, out);
            }
            for (_, c) in &mut s.ceilings {
                c.gone(t, out);
            }
            for &d in &s.divergence {
                self.divergence[d].0.gone(t, out);
            }
            self.index.remove(&s.name);
            self.slots[id] = None;
            self.free.push(id);
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
                .filter(|(_, r)| {
                    let load = self.growth[r.rule]
                        .rule
                        .relative_to
                        .as_deref()
                        .unwrap_or_default();
                    !self.index.contains_key(load)
                })
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
            v.extend(s.ceilings.iter().filter_map(|(_, c)| c.active()));
        }
        v.extend(self.divergence.iter().filter_map(|(d, _)| d.active()));
        v
    }

    /// Bytes of detector state for one series watched by every growth rule of this engine
    /// (history, detector state and bookkeeping, excluding the name's characters).
    pub fn state_bytes_per_series(&self) -> usize {
        let tracks: usize = self
            .growth
            .iter()
            .map(|c| c.state_bytes() + std::mem::size_of::<(usize, GrowthTrack)>())
            .sum();
        std::mem::size_of::<Series>() + std::mem::size_of::<(Box<str>, usize)>() + tracks
    }
}

/// Counter restart: two samples in a row at or below `reset_fraction` of the value before.
fn detect_restart(s: &mut Series, v: f64, cfg: &EngineConfig) -> bool {
    if let Some(before) = s.reset_from.take() {
        return v <= cfg.reset_fraction * before;
    }
    if s.value.is_finite() && s.value >= cfg.reset_min_level && v <= cfg.reset_fraction * s.value {
        s.reset_from = Some(s.value);
    }
    false
}

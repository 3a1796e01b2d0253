//! Cost benchmark: CPU per tick and state per series for 10,000 series sampled every second.
//!
//! `cargo bench -p leakwatch-detect --bench cost` runs, for 10k series:
//! * baseline A: pushing each sample into a plain per-series ring (the least any history costs);
//! * baseline B: an engine with no rules (name lookup and latest value only);
//! * the default growth rule on all series, healthy (typical: most evaluations stop at the
//!   cheap new-high check), fed by name and fed by id (as the watchdog feeds it);
//! * the default growth rule with every series leaking (worst case: full statistics on
//!   every evaluation).
//!
//! * the default growth rule on leaking series during their first 10 min (the warm-up, when
//!   only the start-up test runs, every fine bucket).
//!
//! Each case but the last runs 10 min of ticks untimed (growth warm-up), then 10 min timed. Target:
//! ≤ 1% of one core, i.e. ≤ 10 ms of CPU per 1 s tick for 10k series.

mod support;

use leakwatch_detect::{Engine, RuleSet, Selector};
use std::time::Instant;
use support::Rng;

const SERIES: usize = 10_000;
const WARM: usize = 600;
const TIMED: usize = 600;

struct Feed {
    names: Vec<String>,
    level: Vec<f64>,
    rng: Rng,
}

impl Feed {
    fn new() -> Self {
        let mut rng = Rng::new(42);
        let names = (0..SERIES)
            .map(|i| format!("live.service{}.objects{}", i % 97, i))
            .collect();
        let level = (0..SERIES)
            .map(|_| 10f64.powf(rng.range(2.5, 3.5)))
            .collect();
        Self { names, level, rng }
    }
    /// Values of one tick; `leak` adds 1%/min of the level.
    fn tick(&mut self, t: f64, leak: bool, out: &mut Vec<f64>) {
        out.clear();
        for &l in &self.level {
            let trend = if leak { 0.01 / 60.0 * l * t } else { 0.0 };
            out.push((l + trend + 0.03 * l * self.rng.normal()).round());
        }
    }
}

/// Runs `step` for WARM + TIMED ticks, timing only the last TIMED; returns ns per tick.
fn measure(leak: bool, step: impl FnMut(f64, &[String], &[f64])) -> f64 {
    measure_from(WARM, leak, step)
}

/// Like [`measure`], timing the TIMED ticks after `warm` untimed ones (0: the series' first
/// minutes, when only the start-up test runs).
fn measure_from(warm: usize, leak: bool, mut step: impl FnMut(f64, &[String], &[f64])) -> f64 {
    let mut feed = Feed::new();
    let mut vals = Vec::with_capacity(SERIES);
    let mut spent = 0u128;
    for s in 0..warm + TIMED {
        let t = s as f64;
        feed.tick(t, leak, &mut vals);
        let start = Instant::now();
        step(t, &feed.names, &vals);
        if s >= warm {
            spent += start.elapsed().as_nanos();
        }
    }
    spent as f64 / TIMED as f64
}

fn report(label: &str, ns_per_tick: f64, baseline: Option<f64>) {
    let per_series = ns_per_tick / SERIES as f64;
    let core_pct = ns_per_tick / 1e9 * 100.0;
    let vs = baseline.map_or(String::new(), |b| {
        format!("  ({:.1}× baseline A)", ns_per_tick / b)
    });
    println!(
        "{label:<44} {per_series:>8.0} ns/series/tick  {:>7.2} ms/tick  {core_pct:>6.3}% of one core{vs}",
        ns_per_tick / 1e6
    );
}

fn main() {
    println!(
        "cost benchmark: {SERIES} series, 1 s ticks, {WARM} ticks warm-up, {TIMED} ticks timed\n"
    );

    let mut rings: Vec<([f32; 64], usize)> = vec![([0.0; 64], 0); SERIES];
    let base_a = measure(false, |_, _, vals| {
        for ((ring, pos), v) in rings.iter_mut().zip(vals) {
            ring[*pos % 64] = *v as f32;
            *pos += 1;
        }
    });
    std::hint::black_box(&rings);
    report("baseline A: push into a per-series ring", base_a, None);

    let mut empty = Engine::new(RuleSet::new()).expect("valid");
    let base_b = measure(false, |t, names, vals| {
        let out = empty.observe(
            t,
            names.iter().map(String::as_str).zip(vals.iter().copied()),
        );
        std::hint::black_box(out);
    });
    report("baseline B: engine, no rules", base_b, Some(base_a));

    let rules = || RuleSet::default_growth(Selector::new(["live.*"]).expect("valid"));
    let mut fired = 0usize;
    let mut healthy = Engine::new(rules()).expect("valid");
    let bytes = healthy.state_bytes_per_series();
    let ns_healthy = measure(false, |t, names, vals| {
        let out = healthy.observe(
            t,
            names.iter().map(String::as_str).zip(vals.iter().copied()),
        );
        fired += out.len();
    });
    report(
        "default growth rule, healthy series",
        ns_healthy,
        Some(base_a),
    );
    let healthy_fired = fired;

    // As the watchdog feeds it: names registered once, samples by id.
    let mut by_id = Engine::new(rules()).expect("valid");
    let mut ids = Vec::new();
    let ns_ids = measure(false, |t, names, vals| {
        if ids.is_empty() {
            ids = names.iter().map(|n| by_id.register(n)).collect();
        }
        let out = by_id.observe_ids(t, ids.iter().copied().zip(vals.iter().copied()));
        fired += out.len();
    });
    report(
        "default growth rule, healthy, fed by id",
        ns_ids,
        Some(base_a),
    );

    let mut leaking = Engine::new(rules()).expect("valid");
    fired = 0;
    let ns_leak = measure(true, |t, names, vals| {
        let out = leaking.observe(
            t,
            names.iter().map(String::as_str).zip(vals.iter().copied()),
        );
        fired += out.len();
    });
    report(
        "default growth rule, every series leaking",
        ns_leak,
        Some(base_a),
    );

    let mut young = Engine::new(rules()).expect("valid");
    let mut young_fired = 0usize;
    let ns_young = measure_from(0, true, |t, names, vals| {
        let out = young.observe(
            t,
            names.iter().map(String::as_str).zip(vals.iter().copied()),
        );
        young_fired += out.len();
    });
    report(
        "first 10 min (start-up test), every series leaking",
        ns_young,
        Some(base_a),
    );

    println!(
        "\nstate per series (default growth rule): {bytes} bytes (+ the name), {:.1} MB for {SERIES} series",
        (bytes * SERIES) as f64 / 1e6
    );
    println!(
        "findings: {healthy_fired} on healthy series, {fired} on leaking series, \
         {young_fired} on leaking series in their first 10 min"
    );
    let worst = ns_healthy.max(ns_leak).max(ns_young) / 1e9 * 100.0;
    println!(
        "target: ≤ 1% of one core for {SERIES} series at 1 s: measured worst case {worst:.3}% {}",
        if worst <= 1.0 { "PASS" } else { "FAIL" }
    );
}

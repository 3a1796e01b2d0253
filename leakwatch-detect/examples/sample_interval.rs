//! How the sample interval changes how soon a leak is found.
//!
//! `cargo run --release -p leakwatch-detect --example sample_interval`
//!
//! The detection bench samples every second, as the watchdog does by default. Recordings
//! from elsewhere (a Graphite export, a watchdog with a longer interval) hold fewer samples
//! per minute, so the same rise stands out against the noise later. This runs the default
//! growth rule on 40 series per case: level 1000, white noise σ = 3% of it, a linear leak
//! from the first sample, sampled every 1, 5, 10, 30 or 60 s, and prints when each case is
//! found, counted from the first sample, and how many are not found within the hour.

use leakwatch_detect::{Engine, FindingState, RuleSet, Selector};

/// xorshift64 with Box–Muller: deterministic, so the output is the same on every run.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// Seconds from the first sample to the first growth finding (`None`: not within the hour).
fn found_after(interval: f64, per_min: f64, noise: &mut Noise) -> Option<f64> {
    let rules = RuleSet::default_growth(Selector::new(["app.*"]).expect("valid selector"));
    let mut engine = Engine::new(rules).expect("default rules are valid");
    let level = 1000.0;
    let mut t = 0.0;
    while t < 3600.0 {
        let v = level + per_min / 100.0 / 60.0 * level * t + 0.03 * level * noise.normal();
        let fired = engine
            .observe(t, [("app.objects", v.round())])
            .iter()
            .any(|f| f.state == FindingState::Firing);
        if fired {
            return Some(t);
        }
        t += interval;
    }
    None
}

fn main() {
    const SERIES: usize = 40;
    let mut noise = Noise(12_345);
    println!("interval  leak      median   p90   not found within 1 h (of {SERIES})");
    for interval in [1.0, 5.0, 10.0, 30.0, 60.0] {
        for per_min in [10.0, 1.0] {
            let mut at: Vec<f64> = (0..SERIES)
                .map(|_| found_after(interval, per_min, &mut noise).unwrap_or(f64::INFINITY))
                .collect();
            at.sort_by(f64::total_cmp);
            let missed = at.iter().filter(|t| t.is_infinite()).count();
            println!(
                "{interval:>6} s  {per_min:>3}%/min  {:>6.0} s {:>5.0} s  {missed}",
                at[SERIES / 2],
                at[SERIES * 9 / 10]
            );
        }
    }
}

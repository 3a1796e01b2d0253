//! Synthetic series with known truth, shared by the benches.
//!
//! Everything is generated from a fixed seed (splitmix64 + Box–Muller), so runs are
//! reproducible. Levels and noise are relative to a per-series base level `L` drawn
//! log-uniformly in [300, 3000].

#![allow(dead_code)]

/// splitmix64: tiny, fast, good enough for simulation.
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Standard normal (Box–Muller, caching the second value).
    pub fn normal(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// Ornstein–Uhlenbeck wander with stationary σ and correlation time τ, sampled every second.
pub struct Ou {
    x: f64,
    a: f64,
    b: f64,
}

impl Ou {
    pub fn new(rng: &mut Rng, sigma: f64, tau: f64) -> Self {
        let a = (-1.0 / tau).exp();
        Self {
            x: sigma * rng.normal(),
            a,
            b: sigma * (1.0 - a * a).sqrt(),
        }
    }
    pub fn step(&mut self, rng: &mut Rng) -> f64 {
        self.x = self.a * self.x + self.b * rng.normal();
        self.x
    }
}

/// What a scenario's series is supposed to trigger.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Truth {
    /// Healthy: any growth finding is a false positive.
    Healthy,
    /// Leaks from `onset` (seconds); a finding before it is a false positive.
    Leak { onset: f64 },
    /// Grows like a leak for a few minutes, then stops: no detector that finds a 1%/min
    /// leak within 5 min can tell it from a leak while it grows. Reported, not scored.
    Ambiguous,
}

/// One generated series: samples at t = 0, 1, 2, ... and an optional load series.
pub struct Generated {
    pub values: Vec<f64>,
    pub load: Option<Vec<f64>>,
    pub truth: Truth,
    /// Findings that fire before this time are not scored (reported as ambiguous): the
    /// first tooth of a sawtooth that starts with the series is a straight rise that stops,
    /// which no detector meeting the 2- and 5-minute targets can tell from a leak until it
    /// drops. A leak found after its onset is scored as found whenever that is.
    pub ambiguous_until: f64,
}

/// A named scenario: how to generate one series from an RNG.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub secs: usize,
    pub relative: bool,
    pub make: fn(&mut Rng, usize) -> Generated,
}

fn level(rng: &mut Rng) -> f64 {
    10f64.powf(rng.range(2.5, 3.5))
}

/// Base noise of every scenario unless stated: white σ = 3% of L. Correlated noise (which
/// hides trends far better than white noise) has its own scenarios: `ou_wander`,
/// `heavy_noise`, `wander_leak`.
struct Base {
    l: f64,
    white: f64,
    ou: Option<Ou>,
}

impl Base {
    fn new(_rng: &mut Rng, l: f64) -> Self {
        Self {
            l,
            white: 0.03,
            ou: None,
        }
    }
    fn with_wander(rng: &mut Rng, l: f64, white: f64, ou_sigma: f64) -> Self {
        Self {
            l,
            white,
            ou: Some(Ou::new(rng, ou_sigma * l, 100.0)),
        }
    }
    fn noise(&mut self, rng: &mut Rng) -> f64 {
        self.white * self.l * rng.normal() + self.ou.as_mut().map_or(0.0, |o| o.step(rng))
    }
}

fn count(v: f64) -> f64 {
    v.round().max(0.0)
}

fn onset(rng: &mut Rng) -> f64 {
    rng.range(900.0, 1500.0)
}

/// A linear leak of `per_min` % of L per minute, from the first sample (`from_start`) or
/// from an onset 15–25 min in.
fn linear_leak(rng: &mut Rng, n: usize, per_min: f64, from_start: bool) -> Generated {
    let l = level(rng);
    let t0 = if from_start { 0.0 } else { onset(rng) };
    let mut b = Base::new(rng, l);
    let values = (0..n)
        .map(|s| {
            let t = s as f64;
            let leak = per_min / 100.0 / 60.0 * l * (t - t0).max(0.0);
            count(l + leak + b.noise(rng))
        })
        .collect();
    Generated {
        values,
        load: None,
        truth: Truth::Leak { onset: t0 },
        ambiguous_until: 0.0,
    }
}

/// A healthy start-up fill that decelerates and levels off after about `settle` seconds:
/// from 0–30% of L to L, exponential (95% at `settle`) or ease-out `1 − (1 − t/T)^p`
/// (p 2–3, exactly flat from T); noise proportional to the current level.
fn fill(rng: &mut Rng, n: usize, settle: f64) -> Generated {
    let l = level(rng);
    let settle = settle * rng.range(0.8, 1.0);
    let start = rng.range(0.0, 0.3);
    let exponential = rng.uniform() < 0.5;
    let p = rng.range(2.0, 3.0);
    let mut b = Base::new(rng, l);
    let values = (0..n)
        .map(|s| {
            let x = s as f64 / settle;
            let shape = if exponential {
                1.0 - (-3.0 * x).exp()
            } else {
                1.0 - (1.0 - x.min(1.0)).powf(p)
            };
            let f = start + (1.0 - start) * shape;
            count(l * f + f * b.noise(rng))
        })
        .collect();
    Generated {
        values,
        load: None,
        truth: Truth::Healthy,
        ambiguous_until: 0.0,
    }
}

/// Diurnal load compressed to a 4 h period, ±30%, random phase; plus 1% white noise.
fn diurnal(rng: &mut Rng, n: usize, phase: f64) -> Vec<f64> {
    let conns = rng.range(300.0, 1500.0);
    (0..n)
        .map(|s| {
            let x = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * s as f64 / 14_400.0 + phase).sin();
            count(conns * x * (1.0 + 0.01 * rng.normal()))
        })
        .collect()
}

fn staircase(rng: &mut Rng, n: usize, from_start: bool) -> Generated {
    let l = level(rng);
    let t0 = if from_start { 0.0 } else { onset(rng) };
    let mut b = Base::new(rng, l);
    let values = (0..n)
        .map(|s| {
            let t = s as f64;
            let steps = if t < t0 {
                0.0
            } else {
                ((t - t0) / 240.0).floor() + 1.0
            };
            count(l * (1.0 + 0.03 * steps) + b.noise(rng))
        })
        .collect();
    Generated {
        values,
        load: None,
        truth: Truth::Leak { onset: t0 },
        ambiguous_until: 0.0,
    }
}

fn sawtooth_leak(rng: &mut Rng, n: usize, from_start: bool) -> Generated {
    let l = level(rng);
    let t0 = if from_start { 0.0 } else { onset(rng) };
    let period = rng.range(60.0, 300.0);
    let mut b = Base::new(rng, l);
    let values = (0..n)
        .map(|s| {
            let t = s as f64;
            let tooth = 0.1 * l * ((t / period).fract());
            let leak = 0.01 / 60.0 * l * (t - t0).max(0.0);
            l + tooth + leak + b.noise(rng)
        })
        .collect();
    Generated {
        values,
        load: None,
        truth: Truth::Leak { onset: t0 },
        ambiguous_until: period,
    }
}

fn wander_leak(rng: &mut Rng, n: usize, from_start: bool) -> Generated {
    let l = level(rng);
    let t0 = if from_start { 0.0 } else { onset(rng) };
    let mut b = Base::with_wander(rng, l, 0.02, 0.02);
    let values = (0..n)
        .map(|s| count(l + 0.01 / 60.0 * l * (s as f64 - t0).max(0.0) + b.noise(rng)))
        .collect();
    Generated {
        values,
        load: None,
        truth: Truth::Leak { onset: t0 },
        ambiguous_until: 0.0,
    }
}

/// Per-load leak under the daily swing: series = k(t)·load, k growing 1%/min from `t0`.
fn per_load_swing(rng: &mut Rng, n: usize, from_start: bool) -> Generated {
    let phase = rng.range(0.0, 2.0 * std::f64::consts::PI);
    let load = diurnal(rng, n, phase);
    let k = rng.range(0.5, 3.0);
    let t0 = if from_start { 0.0 } else { onset(rng) };
    let mut b = Base::new(rng, k * load[0]);
    let values = (0..n)
        .map(|s| {
            let per = k * (1.0 + 0.01 / 60.0 * (s as f64 - t0).max(0.0));
            count(per * load[s] + b.noise(rng))
        })
        .collect();
    Generated {
        values,
        load: Some(load),
        truth: Truth::Leak { onset: t0 },
        ambiguous_until: 0.0,
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "start_10pct",
            about: "leak from the first sample: linear 10%/min of L (the 2-minute target)",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 10.0, true),
        },
        Scenario {
            name: "start_5pct",
            about: "leak from the first sample: linear 5%/min of L",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 5.0, true),
        },
        Scenario {
            name: "start_1pct",
            about: "leak from the first sample: linear 1%/min of L (the 5-minute target)",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 1.0, true),
        },
        Scenario {
            name: "start_0.2pct",
            about: "leak from the first sample: linear 0.2%/min of L, 2 h of samples",
            secs: 7200,
            relative: false,
            make: |r, n| linear_leak(r, n, 0.2, true),
        },
        Scenario {
            name: "start_stairs",
            about: "leak from the first sample: staircase, +3% of L every 4 min",
            secs: 3600,
            relative: false,
            make: |r, n| staircase(r, n, true),
        },
        Scenario {
            name: "start_sawtooth",
            about: "leak from the first sample: 1%/min of L under an allocator sawtooth (+10% over 60-300 s, then drop)",
            secs: 3600,
            relative: false,
            make: |r, n| sawtooth_leak(r, n, true),
        },
        Scenario {
            name: "start_per_load",
            about: "leak from the first sample: per-load ratio +1%/min under the daily load swing (±30%, 4 h day); relative_to(load)",
            secs: 3600,
            relative: true,
            make: |r, n| per_load_swing(r, n, true),
        },
        Scenario {
            name: "start_noisy",
            about: "leak from the first sample: 1%/min of L on mean-reverting wander (OU σ 2%, τ 100 s) + 2% white",
            secs: 3600,
            relative: false,
            make: |r, n| wander_leak(r, n, true),
        },
        Scenario {
            name: "leak_10pct",
            about: "linear leak 10%/min of L from onset 15-25 min",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 10.0, false),
        },
        Scenario {
            name: "per_load_swing",
            about: "per-load ratio +1%/min from onset 15-25 min under the daily load swing; relative_to(load)",
            secs: 3600,
            relative: true,
            make: |r, n| per_load_swing(r, n, false),
        },
        Scenario {
            name: "fast_leak",
            about: "linear leak 1%/min of L from onset 15-25 min (the 5-minute target)",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 1.0, false),
        },
        Scenario {
            name: "very_fast_leak",
            about: "linear leak 5%/min of L",
            secs: 3600,
            relative: false,
            make: |r, n| linear_leak(r, n, 5.0, false),
        },
        Scenario {
            name: "slow_leak",
            about: "linear leak 0.2%/min of L (12%/h), 2 h of samples",
            secs: 7200,
            relative: false,
            make: |r, n| linear_leak(r, n, 0.2, false),
        },
        Scenario {
            name: "wander_leak",
            about: "linear leak 1%/min of L on a mean-reverting wander (OU σ 2% of L, τ 100 s) + 2% white",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let t0 = onset(rng);
                let mut b = Base::with_wander(rng, l, 0.02, 0.02);
                let values = (0..n)
                    .map(|s| count(l + 0.01 / 60.0 * l * (s as f64 - t0).max(0.0) + b.noise(rng)))
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Leak { onset: t0 },
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "step_leak",
            about: "staircase: +3% of L every 4 min (leak in bursts), from onset",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let t0 = onset(rng);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let t = s as f64;
                        let steps = if t < t0 {
                            0.0
                        } else {
                            ((t - t0) / 240.0).floor() + 1.0
                        };
                        count(l * (1.0 + 0.03 * steps) + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Leak { onset: t0 },
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "sawtooth_leak",
            about: "allocator sawtooth (+10% of L over 60-300 s, then drop) with a 1%/min leak under it",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let t0 = onset(rng);
                let period = rng.range(60.0, 300.0);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let t = s as f64;
                        let tooth = 0.1 * l * ((t / period).fract());
                        let leak = 0.01 / 60.0 * l * (t - t0).max(0.0);
                        l + tooth + leak + b.noise(rng)
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Leak { onset: t0 },
                    ambiguous_until: period,
                }
            },
        },
        Scenario {
            name: "diurnal_leak",
            about: "series = k·load (load ±30% over a 4 h day) + leak 1%/min of L; relative_to(load)",
            secs: 3600,
            relative: true,
            make: |rng, n| {
                let phase = rng.range(0.0, 2.0 * std::f64::consts::PI);
                let load = diurnal(rng, n, phase);
                let k = rng.range(0.5, 3.0);
                let l = k * load[0];
                let t0 = onset(rng);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let leak = 0.01 / 60.0 * l * (s as f64 - t0).max(0.0);
                        count(k * load[s] + leak + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: Some(load),
                    truth: Truth::Leak { onset: t0 },
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "per_unit_leak",
            about: "load falls 30% over the hour while per-load ratio grows 1%/min: raw series ~flat; relative_to(load)",
            secs: 3600,
            relative: true,
            make: |rng, n| {
                let conns = rng.range(300.0, 1500.0);
                let load: Vec<f64> = (0..n)
                    .map(|s| {
                        count(
                            conns * (1.0 - 0.3 * s as f64 / n as f64) * (1.0 + 0.01 * rng.normal()),
                        )
                    })
                    .collect();
                let k = rng.range(0.5, 3.0);
                let t0 = onset(rng);
                let mut b = Base::new(rng, k * conns);
                let values = (0..n)
                    .map(|s| {
                        let per = k * (1.0 + 0.01 / 60.0 * (s as f64 - t0).max(0.0));
                        count(per * load[s] + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: Some(load),
                    truth: Truth::Leak { onset: t0 },
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "fill_1min",
            about: "healthy: start-up fill from 0-30% of L to L, ever slower, level from ~1 min (exponential or ease-out)",
            secs: 3600,
            relative: false,
            make: |r, n| fill(r, n, 60.0),
        },
        Scenario {
            name: "fill_3min",
            about: "healthy: the same, levelling off at ~3 min",
            secs: 3600,
            relative: false,
            make: |r, n| fill(r, n, 180.0),
        },
        Scenario {
            name: "fill_5min",
            about: "healthy: the same, levelling off at ~5 min",
            secs: 3600,
            relative: false,
            make: |r, n| fill(r, n, 300.0),
        },
        Scenario {
            name: "linear_startup",
            about: "ambiguous (not scored): start-up rising in a straight line from 0-30% of L to L over 1-5 min, flat after",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let ramp = rng.range(60.0, 300.0);
                let start = rng.range(0.0, 0.3);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let f = start + (1.0 - start) * (s as f64 / ramp).min(1.0);
                        count(l * f + f * b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Ambiguous,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "load_ramp",
            about: "healthy: deploy at t=0, load (connections) ramps from ~0 to C over 1-5 min (linear or S) then holds with the daily swing; series = k·load (half: + a fixed part); relative_to(load)",
            secs: 3600,
            relative: true,
            make: |rng, n| {
                let phase = rng.range(0.0, 2.0 * std::f64::consts::PI);
                let mut load = diurnal(rng, n, phase);
                let ramp = rng.range(60.0, 300.0);
                let s_shape = rng.uniform() < 0.5;
                for (s, x) in load.iter_mut().enumerate() {
                    let u = (s as f64 / ramp).min(1.0);
                    let f = if s_shape { u * u * (3.0 - 2.0 * u) } else { u };
                    *x = count(*x * (0.02 + 0.98 * f));
                }
                let c = load[n - 1];
                let k = rng.range(0.5, 3.0);
                let fixed = if rng.uniform() < 0.5 {
                    0.0
                } else {
                    rng.range(0.1, 0.4) * k * c
                };
                let mut b = Base::new(rng, k * c);
                let values = (0..n)
                    .map(|s| {
                        let share = (load[s] / c).min(1.5);
                        count(fixed + k * load[s] + share * b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: Some(load),
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "start_step",
            about: "healthy: flat from the first sample, at 1-8 min a one-off rise of 5-20% of L over 10-60 s, flat after",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let at = rng.range(60.0, 480.0);
                let ramp = rng.range(10.0, 60.0);
                let rise = rng.range(0.05, 0.2);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let shape = ((s as f64 - at) / ramp).clamp(0.0, 1.0);
                        count(l * (1.0 + rise * shape) + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "spikes",
            about: "healthy: flat with one-off spikes (+20-100% of L, 1-30 s, ~1 per 5 min)",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let mut b = Base::new(rng, l);
                let mut left = 0usize;
                let mut height = 0.0;
                let values = (0..n)
                    .map(|_| {
                        if left == 0 && rng.uniform() < 1.0 / 300.0 {
                            left = rng.range(1.0, 30.0) as usize;
                            height = rng.range(0.2, 1.0) * l;
                        }
                        let spike = if left > 0 {
                            left -= 1;
                            height
                        } else {
                            0.0
                        };
                        count(l + spike + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "sawtooth",
            about: "healthy: allocator/GC sawtooth, +10-30% of L over 60-300 s then drop",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let period = rng.range(60.0, 300.0);
                let amp = rng.range(0.1, 0.3);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| l * (1.0 + amp * (s as f64 / period).fract()) + b.noise(rng))
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: period,
                }
            },
        },
        Scenario {
            name: "heavy_noise",
            about: "healthy: white noise σ = 10% of L plus OU σ = 2%",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let mut ou = Ou::new(rng, 0.02 * l, 100.0);
                let values = (0..n)
                    .map(|_| count(l + 0.1 * l * rng.normal() + ou.step(rng)))
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "ou_wander",
            about: "healthy: mean-reverting OU wander σ = 5% of L (≈√L for a live count of ~400), τ = 100 s, plus 1% white",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let mut ou = Ou::new(rng, 0.05 * l, 100.0);
                let values = (0..n)
                    .map(|_| count(l + 0.01 * l * rng.normal() + ou.step(rng)))
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "load_following",
            about: "healthy: series = k·load, load rising 50% over the hour (morning ramp) plus diurnal; relative_to(load)",
            secs: 3600,
            relative: true,
            make: |rng, n| {
                let phase = rng.range(0.0, 2.0 * std::f64::consts::PI);
                let mut load = diurnal(rng, n, phase);
                for (s, x) in load.iter_mut().enumerate() {
                    *x = count(*x * (1.0 + 0.5 * s as f64 / n as f64));
                }
                let k = rng.range(0.5, 3.0);
                let mut b = Base::new(rng, k * load[0]);
                let values = (0..n).map(|s| count(k * load[s] + b.noise(rng))).collect();
                Generated {
                    values,
                    load: Some(load),
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "load_falls_flat",
            about: "healthy: series flat (half: independent of load; half: c + a·load, c ≥ 60%) while load falls 30% over the hour or swings ±30% diurnally; relative_to(load)",
            secs: 3600,
            relative: true,
            make: |rng, n| {
                // The CLI's case: `--load live.http.streams` on series that do not follow
                // the load (presence watches, resident memory) or only partly (a fixed pool
                // plus a per-stream part). Their ratio to a falling load rises; no leak.
                let phase = rng.range(0.0, 2.0 * std::f64::consts::PI);
                let mut load = diurnal(rng, n, phase);
                if rng.uniform() < 0.5 {
                    for (s, x) in load.iter_mut().enumerate() {
                        *x = count(*x * (1.0 - 0.3 * s as f64 / n as f64));
                    }
                }
                let l = level(rng);
                // Share of the level that does not follow load: 1 (flat) or 0.6-0.9.
                let fixed = if rng.uniform() < 0.5 {
                    1.0
                } else {
                    rng.range(0.6, 0.9)
                };
                let per = (1.0 - fixed) * l / load[0];
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| count(fixed * l + per * load[s] + b.noise(rng)))
                    .collect();
                Generated {
                    values,
                    load: Some(load),
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "level_shift",
            about: "healthy: flat, then at 15-45 min a one-off rise of 5-20% of L over 10-60 s (deploy, pool resize), flat after",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let at = rng.range(900.0, 2700.0);
                let ramp = rng.range(10.0, 60.0);
                let rise = rng.range(0.05, 0.2);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let shape = ((s as f64 - at) / ramp).clamp(0.0, 1.0);
                        count(l * (1.0 + rise * shape) + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "short_ramp",
            about: "ambiguous (not scored): at 15-45 min a linear rise of 1-3%/min of L for 2-5 min, flat after",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let at = rng.range(900.0, 2700.0);
                let per_min = rng.range(1.0, 3.0);
                let lasts = rng.range(120.0, 300.0);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let up = (s as f64 - at).clamp(0.0, lasts);
                        count(l * (1.0 + per_min / 100.0 / 60.0 * up) + b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Ambiguous,
                    ambiguous_until: 0.0,
                }
            },
        },
        Scenario {
            name: "restart",
            about: "healthy: flat, restarts to 0 at 20-40 min and ramps back (τ 30-120 s)",
            secs: 3600,
            relative: false,
            make: |rng, n| {
                let l = level(rng);
                let tr = rng.range(1200.0, 2400.0);
                let tau = rng.range(30.0, 120.0);
                let mut b = Base::new(rng, l);
                let values = (0..n)
                    .map(|s| {
                        let t = s as f64;
                        let shape = if t < tr {
                            1.0
                        } else {
                            1.0 - (-(t - tr) / tau).exp()
                        };
                        count(l * shape + shape * b.noise(rng))
                    })
                    .collect();
                Generated {
                    values,
                    load: None,
                    truth: Truth::Healthy,
                    ambiguous_until: 0.0,
                }
            },
        },
    ]
}

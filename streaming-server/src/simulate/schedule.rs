//! Every random choice of a run, drawn from `--seed` so that one seed gives one schedule:
//! each simulated client has its own generator (seeded by the run's seed and the client's
//! number), so its user, filter, lifetimes, ends and reconnects do not depend on how the
//! other clients' tasks interleave.

use std::time::Duration;

use super::args::{LifetimeDist, SimArgs};
use crate::fixture::FlowIx;

/// SplitMix64 of `seed` and `stream`: independent, well-mixed seeds for each generator.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of the poster (clients use their number; this cannot collide in practice).
pub const POSTER_STREAM: u64 = u64::MAX;
/// The generator of the presence toggler.
pub const TOGGLER_STREAM: u64 = u64::MAX - 1;

/// What a client does when a stream's lifetime is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Reconnect with the last id received, as EventSource does.
    Resume,
    /// Reconnect with an id older than any history (expects 409, then resyncs).
    Stale,
    /// Go away.
    Leave,
}

/// The plan for one connection of a client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnPlan {
    /// How long to keep the stream once open.
    pub lifetime: Duration,
    /// End it with a reset rather than a clean close.
    pub abort: bool,
    /// What to do after.
    pub next: Next,
    /// Connect as `active=true` (else `idle`).
    pub active: bool,
    /// Send the token and id as query parameters (browser EventSource) instead of headers.
    pub query_auth: bool,
    /// Multiplies the reconnect delay (0.5..1.5), so reconnects do not march in step.
    pub jitter: f64,
}

/// One client's generator and the fractions it draws with.
#[derive(Debug)]
pub struct ClientPlan {
    rng: fastrand::Rng,
    lifetime: Duration,
    dist: LifetimeDist,
    abort: f64,
    resume: f64,
    stale: f64,
}

impl ClientPlan {
    /// The plan of client number `index` of a run seeded with `seed`.
    pub fn new(seed: u64, index: u64, args: &SimArgs) -> ClientPlan {
        ClientPlan {
            rng: fastrand::Rng::with_seed(mix(seed, index)),
            lifetime: args.lifetime,
            dist: args.lifetime_dist,
            abort: args.abort_fraction,
            resume: args.resume_fraction,
            stale: args.stale_fraction,
        }
    }

    /// A position in `0..n` (which user to be).
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.usize(..n.max(1))
    }

    /// A non-empty subset of `memberships` (each kept with probability 0.6), sorted.
    pub fn filter(&mut self, memberships: &[FlowIx]) -> Vec<FlowIx> {
        let mut v: Vec<FlowIx> = memberships
            .iter()
            .copied()
            .filter(|_| self.rng.f64() < 0.6)
            .collect();
        if v.is_empty() && !memberships.is_empty() {
            v.push(memberships[self.rng.usize(..memberships.len())]);
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The plan of the next connection.
    pub fn next_connection(&mut self) -> ConnPlan {
        let lifetime = self.draw_lifetime();
        let abort = self.rng.f64() < self.abort;
        let u = self.rng.f64();
        let next = if u < self.resume {
            Next::Resume
        } else if u < self.resume + self.stale {
            Next::Stale
        } else {
            Next::Leave
        };
        ConnPlan {
            lifetime,
            abort,
            next,
            active: self.rng.f64() < 0.8,
            query_auth: self.rng.f64() < 0.25,
            jitter: 0.5 + self.rng.f64(),
        }
    }

    fn draw_lifetime(&mut self) -> Duration {
        let median = self.lifetime.as_secs_f64();
        // 1 - f64() is in (0, 1]: ln never sees 0.
        let u1 = 1.0 - self.rng.f64();
        let factor = match self.dist {
            LifetimeDist::LogNormal => {
                let u2 = self.rng.f64();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                z.exp()
            }
            // Exponential with median m has mean m / ln 2.
            LifetimeDist::Exponential => -u1.ln() / std::f64::consts::LN_2,
        };
        // Bounded so one draw cannot hold a stream for the whole of a long run, nor end it
        // before its head is read.
        Duration::from_secs_f64((median * factor).clamp(0.01, median * 20.0))
    }
}

/// Exponential gap before the next Poisson arrival at `rate` per second (`None` at rate 0).
pub fn poisson_gap(rng: &mut fastrand::Rng, rate: f64) -> Option<Duration> {
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let u = 1.0 - rng.f64();
    Some(Duration::from_secs_f64((-u.ln() / rate).min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(seed: u64, index: u64, args: &SimArgs, n: usize) -> Vec<ConnPlan> {
        let mut p = ClientPlan::new(seed, index, args);
        (0..n).map(|_| p.next_connection()).collect()
    }

    #[test]
    fn one_seed_one_schedule() {
        let args = SimArgs::default();
        assert_eq!(plans(7, 3, &args, 50), plans(7, 3, &args, 50));
        assert_ne!(plans(7, 3, &args, 50), plans(8, 3, &args, 50));
        assert_ne!(plans(7, 3, &args, 50), plans(7, 4, &args, 50));
        let mut a = ClientPlan::new(7, 3, &args);
        let mut b = ClientPlan::new(7, 3, &args);
        assert_eq!(a.filter(&[0, 1, 2, 5]), b.filter(&[0, 1, 2, 5]));
    }

    #[test]
    fn fractions_are_honoured() {
        let args = SimArgs {
            abort_fraction: 0.3,
            resume_fraction: 0.3,
            stale_fraction: 0.1,
            ..SimArgs::default()
        };
        let all: Vec<ConnPlan> = (0..200).flat_map(|i| plans(1, i, &args, 100)).collect();
        let frac = |f: &dyn Fn(&ConnPlan) -> bool| {
            all.iter().filter(|p| f(p)).count() as f64 / all.len() as f64
        };
        assert!((frac(&|p| p.abort) - 0.3).abs() < 0.02);
        assert!((frac(&|p| p.next == Next::Resume) - 0.3).abs() < 0.02);
        assert!((frac(&|p| p.next == Next::Stale) - 0.1).abs() < 0.02);
        assert!((frac(&|p| p.next == Next::Leave) - 0.6).abs() < 0.02);
    }

    #[test]
    fn lifetimes_have_the_requested_median_and_bounds() {
        for dist in [LifetimeDist::LogNormal, LifetimeDist::Exponential] {
            let args = SimArgs {
                lifetime: Duration::from_secs(10),
                lifetime_dist: dist,
                ..SimArgs::default()
            };
            let mut l: Vec<f64> = (0..100)
                .flat_map(|i| plans(2, i, &args, 100))
                .map(|p| p.lifetime.as_secs_f64())
                .collect();
            l.sort_by(f64::total_cmp);
            let median = l[l.len() / 2];
            assert!((9.0..11.0).contains(&median), "{dist:?}: median {median}");
            assert!(l[0] >= 0.01 && l[l.len() - 1] <= 200.0);
        }
    }

    #[test]
    fn filters_are_non_empty_subsets() {
        let mut p = ClientPlan::new(1, 1, &SimArgs::default());
        for _ in 0..1000 {
            let f = p.filter(&[4, 2, 9]);
            assert!(!f.is_empty() && f.iter().all(|x| [2, 4, 9].contains(x)));
            assert!(f.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(p.filter(&[]).is_empty());
    }

    #[test]
    fn poisson_gaps_average_one_over_rate() {
        let mut rng = fastrand::Rng::with_seed(5);
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| poisson_gap(&mut rng, 4.0).unwrap().as_secs_f64())
            .sum();
        assert!((total / n as f64 - 0.25).abs() < 0.01);
        assert_eq!(poisson_gap(&mut rng, 0.0), None);
    }
}

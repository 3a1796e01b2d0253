//! Load over time: the fraction of `--clients` (and of the post and toggle rates) wanted at
//! each moment of the run.

use std::f64::consts::PI;
use std::fmt;

/// The shape of the load over the run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Full load from start to end.
    Steady,
    /// Up from 10% to full over the first 40% of the run, full for the next 40%, then down to
    /// 10% over the last 20% (so the drain is exercised under churn, not only at the end).
    Ramp,
    /// One compressed day: a night at 10%, noon at full load at mid-run, night again at the end.
    Diurnal,
    /// 30% background with one burst at full load from 45% to 55% of the run.
    Spike,
}

impl Profile {
    /// The wanted load in `0.0..=1.0` at `progress`, the elapsed fraction of the run
    /// (clamped to `0.0..=1.0`).
    pub fn level(self, progress: f64) -> f64 {
        let t = if progress.is_nan() {
            0.0
        } else {
            progress.clamp(0.0, 1.0)
        };
        const LOW: f64 = 0.1;
        match self {
            Profile::Steady => 1.0,
            Profile::Ramp => {
                if t < 0.4 {
                    LOW + (1.0 - LOW) * t / 0.4
                } else if t < 0.8 {
                    1.0
                } else {
                    1.0 - (1.0 - LOW) * (t - 0.8) / 0.2
                }
            }
            Profile::Diurnal => LOW + (1.0 - LOW) * (1.0 - (2.0 * PI * t).cos()) / 2.0,
            Profile::Spike => {
                if (0.45..0.55).contains(&t) {
                    1.0
                } else {
                    0.3
                }
            }
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Steady => "steady",
            Profile::Ramp => "ramp",
            Profile::Diurnal => "diurnal",
            Profile::Spike => "spike",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(p: Profile) -> Vec<f64> {
        (0..=100).map(|i| p.level(i as f64 / 100.0)).collect()
    }

    #[test]
    fn every_level_is_a_fraction() {
        for p in [
            Profile::Steady,
            Profile::Ramp,
            Profile::Diurnal,
            Profile::Spike,
        ] {
            for l in samples(p) {
                assert!((0.0..=1.0).contains(&l), "{p}: {l}");
            }
            assert_eq!(p.level(-3.0), p.level(0.0));
            assert_eq!(p.level(7.0), p.level(1.0));
            assert_eq!(p.level(f64::NAN), p.level(0.0));
        }
    }

    #[test]
    fn steady_is_flat() {
        assert!(samples(Profile::Steady).iter().all(|&l| l == 1.0));
    }

    #[test]
    fn ramp_rises_holds_and_falls() {
        let s = samples(Profile::Ramp);
        assert!(s[..=40].windows(2).all(|w| w[1] > w[0]));
        assert!(s[40..=80].iter().all(|&l| l == 1.0));
        assert!(s[80..].windows(2).all(|w| w[1] < w[0]));
        assert!((s[0] - 0.1).abs() < 1e-9 && (s[100] - 0.1).abs() < 1e-9);
    }

    #[test]
    fn diurnal_peaks_at_noon_and_is_low_at_night() {
        let s = samples(Profile::Diurnal);
        let (peak, _) = s
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(peak, 50);
        assert!((s[50] - 1.0).abs() < 1e-9);
        assert!((s[0] - 0.1).abs() < 1e-9 && (s[100] - 0.1).abs() < 1e-9);
        assert!(s[25] > s[10] && s[75] > s[90]);
    }

    #[test]
    fn spike_is_a_short_burst_over_a_background() {
        let s = samples(Profile::Spike);
        let high: Vec<usize> = (0..=100).filter(|&i| s[i] == 1.0).collect();
        assert_eq!(high, (45..55).collect::<Vec<_>>());
        assert!(s.iter().all(|&l| l == 1.0 || l == 0.3));
    }
}

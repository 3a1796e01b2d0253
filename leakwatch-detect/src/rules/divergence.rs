//! Divergence: two series that should match, `a ≈ k·b + c`, drifted apart for too long.
//!
//! The Flowdock leak showed up exactly like this: presence callbacks kept growing while
//! open connections did not. Counters sampled a moment apart jitter against each other, so
//! the rule needs a tolerance (absolute and/or relative, whichever is larger applies) and a
//! `sustain` time during which the gap must persist, uninterrupted, before firing.

use super::growth::setter;
use crate::duration_secs;
use crate::{ConfigError, Finding, RuleKind, Window};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which side of the expected value counts as divergence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only `a` above `k·b + c` (the leak direction: more callbacks than connections).
    Above,
    /// Only `a` below `k·b + c`.
    Below,
    /// Either side.
    #[default]
    Both,
}

/// Configuration of a divergence rule: `series ≈ ratio · other + offset`.
///
/// Defaults: ratio 1, offset 0, absolute tolerance 2, relative tolerance 5% (the larger
/// allowance applies), both directions, sustain 60 s, clear after 30 s.
///
/// ```
/// use leakwatch_detect::{Direction, DivergenceRule};
/// use std::time::Duration;
/// let rule = DivergenceRule::new("live.presence.callbacks", "live.http.streams")
///     .ratio(1.0)
///     .rel_tolerance(Some(0.1))
///     .direction(Direction::Above)
///     .sustain(Duration::from_secs(120));
/// assert_eq!(rule.name, "live.presence.callbacks~live.http.streams");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DivergenceRule {
    /// Rule name. [`DivergenceRule::new`] names it `series~other`.
    pub name: String,
    /// The series expected to follow `other` (`a`).
    pub series: String,
    /// The reference series (`b`).
    pub other: String,
    /// `k` in `a ≈ k·b + c`.
    pub ratio: f64,
    /// `c` in `a ≈ k·b + c`.
    pub offset: f64,
    /// Allowed absolute gap.
    pub abs_tolerance: Option<f64>,
    /// Allowed gap as a fraction of the expected value.
    pub rel_tolerance: Option<f64>,
    /// Which side counts.
    pub direction: Direction,
    /// How long the gap must persist before firing.
    #[serde(rename = "sustain_secs", with = "duration_secs")]
    pub sustain: Duration,
    /// How long the series must agree again before resolving.
    #[serde(rename = "clear_after_secs", with = "duration_secs")]
    pub clear_after: Duration,
}

impl Default for DivergenceRule {
    fn default() -> Self {
        Self {
            name: "divergence".to_owned(),
            series: String::new(),
            other: String::new(),
            ratio: 1.0,
            offset: 0.0,
            abs_tolerance: Some(2.0),
            rel_tolerance: Some(0.05),
            direction: Direction::Both,
            sustain: Duration::from_secs(60),
            clear_after: Duration::from_secs(30),
        }
    }
}

impl DivergenceRule {
    /// Expects `series ≈ other`, with default tolerances.
    pub fn new(series: impl Into<String>, other: impl Into<String>) -> Self {
        let (series, other) = (series.into(), other.into());
        Self {
            name: format!("{series}~{other}"),
            series,
            other,
            ..Self::default()
        }
    }

    /// Sets the rule name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets both tolerances at once.
    pub fn tolerance(mut self, absolute: Option<f64>, relative: Option<f64>) -> Self {
        self.abs_tolerance = absolute;
        self.rel_tolerance = relative;
        self
    }

    setter!(/// Sets `k` in `a ≈ k·b + c`.
        ratio: f64);
    setter!(/// Sets `c` in `a ≈ k·b + c`.
        offset: f64);
    setter!(/// Sets the allowed absolute gap (`None`: no absolute allowance).
        abs_tolerance: Option<f64>);
    setter!(/// Sets the allowed relative gap (`None`: no relative allowance).
        rel_tolerance: Option<f64>);
    setter!(/// Sets which side counts.
        direction: Direction);
    setter!(/// Sets how long the gap must persist.
        sustain: Duration);
    setter!(/// Sets how long agreement must last to resolve.
        clear_after: Duration);

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: f64, expected| ConfigError::OutOfRange {
            rule: self.name.clone(),
            field,
            value,
            expected,
        };
        if self.series.is_empty() || self.other.is_empty() {
            return Err(bad("series", 0.0, "two non-empty series names"));
        }
        if self.series == self.other {
            return Err(ConfigError::SameSeries {
                rule: self.name.clone(),
                series: self.series.clone(),
            });
        }
        if !self.ratio.is_finite() {
            return Err(bad("ratio", self.ratio, "a finite number, e.g. 1"));
        }
        if !self.offset.is_finite() {
            return Err(bad("offset", self.offset, "a finite number, e.g. 0"));
        }
        if self.abs_tolerance.is_none() && self.rel_tolerance.is_none() {
            return Err(ConfigError::NoTolerance {
                rule: self.name.clone(),
            });
        }
        for (field, v) in [
            ("abs_tolerance", self.abs_tolerance),
            ("rel_tolerance", self.rel_tolerance),
        ] {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(bad(field, v, "a finite number ≥ 0"));
            }
        }
        Ok(())
    }

    /// Whether `(a, b)` is outside the tolerance, and the expected value of `a`.
    pub(crate) fn check(&self, a: f64, b: f64) -> (bool, f64) {
        let expected = self.ratio * b + self.offset;
        let allowed = self
            .abs_tolerance
            .unwrap_or(0.0)
            .max(self.rel_tolerance.map_or(0.0, |r| r * expected.abs()));
        let gap = a - expected;
        let violated = match self.direction {
            Direction::Above => gap > allowed,
            Direction::Below => -gap > allowed,
            Direction::Both => gap.abs() > allowed,
        };
        (violated, expected)
    }

    pub(crate) fn finding(&self, a: f64, b: f64, expected: f64, since: f64, at: f64) -> Finding {
        let mut f = Finding::new(RuleKind::Divergence, &self.name, &self.series, a, since, at);
        f.other = Some(self.other.clone());
        f.other_value = Some(b);
        f.expected = Some(expected);
        f.ratio = (b != 0.0).then(|| a / b);
        f.window = Some(Window {
            start: since,
            end: at,
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_takes_the_larger_allowance() {
        let r = DivergenceRule::new("a", "b").tolerance(Some(2.0), Some(0.1));
        assert!(!r.check(105.0, 100.0).0);
        assert!(r.check(111.0, 100.0).0);
        assert!(!r.check(3.0, 1.0).0);
        assert!(!r.direction(Direction::Above).check(80.0, 100.0).0);
    }

    #[test]
    fn validation_messages() {
        let e = DivergenceRule::new("a", "a").validate().unwrap_err();
        assert!(e.to_string().contains("itself"));
        let e = DivergenceRule::new("a", "b")
            .tolerance(None, None)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("abs_tolerance"));
    }
}

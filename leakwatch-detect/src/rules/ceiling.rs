//! Ceiling: an absolute limit, or a limit per unit of another series.
//!
//! The crude but dependable form of leak detection (Node's "more than 10 listeners"
//! warning): e.g. at most 3 presence callbacks per open connection. Fires after the limit
//! has been exceeded for `sustain` (default 0: at once), resolves once the value has been
//! back under the limit for `clear_after` (default 0).

use super::growth::setter;
use crate::duration_secs;
use crate::{ConfigError, Finding, RuleKind, Selector, Window};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The limit a ceiling rule enforces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `value ≤ max`.
    Absolute(f64),
    /// `value ≤ max × per` where `per` is another series (e.g. open connections).
    PerUnit {
        /// The unit series.
        per: String,
        /// Allowed value per unit.
        max: f64,
    },
}

/// Configuration of a ceiling rule.
///
/// ```
/// use leakwatch_detect::{CeilingRule, Selector};
/// let rule = CeilingRule::per_unit(Selector::exact("live.presence.callbacks").unwrap(), "live.http.streams", 3.0)
///     .name("callbacks-per-stream");
/// let cap = CeilingRule::absolute(Selector::new(["live.*"]).unwrap(), 100_000.0);
/// assert_ne!(rule, cap);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CeilingRule {
    /// Rule name. Default `ceiling`.
    pub name: String,
    /// Series the limit applies to (each separately).
    pub series: Selector,
    /// The limit.
    pub limit: Limit,
    /// How long the limit must be exceeded before firing. Default 0.
    #[serde(rename = "sustain_secs", with = "duration_secs")]
    pub sustain: Duration,
    /// How long the value must stay under the limit to resolve. Default 0.
    #[serde(rename = "clear_after_secs", with = "duration_secs")]
    pub clear_after: Duration,
}

impl Default for CeilingRule {
    fn default() -> Self {
        Self {
            name: "ceiling".to_owned(),
            series: Selector::none(),
            limit: Limit::Absolute(f64::INFINITY),
            sustain: Duration::ZERO,
            clear_after: Duration::ZERO,
        }
    }
}

impl CeilingRule {
    /// `value ≤ max` for every series `series` selects.
    pub fn absolute(series: Selector, max: f64) -> Self {
        Self {
            series,
            limit: Limit::Absolute(max),
            ..Self::default()
        }
    }

    /// `value ≤ max × per` for every series `series` selects.
    pub fn per_unit(series: Selector, per: impl Into<String>, max: f64) -> Self {
        Self {
            series,
            limit: Limit::PerUnit {
                per: per.into(),
                max,
            },
            ..Self::default()
        }
    }

    /// Sets the rule name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    setter!(/// Sets the limit.
        limit: Limit);
    setter!(/// Sets how long the limit must be exceeded.
        sustain: Duration);
    setter!(/// Sets how long the value must stay under the limit to resolve.
        clear_after: Duration);

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let max = match &self.limit {
            Limit::Absolute(m) => *m,
            Limit::PerUnit { per, max } => {
                if per.is_empty() {
                    return Err(ConfigError::OutOfRange {
                        rule: self.name.clone(),
                        field: "per",
                        value: 0.0,
                        expected: "the name of the unit series, e.g. live.http.streams",
                    });
                }
                if *max <= 0.0 {
                    return Err(ConfigError::OutOfRange {
                        rule: self.name.clone(),
                        field: "max",
                        value: *max,
                        expected: "a positive allowance per unit, e.g. 3",
                    });
                }
                *max
            }
        };
        if max.is_nan() {
            return Err(ConfigError::OutOfRange {
                rule: self.name.clone(),
                field: "max",
                value: max,
                expected: "a number",
            });
        }
        Ok(())
    }

    /// The unit series, for per-unit limits.
    pub(crate) fn per(&self) -> Option<&str> {
        match &self.limit {
            Limit::Absolute(_) => None,
            Limit::PerUnit { per, .. } => Some(per),
        }
    }

    /// The limit in force given the unit's value (`None` when the unit is unknown).
    pub(crate) fn limit_for(&self, unit: Option<f64>) -> Option<f64> {
        match &self.limit {
            Limit::Absolute(m) => Some(*m),
            Limit::PerUnit { max, .. } => unit.map(|u| max * u),
        }
    }

    pub(crate) fn finding(
        &self,
        series: &str,
        value: f64,
        unit: Option<f64>,
        limit: f64,
        since: f64,
        at: f64,
    ) -> Finding {
        let mut f = Finding::new(RuleKind::Ceiling, &self.name, series, value, since, at);
        f.limit = Some(limit);
        if let (Some(per), Some(u)) = (self.per(), unit) {
            f.other = Some(per.to_owned());
            f.other_value = Some(u);
            f.ratio = (u != 0.0).then(|| value / u);
        }
        f.window = Some(Window {
            start: since,
            end: at,
        });
        f
    }
}

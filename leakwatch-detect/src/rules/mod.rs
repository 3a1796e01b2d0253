//! Rule configurations and the per-rule detectors.
//!
//! Configs are plain serde structs with `Default` and chainable setters, so a driver can
//! expose them directly (`DivergenceRule::new(a, b).ratio(1.0).sustain(..)`) or load them
//! from JSON/TOML.

pub mod ceiling;
pub mod divergence;
pub mod growth;
mod onset;

use crate::ConfigError;
use crate::finding::{Finding, ResolvedBy};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub use ceiling::{CeilingRule, Limit};
pub use divergence::{Direction, DivergenceRule};
pub use growth::GrowthRule;

/// Any one rule, for [`RuleSet::with`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
// Rules are configuration, built once and compiled by the engine: a few hundred bytes per
// rule cost nothing, and boxing the growth variant would make every match and literal noisier.
#[allow(clippy::large_enum_variant)]
pub enum Rule {
    /// A growth rule.
    Growth(GrowthRule),
    /// A divergence rule.
    Divergence(DivergenceRule),
    /// A ceiling rule.
    Ceiling(CeilingRule),
}

impl From<GrowthRule> for Rule {
    fn from(r: GrowthRule) -> Self {
        Self::Growth(r)
    }
}
impl From<DivergenceRule> for Rule {
    fn from(r: DivergenceRule) -> Self {
        Self::Divergence(r)
    }
}
impl From<CeilingRule> for Rule {
    fn from(r: CeilingRule) -> Self {
        Self::Ceiling(r)
    }
}

/// All rules an [`Engine`](crate::Engine) runs.
///
/// ```
/// use leakwatch_detect::{CeilingRule, DivergenceRule, RuleSet, Selector};
/// use std::time::Duration;
/// let rules = RuleSet::default_growth(Selector::new(["live.*", "memory.resident"]).unwrap())
///     .with(DivergenceRule::new("live.presence.callbacks", "live.http.streams")
///         .ratio(1.0)
///         .abs_tolerance(Some(5.0))
///         .sustain(Duration::from_secs(120)))
///     .with(CeilingRule::per_unit(Selector::exact("live.presence.callbacks").unwrap(), "live.http.streams", 3.0));
/// rules.validate().unwrap();
/// assert_eq!(serde_json::from_str::<RuleSet>(&serde_json::to_string(&rules).unwrap()).unwrap(), rules);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSet {
    /// Growth rules.
    pub growth: Vec<GrowthRule>,
    /// Divergence rules.
    pub divergence: Vec<DivergenceRule>,
    /// Ceiling rules.
    pub ceiling: Vec<CeilingRule>,
}

impl RuleSet {
    /// An empty rule set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A rule set watching growth, with default parameters, on every series `selector` matches.
    ///
    /// This is the zero-configuration setup: the driver passes its default selection
    /// (e.g. `live.*`, `memory.resident`).
    pub fn default_growth(selector: crate::Selector) -> Self {
        Self::new().with(GrowthRule::new(selector))
    }

    /// Adds a rule.
    pub fn with(mut self, rule: impl Into<Rule>) -> Self {
        self.push(rule);
        self
    }

    /// Adds a rule in place.
    pub fn push(&mut self, rule: impl Into<Rule>) {
        match rule.into() {
            Rule::Growth(r) => self.growth.push(r),
            Rule::Divergence(r) => self.divergence.push(r),
            Rule::Ceiling(r) => self.ceiling.push(r),
        }
    }

    /// Whether any rule needs samples of `name` (as a watched series, a load, a divergence
    /// partner or a per-unit base). A driver with many series can feed the engine only these:
    /// the engine ignores the rest anyway, and skipping them saves the lookups.
    pub fn needs(&self, name: &str) -> bool {
        self.growth
            .iter()
            .any(|r| r.series.matches(name) || r.relative_to.as_deref() == Some(name))
            || self
                .divergence
                .iter()
                .any(|r| r.series == name || r.other == name)
            || self.ceiling.iter().any(|r| {
                r.series.matches(name)
                    || matches!(&r.limit, Limit::PerUnit { per, .. } if per == name)
            })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.growth.len() + self.divergence.len() + self.ceiling.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks every rule; the first problem is returned with an actionable message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        let mut check_name = |kind, name: &str| {
            if name.is_empty() {
                return Err(ConfigError::EmptyName { kind });
            }
            if !names.insert(name.to_owned()) {
                return Err(ConfigError::DuplicateName {
                    name: name.to_owned(),
                });
            }
            Ok(())
        };
        for r in &self.growth {
            check_name("growth", &r.name)?;
            r.compile()?;
        }
        for r in &self.divergence {
            check_name("divergence", &r.name)?;
            r.validate()?;
        }
        for r in &self.ceiling {
            check_name("ceiling", &r.name)?;
            r.validate()?;
        }
        Ok(())
    }
}

/// A condition that must hold for `sustain` before firing and be absent for `clear`
/// before resolving: the shared state machine of divergence and ceiling rules.
#[derive(Debug, Default)]
pub(crate) struct Sustained {
    bad_since: Option<f64>,
    ok_since: Option<f64>,
    firing: Option<Finding>,
}

impl Sustained {
    /// Feeds one evaluation. `build(since, at)` describes the current state as a finding.
    pub(crate) fn step(
        &mut self,
        t: f64,
        violated: bool,
        sustain: f64,
        clear: f64,
        out: &mut Vec<Finding>,
        build: impl FnOnce(f64, f64) -> Finding,
    ) {
        if violated {
            self.ok_since = None;
            let since = *self.bad_since.get_or_insert(t);
            if self.firing.is_none() && t - since >= sustain {
                let f = build(since, t);
                out.push(f.clone());
                self.firing = Some(f);
            }
        } else if let Some(firing) = &self.firing {
            let ok = *self.ok_since.get_or_insert(t);
            if t - ok >= clear {
                let mut done = build(firing.since, t).resolved(t, ResolvedBy::Cleared);
                done.window = firing.window.map(|w| crate::Window { end: t, ..w });
                out.push(done);
                *self = Self::default();
            }
        } else {
            self.bad_since = None;
        }
    }

    /// A series the rule needs is gone: resolve.
    pub(crate) fn gone(&mut self, t: f64, out: &mut Vec<Finding>) {
        if let Some(f) = self.firing.take() {
            out.push(f.resolved(t, ResolvedBy::Gone));
        }
        *self = Self::default();
    }

    pub(crate) fn active(&self) -> Option<&Finding> {
        self.firing.as_ref()
    }
}

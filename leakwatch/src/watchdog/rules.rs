//! The one place rules are assembled: the live watchdog ([`WatchdogBuilder`]) and
//! `leakwatch analyze` both turn a [`RuleConfig`] into the [`RuleSet`] their engine runs, so
//! a load series, a replaced growth selection or an added rule means the same in both.
//!
//! ```
//! use leakwatch::watchdog::RuleConfig;
//! use leakwatch::DivergenceRule;
//!
//! let mut config = RuleConfig::default();
//! config.load = Some("live.http.streams".into());
//! config.rules.push(DivergenceRule::new("live.presence.callbacks", "live.http.streams"));
//! let rules = config.build().unwrap();
//! // The default growth watch (`live.*`, memory), judged relative to the load, and the pair.
//! assert_eq!(rules.growth[0].relative_to.as_deref(), Some("live.http.streams"));
//! assert_eq!(rules.divergence.len(), 1);
//!
//! // After a warm-up: which rules watched nothing, given the series that exist.
//! let unmatched = leakwatch::watchdog::unmatched_rules(&rules, ["live.http.streams"]);
//! assert_eq!(unmatched.len(), 1);
//! assert_eq!(
//!     unmatched[0].to_string(),
//!     "live.presence.callbacks~live.http.streams: live.presence.callbacks never appeared"
//! );
//! ```
//!
//! [`WatchdogBuilder`]: super::WatchdogBuilder

use std::collections::BTreeSet;
use std::fmt;

use leakwatch_detect::{ConfigError, GrowthRule, Limit, RuleSet, Selector};

use super::DEFAULT_GROWTH_PATTERNS;

/// What rules to run, before assembly: the rules added by name plus the default growth watch.
///
/// [`build`](RuleConfig::build) gives the [`RuleSet`]:
/// * the explicit `rules`, as given;
/// * the *default growth watch*, a [`GrowthRule`] with default parameters over `watch` (or
///   [`DEFAULT_GROWTH_PATTERNS`]: `live.*`, resident and heap memory), placed first. It runs
///   when `default_growth` is `Some(true)`, or when it is `None` and `rules` has no growth
///   rule of its own;
/// * `load`: the default growth watch judges growth relative to this series (growth that
///   merely follows the load is not a leak, growth of the per-load ratio is). Explicit growth
///   rules keep their own [`GrowthRule::relative_to`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleConfig {
    /// Rules added explicitly.
    pub rules: RuleSet,
    /// Whether the default growth watch runs; `None`: only when `rules` has no growth rule.
    pub default_growth: Option<bool>,
    /// Patterns of the default growth watch, replacing [`DEFAULT_GROWTH_PATTERNS`].
    pub watch: Option<Vec<String>>,
    /// Load series the default growth watch is judged relative to.
    pub load: Option<String>,
}

impl RuleConfig {
    /// The rule set to run; fails on an invalid `watch` pattern (or, later, on invalid
    /// rules when an engine is built from it).
    pub fn build(&self) -> Result<RuleSet, ConfigError> {
        let mut rules = self.rules.clone();
        let wanted = self.default_growth.unwrap_or(self.rules.growth.is_empty());
        if wanted {
            let selector = match &self.watch {
                Some(patterns) => Selector::new(patterns.iter().cloned())?,
                None => Selector::new(DEFAULT_GROWTH_PATTERNS.iter().copied())?,
            };
            let mut growth = GrowthRule::new(selector);
            if let Some(load) = &self.load {
                growth = growth.relative_to(load.clone());
            }
            rules.growth.insert(0, growth);
        }
        Ok(rules)
    }
}

/// A rule that watched nothing: none of the series it names (or selects) exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmatchedRule {
    /// The rule's name (`growth`, `a~b` for a divergence, `ceiling`, or the name given).
    pub rule: String,
    /// What is missing, e.g. `no series matches live.*` or `live.cb never appeared`.
    pub missing: Vec<String>,
}

impl fmt::Display for UnmatchedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.missing.join("; "))
    }
}

/// The rules in `rules` that cannot judge anything given the series `names` that exist: a
/// growth or ceiling rule whose selection matches none of them, a divergence rule or a
/// per-unit ceiling whose series or partner is absent, a growth rule whose load is absent.
/// Both the watchdog (once, after a warm-up) and `leakwatch analyze` (in its verdict) report
/// these, so a typo in a series name is said rather than silently never firing.
pub fn unmatched_rules<'a>(
    rules: &RuleSet,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<UnmatchedRule> {
    let names: BTreeSet<&str> = names.into_iter().collect();
    let exists = |n: &str| names.contains(n);
    let none_match = |sel: &Selector| !names.iter().any(|n| sel.matches(n));
    let absent = |n: &str| format!("{n} never appeared");
    let mut out = Vec::new();
    for g in &rules.growth {
        let mut missing = Vec::new();
        if none_match(&g.series) {
            missing.push(format!(
                "no series matches {}",
                g.series.patterns().join(", ")
            ));
        }
        if let Some(load) = &g.relative_to
            && !exists(load)
        {
            missing.push(format!("load {}", absent(load)));
        }
        if !missing.is_empty() {
            out.push(UnmatchedRule {
                rule: g.name.clone(),
                missing,
            });
        }
    }
    for d in &rules.divergence {
        let missing: Vec<String> = [&d.series, &d.other]
            .into_iter()
            .filter(|n| !exists(n))
            .map(|n| absent(n))
            .collect();
        if !missing.is_empty() {
            out.push(UnmatchedRule {
                rule: d.name.clone(),
                missing,
            });
        }
    }
    for c in &rules.ceiling {
        let mut missing = Vec::new();
        if none_match(&c.series) {
            missing.push(format!(
                "no series matches {}",
                c.series.patterns().join(", ")
            ));
        }
        if let Limit::PerUnit { per, .. } = &c.limit
            && !exists(per)
        {
            missing.push(absent(per));
        }
        if !missing.is_empty() {
            out.push(UnmatchedRule {
                rule: c.name.clone(),
                missing,
            });
        }
    }
    out
}

/// Logs, once, the rules that watch nothing among `names` (the series sampled at watchdog
/// time `t`), with the series that exist: through `tracing` at WARN, or on standard error
/// when no subscriber would show it.
pub(crate) fn warn_unmatched<'a>(rules: &RuleSet, names: impl Iterator<Item = &'a str>, t: f64) {
    let names: Vec<&str> = names.collect();
    let unmatched = unmatched_rules(rules, names.iter().copied());
    if unmatched.is_empty() {
        return;
    }
    const SHOWN: usize = 40;
    let mut existing = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        existing.push_str(&format!(", ... ({} in all)", names.len()));
    }
    let rules: Vec<String> = unmatched.iter().map(ToString::to_string).collect();
    let text = format!(
        "after {t:.0} s, {} rule(s) watch no series: {}. Series that exist: {existing}",
        rules.len(),
        rules.join("; ")
    );
    if super::hooks::no_subscriber() {
        eprintln!("leakwatch: {text}");
    } else {
        tracing::warn!(target: "leakwatch", "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakwatch_detect::{CeilingRule, DivergenceRule};

    #[test]
    fn default_growth_only_without_growth_rules_unless_asked() {
        let plain = RuleConfig::default().build().unwrap();
        assert_eq!(plain.growth.len(), 1);
        assert!(plain.growth[0].series.matches("live.x"));

        let mut own = RuleConfig::default();
        own.rules
            .push(GrowthRule::new(Selector::exact("count.x").unwrap()));
        assert_eq!(own.build().unwrap().growth.len(), 1, "replaced");
        own.default_growth = Some(true);
        let both = own.build().unwrap();
        assert_eq!(both.growth.len(), 2);
        assert!(both.growth[0].series.matches("live.x"), "default first");
    }

    #[test]
    fn load_and_watch_apply_to_the_default_growth_watch_only() {
        let mut c = RuleConfig {
            watch: Some(vec!["jobs.*".into()]),
            load: Some("live.streams".into()),
            default_growth: Some(true),
            ..RuleConfig::default()
        };
        c.rules
            .push(GrowthRule::new(Selector::exact("count.x").unwrap()).name("own"));
        let rules = c.build().unwrap();
        assert!(rules.growth[0].series.matches("jobs.a"));
        assert!(!rules.growth[0].series.matches("live.a"));
        assert_eq!(rules.growth[0].relative_to.as_deref(), Some("live.streams"));
        assert_eq!(rules.growth[1].relative_to, None);
    }

    #[test]
    fn unmatched_rules_name_what_is_missing() {
        let rules = RuleSet::default_growth(Selector::exact("live.a").unwrap())
            .with(DivergenceRule::new("live.a", "live.b"))
            .with(CeilingRule::per_unit(
                Selector::exact("live.a").unwrap(),
                "live.c",
                2.0,
            ))
            .with(CeilingRule::absolute(Selector::new(["nope.*"]).unwrap(), 1.0).name("cap"));
        let found = unmatched_rules(&rules, ["live.a", "live.b"]);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2, "{text:?}");
        assert!(text[0].ends_with("live.c never appeared"), "{text:?}");
        assert_eq!(text[1], "cap: no series matches nope.*");
        assert!(unmatched_rules(&rules, ["live.a", "live.b", "live.c", "nope.x"]).is_empty());
        let none = unmatched_rules(&rules, []);
        assert_eq!(none.len(), 4);
    }
}

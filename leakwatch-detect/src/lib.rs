//! Leak detectors over sampled counts: pure data in, findings out.
//!
//! ```
//! use leakwatch_detect::{DivergenceRule, Engine, RuleKind, RuleSet, Selector};
//! use std::time::Duration;
//!
//! // Watch growth of every `live.*` series, and expect one presence callback per stream.
//! let rules = RuleSet::default_growth(Selector::new(["live.*"])?)
//!     .with(DivergenceRule::new("live.presence.callbacks", "live.http.streams")
//!         .sustain(Duration::from_secs(60)));
//! let mut engine = Engine::new(rules)?;
//!
//! let mut fired = Vec::new();
//! for s in 0..3600 {
//!     let t = f64::from(s);
//!     let streams = (400.0 + 8.0 * (t * 7.3).sin()).round();
//!     // From minute 15, some disconnects never clean up their callback: +6 per minute.
//!     let leaked = if t > 900.0 { ((t - 900.0) / 10.0).floor() } else { 0.0 };
//!     let values = [("live.http.streams", streams), ("live.presence.callbacks", streams + leaked)];
//!     for finding in engine.observe(t, values) {
//!         println!("{}", serde_json::to_string(&finding).unwrap());
//!         fired.push((finding.rule, finding.series.clone(), finding.at));
//!     }
//! }
//! assert!(fired.iter().any(|(k, s, _)| *k == RuleKind::Divergence && s == "live.presence.callbacks"));
//! assert!(fired.iter().any(|(k, s, _)| *k == RuleKind::Growth && s == "live.presence.callbacks"));
//! assert!(!fired.iter().any(|(_, s, _)| s == "live.http.streams"));
//! # Ok::<(), leakwatch_detect::ConfigError>(())
//! ```
//!
//! # Rules
//!
//! * [`GrowthRule`] (`growth`): a sustained upward trend, robust to noise, sawtooth and
//!   spikes, optionally of the ratio to a load series. Method and defaults: [`rules::growth`].
//! * [`DivergenceRule`] (`divergence`): `a ≈ k·b + c` violated beyond a tolerance for a
//!   sustained time.
//! * [`CeilingRule`] (`ceiling`): an absolute limit or a limit per unit of another series.
//!
//! An [`Engine`] runs a [`RuleSet`]; [`Engine::observe`] returns [`Finding`]s, each a
//! `firing` or `resolved` transition, serde-serializable with stable field names.
//!
//! # Memory
//!
//! Every series watched by a growth rule keeps a fixed-size history, whatever the uptime:
//! with the defaults 36 fine (10 s) and 64 coarse (60 s) bucket medians of 8 bytes each,
//! plus the bucket being filled and the detector state: about 2.1 KB per series per growth
//! rule in all ([`Engine::state_bytes_per_series`], [`GrowthRule::state_bytes_per_series`]),
//! i.e. ~21 MB for 10,000 series. A growth rule with `relative_to` keeps a second history
//! (the series' own medians beside the ratio's, see [`rules::growth`]): about 1.1 KB more.
//! Series not watched by a growth rule cost only their name and latest value.
//!
//! # Cost
//!
//! A sample costs a push into its bucket, plus a hash lookup of its name when fed by name
//! ([`Engine::register`] once and [`Engine::observe_ids`] skip it); trend statistics run only when
//! a bucket closes (every 10 s fine, 60 s coarse), with bucket boundaries staggered per
//! series, and most evaluations of healthy series stop at the cheap new-high check.
//! Measured (`cargo bench -p leakwatch-detect --bench cost`, shared 2-core box): 0.15–0.28% of one core for
//! 10,000 healthy series at 1 s, 0.51–0.67% when every series leaks.

#![deny(missing_docs)]

mod duration_secs;
mod engine;
mod error;
mod finding;
mod history;
pub mod rules;
mod selector;
mod trend;

pub use engine::{Engine, EngineConfig, SeriesId};
pub use error::ConfigError;
pub use finding::{Evidence, Finding, FindingState, ResolvedBy, RuleKind, Window};
pub use rules::{CeilingRule, Direction, DivergenceRule, GrowthRule, Limit, Rule, RuleSet};
pub use selector::Selector;

//! Errors raised while validating a rule set.

use thiserror::Error;

/// A rule set or selector that cannot be turned into an [`Engine`](crate::Engine).
///
/// Every variant names the rule (or pattern) at fault and says what to change.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A selector pattern was empty or contained whitespace.
    #[error(
        "invalid series pattern {pattern:?}: {reason}; use names with `*` wildcards such as `live.*`"
    )]
    InvalidPattern {
        /// The offending pattern.
        pattern: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A rule has an empty name.
    #[error("a {kind} rule has an empty name; give every rule a short unique name")]
    EmptyName {
        /// Kind of rule (`growth`, `divergence`, `ceiling`).
        kind: &'static str,
    },
    /// Two rules share a name, so their findings could not be told apart.
    #[error("rule name {name:?} is used twice; rule names must be unique across the rule set")]
    DuplicateName {
        /// The duplicated name.
        name: String,
    },
    /// A numeric parameter is out of range.
    #[error("rule {rule:?}: `{field}` = {value} is invalid: {expected}")]
    OutOfRange {
        /// Rule name.
        rule: String,
        /// Parameter name, as spelled in the config.
        field: &'static str,
        /// The rejected value (durations in seconds).
        value: f64,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A growth window needs more history than the bounded history keeps.
    #[error(
        "growth rule {rule:?}: window of {window_secs} s needs {points} buckets of {bucket_secs} s, more than the {max} kept; \
         use a shorter window or a larger `bucket_secs`"
    )]
    WindowTooLong {
        /// Rule name.
        rule: String,
        /// The window, seconds.
        window_secs: f64,
        /// Bucket width used for that window, seconds.
        bucket_secs: f64,
        /// Buckets the window would need.
        points: usize,
        /// Buckets the history keeps at that width.
        max: usize,
    },
    /// A rule compares a series with itself.
    #[error("rule {rule:?} compares series {series:?} with itself; name two different series")]
    SameSeries {
        /// Rule name.
        rule: String,
        /// The series named twice.
        series: String,
    },
    /// A divergence rule has no tolerance at all, so any jitter would fire it.
    #[error(
        "divergence rule {rule:?} has neither `abs_tolerance` nor `rel_tolerance`; set at least one"
    )]
    NoTolerance {
        /// Rule name.
        rule: String,
    },
}

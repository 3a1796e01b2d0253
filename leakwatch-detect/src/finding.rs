//! Findings: what the engine reports when a rule starts or stops firing.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which kind of rule produced a finding. Serialized lowercase (`"growth"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Sustained upward trend of one series (or of its ratio to a load series).
    Growth,
    /// Two series that should match (`a ≈ k·b + c`) drifted apart.
    Divergence,
    /// A series crossed an absolute limit, or a limit per unit of another series.
    Ceiling,
}

impl RuleKind {
    /// The lowercase name used in serialized findings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Growth => "growth",
            Self::Divergence => "divergence",
            Self::Ceiling => "ceiling",
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a finding starts (`firing`) or ends (`resolved`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingState {
    /// The condition holds (and has held long enough to report).
    Firing,
    /// The condition no longer holds; see [`Finding::resolved_by`].
    Resolved,
}

/// Why a finding was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedBy {
    /// The condition cleared (trend gone, series back within tolerance or under the limit).
    Cleared,
    /// The series restarted from (near) zero: a process restart, not a cure.
    Reset,
    /// A series the rule needs stopped reporting.
    Gone,
}

/// Which test of a growth rule fired (see [`rules::growth`](crate::rules::growth)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// The start-up test: a young series (within its warm-up) rising in a straight line
    /// since it appeared, not slowing down the way a filling cache or pool does.
    Startup,
    /// The onset test: a series that was flat has started to rise and keeps rising.
    Onset,
    /// A trend window (16 or 48 min by default): a sustained rise over the window.
    Window,
}

impl Evidence {
    /// The lowercase name used in serialized findings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Onset => "onset",
            Self::Window => "window",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time span (seconds, in the caller's clock) that a statistic was computed over.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the span.
    pub start: f64,
    /// End of the span.
    pub end: f64,
}

impl Window {
    /// Length of the span, seconds.
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }
}

/// One state transition of one rule on one series (or pair of series).
///
/// The field names are a stable, serialized contract (JSON lines, dashboards):
/// optional fields are omitted when they do not apply to the rule kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `firing` or `resolved`.
    pub state: FindingState,
    /// Kind of rule: `growth`, `divergence` or `ceiling`.
    pub rule: RuleKind,
    /// The rule's name, as configured.
    pub name: String,
    /// The series the finding is about (the numerator for relative growth, `a` for divergence).
    pub series: String,
    /// The other series: load for relative growth, `b` for divergence, the unit for a per-unit ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// Latest value of `series`.
    pub value: f64,
    /// Latest value of `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_value: Option<f64>,
    /// Divergence: the value `series` should have (`k·other + c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Ceiling: the limit in force (absolute, or `per_unit × other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// `series / other` where an other series applies (for relative growth: the current level of the ratio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Growth: robust (Theil–Sen) slope per second of the watched quantity (the ratio, for relative growth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_sec: Option<f64>,
    /// Growth: autocorrelation-corrected Mann–Kendall z-score of the trend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    /// Span the statistics were computed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Growth: which test fired (`startup`, `onset` or `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// When the condition started (growth: start of the first window that showed it).
    pub since: f64,
    /// When this transition was detected.
    pub at: f64,
    /// For `resolved` findings: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<ResolvedBy>,
}

impl Finding {
    pub(crate) fn new(
        rule: RuleKind,
        name: &str,
        series: &str,
        value: f64,
        since: f64,
        at: f64,
    ) -> Self {
        Self {
            state: FindingState::Firing,
            rule,
            name: name.to_owned(),
            series: series.to_owned(),
            other: None,
            value,
            other_value: None,
            expected: None,
            limit: None,
            ratio: None,
            slope_per_sec: None,
            z: None,
            window: None,
            evidence: None,
            since,
            at,
            resolved_by: None,
        }
    }

    /// The same finding, resolved at `at` for `why`.
    pub(crate) fn resolved(&self, at: f64, why: ResolvedBy) -> Self {
        Self {
            state: FindingState::Resolved,
            at,
            resolved_by: Some(why),
            ..self.clone()
        }
    }

    /// Whether this is a `firing` transition.
    pub fn is_firing(&self) -> bool {
        self.state == FindingState::Firing
    }
}

impl fmt::Display for Finding {
    /// One human line, e.g. `FIRING growth/growth live.callbacks=512 slope=+0.4100/s z=5.2 evidence=startup since=60.0 at=150.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            FindingState::Firing => "FIRING",
            FindingState::Resolved => "RESOLVED",
        };
        write!(
            f,
            "{state} {}/{} {}={}",
            self.rule, self.name, self.series, self.value
        )?;
        if let (Some(o), Some(ov)) = (&self.other, self.other_value) {
            write!(f, " {o}={ov}")?;
        }
        if let Some(e) = self.expected {
            write!(f, " expected={e:.3}")?;
        }
        if let Some(l) = self.limit {
            write!(f, " limit={l:.3}")?;
        }
        if let Some(r) = self.ratio {
            write!(f, " ratio={r:.4}")?;
        }
        if let Some(s) = self.slope_per_sec {
            write!(f, " slope={s:+.4}/s")?;
        }
        if let Some(z) = self.z {
            write!(f, " z={z:.1}")?;
        }
        if let Some(e) = self.evidence {
            match (e, self.window) {
                (Evidence::Window, Some(w)) => write!(f, " evidence=window({:.0}s)", w.seconds())?,
                _ => write!(f, " evidence={e}")?,
            }
        }
        // Times are seconds in the caller's clock; a tenth of a second is all a reader needs.
        write!(f, " since={:.1} at={:.1}", self.since, self.at)?;
        if let Some(r) = self.resolved_by {
            write!(f, " ({})", serde_plain(r))?;
        }
        Ok(())
    }
}

fn serde_plain(r: ResolvedBy) -> &'static str {
    match r {
        ResolvedBy::Cleared => "cleared",
        ResolvedBy::Reset => "reset",
        ResolvedBy::Gone => "gone",
    }
}

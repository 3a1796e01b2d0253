//! `Alert`: what hooks receive, and the de-duplication that decides which alerts are sent.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use leakwatch_detect::{Finding, FindingState, RuleKind, Window};
use serde::{Deserialize, Serialize};

use crate::finding::ScopeFinding;
use crate::site::Site;
use crate::snapshot::Snapshot;

/// Whether an alert starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

impl AlertState {
    /// `"firing"` or `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Which rule raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// Sustained growth of a series (or of its ratio to load).
    Growth,
    /// Two series that should match drifted apart.
    Divergence,
    /// A limit (absolute or per unit of another series) was crossed.
    Ceiling,
    /// Something registered on a scope after it closed (refused).
    LateRegistration,
    /// Something bound to a scope stayed alive after the scope closed.
    Outlived,
}

impl AlertRule {
    /// The name used in JSON and logs, e.g. `growth`, `late_registration`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::Growth => "growth",
            AlertRule::Divergence => "divergence",
            AlertRule::Ceiling => "ceiling",
            AlertRule::LateRegistration => "late_registration",
            AlertRule::Outlived => "outlived",
        }
    }

    /// Whether alerts of this rule are one-shot scope findings (no `resolved` follows).
    pub fn is_scope_finding(self) -> bool {
        matches!(self, AlertRule::LateRegistration | AlertRule::Outlived)
    }
}

impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RuleKind> for AlertRule {
    fn from(k: RuleKind) -> Self {
        match k {
            RuleKind::Growth => AlertRule::Growth,
            RuleKind::Divergence => AlertRule::Divergence,
            RuleKind::Ceiling => AlertRule::Ceiling,
        }
    }
}

/// An alert: a detector finding or a scope finding, with context for a human.
///
/// Serialises (e.g. for the webhook and recordings) as a JSON object with at least `"rule"`
/// (`growth`, `divergence`, `ceiling`, `late_registration`, `outlived`), `"series"` and
/// `"state"` (`firing` / `resolved`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Kind of rule: `growth`, `divergence`, `ceiling`, `late_registration` or `outlived`.
    pub rule: AlertRule,
    /// The rule's configured name (for scope findings, the scope's name).
    pub name: String,
    /// The series the alert is about.
    pub series: String,
    /// The other series involved (load, divergence partner, per-unit base), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// Firing or resolved.
    pub state: AlertState,
    /// Current values of the series involved.
    pub values: BTreeMap<String, f64>,
    /// Estimated growth per second (growth rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_sec: Option<f64>,
    /// `series / other` where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// What the series should be (divergence) or may be at most (ceiling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// The window the slope or ratio was computed over (seconds since the watchdog started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// When the condition started, seconds since the watchdog started.
    pub since: f64,
    /// When this alert was raised, seconds since the watchdog started.
    pub at: f64,
    /// Creation sites of the series' live items, where known: up to three, the site whose
    /// oldest live item is oldest first (`age_ms` is that item's age).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hint: Vec<Site>,
    /// One readable line.
    pub message: String,
    /// Wall-clock time the alert was raised, RFC 3339 in UTC with milliseconds
    /// (`2026-11-30T07:20:00.123Z`); `at` and `since` count from the watchdog's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The process that raised the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Instance>,
}

/// Which process raised an alert, so a receiver of many services' alerts can tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Host name (`/proc/sys/kernel/hostname`, `/etc/hostname`, or `unknown`).
    pub host: String,
    /// Process id.
    pub pid: u32,
}

impl Instance {
    /// This process.
    pub fn current() -> Instance {
        static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let host = HOST.get_or_init(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_owned())
                .find(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        });
        Instance {
            host: host.clone(),
            pid: std::process::id(),
        }
    }
}

/// Now, as RFC 3339 in UTC with milliseconds.
fn wall_clock() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // Scope findings already name their site in the message.
        if self.is_scope_finding() {
            return Ok(());
        }
        if let Some(site) = self.hint.first() {
            write!(f, " (oldest live created at {})", site.location)?;
        }
        Ok(())
    }
}

/// The series name behind a flattened metric (`live.presence.Watch` → `presence.Watch`).
fn series_of_metric(metric: &str) -> &str {
    metric.split_once('.').map_or(metric, |(_, rest)| rest)
}

/// How many creation sites an alert carries as its hint.
const HINT_SITES: usize = 3;

impl Alert {
    /// Builds an alert from a detector finding, with hints from `snapshot`.
    pub(crate) fn from_finding(f: &Finding, snapshot: &Snapshot) -> Alert {
        let mut values = BTreeMap::new();
        values.insert(f.series.clone(), f.value);
        if let (Some(o), Some(v)) = (&f.other, f.other_value) {
            values.insert(o.clone(), v);
        }
        let hint = snapshot
            .get(series_of_metric(&f.series))
            .map(|s| s.sites.iter().take(HINT_SITES).cloned().collect())
            .unwrap_or_default();
        let state = match f.state {
            FindingState::Firing => AlertState::Firing,
            FindingState::Resolved => AlertState::Resolved,
        };
        Alert {
            rule: f.rule.into(),
            name: f.name.clone(),
            series: f.series.clone(),
            other: f.other.clone(),
            state,
            values,
            slope_per_sec: f.slope_per_sec,
            ratio: f.ratio,
            expected: f.expected.or(f.limit),
            window: f.window,
            since: f.since,
            at: f.at,
            hint,
            message: f.to_string(),
            time: Some(wall_clock()),
            instance: Some(Instance::current()),
        }
    }

    /// Builds a (firing, one-shot) alert from a scope finding.
    pub(crate) fn from_scope(f: &ScopeFinding, at: f64) -> Alert {
        let hint = vec![Site {
            location: f.site().to_owned(),
            live: 1,
            age_ms: match f {
                ScopeFinding::Outlived { age_ms, .. } => *age_ms,
                ScopeFinding::LateRegistration { .. } => 0,
            },
        }];
        Alert {
            rule: match f {
                ScopeFinding::LateRegistration { .. } => AlertRule::LateRegistration,
                ScopeFinding::Outlived { .. } => AlertRule::Outlived,
            },
            name: f.scope().to_owned(),
            series: f.item().to_owned(),
            other: Some(f.scope().to_owned()),
            state: AlertState::Firing,
            values: BTreeMap::new(),
            slope_per_sec: None,
            ratio: None,
            expected: None,
            window: None,
            since: at,
            at,
            hint,
            message: f.to_string(),
            time: Some(wall_clock()),
            instance: Some(Instance::current()),
        }
    }

    /// Whether this alert comes from a scope finding (one-shot, no resolved state).
    pub fn is_scope_finding(&self) -> bool {
        self.rule.is_scope_finding()
    }

    fn key(&self) -> (String, String, String) {
        let site = if self.is_scope_finding() {
            self.hint
                .first()
                .map(|s| s.location.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        (self.name.clone(), self.series.clone(), site)
    }
}

enum KeyState {
    Firing,
    Resolved {
        at: f64,
    },
    /// Re-fired inside the cooldown: not sent, and neither is its resolve if it comes before
    /// the cooldown ends; still firing when the cooldown ends, it is sent then
    /// ([`Deduper::release_due`]).
    Suppressed {
        resolved_at: f64,
        alert: Box<Alert>,
    },
}

/// De-duplicates alerts: a condition that resolves and fires again within the cooldown is not
/// re-sent (flapping) unless it is still firing when the cooldown ends, and a one-shot scope
/// finding from the same site is sent at most once per cooldown.
pub(crate) struct Deduper {
    cooldown: f64,
    states: HashMap<(String, String, String), KeyState>,
    suppressed: u64,
    /// Keys in the `Suppressed` state, so `release_due` costs nothing when there are none.
    pending: usize,
}

impl Deduper {
    pub(crate) fn new(cooldown: Duration) -> Self {
        Deduper {
            cooldown: cooldown.as_secs_f64(),
            states: HashMap::new(),
            suppressed: 0,
            pending: 0,
        }
    }

    /// Alerts suppressed so far.
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Firing/resolved alerts: suppress a re-fire (and its resolve) inside the cooldown.
    fn admit_stateful(&mut self, key: (String, String, String), alert: &Alert) -> bool {
        match (alert.state, self.states.get(&key)) {
            (AlertState::Firing, Some(KeyState::Resolved { at }))
                if alert.at - at < self.cooldown =>
            {
                let resolved_at = *at;
                self.pending += 1;
                self.states.insert(
                    key,
                    KeyState::Suppressed {
                        resolved_at,
                        alert: Box::new(alert.clone()),
                    },
                );
                false
            }
            (AlertState::Firing, Some(KeyState::Suppressed { .. } | KeyState::Firing)) => false,
            (AlertState::Firing, _) => {
                self.states.insert(key, KeyState::Firing);
                true
            }
            (AlertState::Resolved, Some(KeyState::Firing)) => {
                self.states.insert(key, KeyState::Resolved { at: alert.at });
                true
            }
            (AlertState::Resolved, Some(KeyState::Suppressed { resolved_at, .. })) => {
                let at = *resolved_at;
                self.pending -= 1;
                self.states.insert(key, KeyState::Resolved { at });
                false
            }
            (AlertState::Resolved, _) => false,
        }
    }

    /// The suppressed re-fires whose cooldown has ended by `now` and that are still firing:
    /// they are sent now (with `at = now`), and their resolve will be sent too.
    pub(crate) fn release_due(&mut self, now: f64) -> Vec<Alert> {
        if self.pending == 0 {
            return Vec::new();
        }
        let mut due = Vec::new();
        for state in self.states.values_mut() {
            let ended = matches!(state, KeyState::Suppressed { resolved_at, .. }
                if now - *resolved_at >= self.cooldown);
            if ended
                && let KeyState::Suppressed { mut alert, .. } =
                    std::mem::replace(state, KeyState::Firing)
            {
                alert.at = now;
                due.push(*alert);
            }
        }
        self.pending -= due.len();
        due
    }

    /// Whether `alert` should be sent.
    pub(crate) fn admit(&mut self, alert: &Alert) -> bool {
        let key = alert.key();
        let admit = if alert.is_scope_finding() {
            // One-shot: send unless the same finding was sent within the cooldown.
            match self.states.get(&key) {
                Some(KeyState::Resolved { at }) if alert.at - at < self.cooldown => false,
                _ => {
                    self.states.insert(key, KeyState::Resolved { at: alert.at });
                    true
                }
            }
        } else {
            self.admit_stateful(key, alert)
        };
        if !admit {
            self.suppressed += 1;
        }
        admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: AlertState, at: f64) -> Alert {
        Alert {
            rule: AlertRule::Growth,
            name: "growth".into(),
            series: "live.x".into(),
            other: None,
            state,
            values: BTreeMap::new(),
            slope_per_sec: None,
            ratio: None,
            expected: None,
            window: None,
            since: at,
            at,
            hint: vec![],
            message: String::new(),
            time: None,
            instance: None,
        }
    }

    #[test]
    fn flapping_inside_cooldown_is_suppressed() {
        let mut d = Deduper::new(Duration::from_secs(60));
        assert!(d.admit(&alert(AlertState::Firing, 0.0)));
        assert!(d.admit(&alert(AlertState::Resolved, 10.0)));
        assert!(!d.admit(&alert(AlertState::Firing, 20.0)));
        assert!(!d.admit(&alert(AlertState::Resolved, 30.0)));
        assert!(d.admit(&alert(AlertState::Firing, 100.0)));
        assert_eq!(d.suppressed(), 2);
    }

    #[test]
    fn a_refire_still_firing_after_the_cooldown_is_sent_then() {
        let mut d = Deduper::new(Duration::from_secs(60));
        assert!(d.admit(&alert(AlertState::Firing, 0.0)));
        assert!(d.admit(&alert(AlertState::Resolved, 10.0)));
        assert!(!d.admit(&alert(AlertState::Firing, 20.0)), "flapping");
        assert!(d.release_due(69.0).is_empty(), "cooldown not over");
        let due = d.release_due(70.0);
        assert_eq!(due.len(), 1, "the lasting condition is reported");
        assert_eq!(
            (due[0].state, due[0].since, due[0].at),
            (AlertState::Firing, 20.0, 70.0)
        );
        assert!(d.release_due(80.0).is_empty(), "sent once");
        assert!(
            d.admit(&alert(AlertState::Resolved, 90.0)),
            "and its resolve follows"
        );
    }

    #[test]
    fn resolve_without_fire_is_dropped() {
        let mut d = Deduper::new(Duration::from_secs(60));
        assert!(!d.admit(&alert(AlertState::Resolved, 1.0)));
    }

    #[test]
    fn one_shot_findings_respect_cooldown() {
        let f = ScopeFinding::LateRegistration {
            scope: "conn".into(),
            item: "relay".into(),
            site: "a.rs:1:1".into(),
            after_close_ms: 3,
        };
        let mut d = Deduper::new(Duration::from_secs(60));
        assert!(d.admit(&Alert::from_scope(&f, 0.0)));
        assert!(!d.admit(&Alert::from_scope(&f, 5.0)));
        assert!(d.admit(&Alert::from_scope(&f, 61.0)));
    }
}

//! Output of `analyze`: the human report and the `{"findings": [...]}` JSON object, plus the
//! time and number formatting shared with `plot`.

use std::io::{self, Write};

use leakwatch_detect::{Finding, ResolvedBy, RuleKind, RuleSet};
use serde_json::{Map, Value, json};

use crate::analyze::Analysis;
use crate::source::Meta;

/// Writes exactly one JSON object and a newline: `{"findings": [...]}`.
///
/// Each element is the serialized firing [`Finding`] (stable fields `rule`, `series`, `at`,
/// `since`, `state`, ...) plus, when known, `at_time` (ISO 8601 UTC of `at`), `resolved_at`
/// and `resolved_by`.
pub fn write_json(out: &mut impl Write, meta: &Meta, analysis: &Analysis) -> io::Result<()> {
    let findings: Vec<Value> = analysis
        .episodes
        .iter()
        .map(|e| {
            let mut obj = match serde_json::to_value(&e.firing) {
                Ok(Value::Object(m)) => m,
                // A Finding always serializes to an object; keep the output valid regardless.
                _ => Map::new(),
            };
            if let Some(ts) = unix_secs(meta, e.firing.at) {
                obj.insert("at_time".into(), Value::String(iso8601(ts)));
            }
            if let Some(r) = &e.resolved {
                obj.insert("resolved_at".into(), json!(r.at));
                obj.insert("resolved_by".into(), json!(r.resolved_by));
            }
            Value::Object(obj)
        })
        .collect();
    serde_json::to_writer(&mut *out, &json!({ "findings": findings }))?;
    writeln!(out)
}

/// Writes the human report.
pub fn write_text(
    out: &mut impl Write,
    meta: &Meta,
    rules: &RuleSet,
    a: &Analysis,
) -> io::Result<()> {
    writeln!(out, "leakwatch analyze: {}", meta.label)?;
    if let Some((t0, t1)) = a.span {
        let start = match unix_secs(meta, 0.0) {
            Some(s) if !meta.graphite => format!("; recording started {}", utc(s)),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {} ticks, {} series, {} .. {} ({}){start}",
            a.ticks,
            a.series,
            when(meta, t0),
            when(meta, t1),
            duration(t1 - t0)
        )?;
    }
    writeln!(out, "  rules: {}", describe_rules(rules))?;
    writeln!(out)?;
    if a.episodes.is_empty() {
        writeln!(out, "No findings.")?;
    } else {
        writeln!(out, "{} finding(s):", a.episodes.len())?;
        for e in &a.episodes {
            write_finding(out, meta, &e.firing, e.resolved.as_ref())?;
        }
    }
    if !a.alerts.is_empty() {
        writeln!(out)?;
        writeln!(out, "Alerts recorded in the input ({}):", a.alerts.len())?;
        for r in &a.alerts {
            let field = |k: &str| r.alert.get(k).and_then(Value::as_str).unwrap_or("?");
            writeln!(
                out,
                "  {:<32} {:<8} {:<10} {}",
                when(meta, r.t),
                field("state"),
                field("rule"),
                field("series")
            )?;
        }
    }
    let notes = notes(a);
    if !notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "Not judged ({}):", notes.len())?;
        for n in &notes {
            writeln!(out, "  {n}")?;
        }
    }
    writeln!(out)?;
    // Growth is judged only once a series has been seen for the warm-up: on a shorter input
    // "no leak found" would claim more than was tested.
    let span = a.span.map_or(0.0, |(t0, t1)| t1 - t0);
    let warmup = rules
        .growth
        .iter()
        .map(|g| g.warmup.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    let too_short_for_growth = warmup.is_finite() && span < warmup;
    match (a.episodes.len(), a.open()) {
        (0, _) if !a.unmatched.is_empty() => writeln!(
            out,
            "Verdict: nothing found, but {} rule(s) watched no series of the input (see \
             \"Not judged\" above): no leak found by them is no evidence.",
            a.unmatched.len()
        ),
        (0, _) if too_short_for_growth => writeln!(
            out,
            "Verdict: nothing found, but growth was not judged: the input spans {}, and growth \
             is judged only after a series has been seen for {} (its warm-up).",
            duration(span),
            duration(warmup)
        ),
        (0, _) => writeln!(out, "Verdict: no leak found."),
        (n, 0) => writeln!(
            out,
            "Verdict: {n} finding(s), all resolved by the end of the input."
        ),
        (n, open) => writeln!(
            out,
            "Verdict: {n} finding(s), {open} still firing at the end of the input."
        ),
    }
}

/// What the analysis could not judge, one line each: rules that matched no series of the
/// input (with a `--watch` suggestion when the growth watch matched nothing), growth watched
/// on counters, and recording files whose cut-off last line was skipped.
pub fn notes(a: &Analysis) -> Vec<String> {
    let mut notes = Vec::new();
    for u in &a.unmatched {
        notes.push(format!("rule {u}"));
    }
    if a.unmatched
        .iter()
        .any(|u| u.missing.iter().any(|m| m.starts_with("no series matches")))
    {
        let more = if a.series > a.names.len() {
            format!(", ... ({} in all)", a.series)
        } else {
            String::new()
        };
        notes.push(format!(
            "series in the input: {}{more}; choose the ones to watch with --watch PATTERN \
             (e.g. --watch '{}')",
            a.names.join(", "),
            suggest_pattern(&a.names)
        ));
    }
    if !a.counters_watched.is_empty() {
        notes.push(format!(
            "{} watched for growth but recorded as counters (running totals always grow): {}",
            a.counters_watched.len(),
            a.counters_watched.join(", ")
        ));
    }
    for path in &a.truncated {
        notes.push(format!(
            "the last line of {} was cut off mid-line (the writer stopped while writing it) \
             and was skipped",
            path.display()
        ));
    }
    notes
}

/// A `--watch` pattern for the first series: its first name component and `*`.
fn suggest_pattern(names: &[String]) -> String {
    names
        .first()
        .and_then(|n| n.split('.').next())
        .map_or_else(|| "live.*".to_owned(), |head| format!("{head}.*"))
}

fn describe_rules(rules: &RuleSet) -> String {
    let mut parts = Vec::new();
    for g in &rules.growth {
        let rel = g
            .relative_to
            .as_ref()
            .map(|l| format!(" relative to {l}"))
            .unwrap_or_default();
        parts.push(format!("growth of {}{rel}", g.series.patterns().join(", ")));
    }
    for d in &rules.divergence {
        let offset = if d.offset == 0.0 {
            String::new()
        } else {
            format!(" + {}", num(d.offset))
        };
        parts.push(format!(
            "divergence {} ≈ {}·{}{offset}",
            d.series,
            num(d.ratio),
            d.other
        ));
    }
    for c in &rules.ceiling {
        parts.push(c.name.clone());
    }
    parts.join("; ")
}

fn write_finding(
    out: &mut impl Write,
    meta: &Meta,
    f: &Finding,
    resolved: Option<&Finding>,
) -> io::Result<()> {
    let other = f.other.as_deref().unwrap_or("?");
    match f.rule {
        RuleKind::Divergence => writeln!(out, "  divergence  {} vs {other}", f.series)?,
        _ => writeln!(out, "  {:<10}  {}", f.rule.as_str(), f.series)?,
    }
    writeln!(
        out,
        "      detected  {}, condition since {}",
        when(meta, f.at),
        when(meta, f.since)
    )?;
    let mut detail = match f.rule {
        RuleKind::Growth => {
            let mut s = match f.slope_per_sec {
                Some(slope) if f.other.is_some() => {
                    format!("ratio to {other} grows {}/s", signed(slope))
                }
                Some(slope) => format!("grows {}/s ({}/h)", signed(slope), signed(slope * 3600.0)),
                None => "grows".into(),
            };
            if let Some(z) = f.z {
                s.push_str(&format!(", trend z {z:.1}"));
            }
            if let Some(r) = f.ratio {
                s.push_str(&format!(", ratio now {}", num(r)));
            }
            s
        }
        RuleKind::Divergence => format!(
            "{} = {}, expected {} from {other} = {} ({} off)",
            f.series,
            num(f.value),
            f.expected.map(num).unwrap_or_else(|| "?".into()),
            f.other_value.map(num).unwrap_or_else(|| "?".into()),
            f.expected
                .map(|e| signed(f.value - e))
                .unwrap_or_else(|| "?".into()),
        ),
        RuleKind::Ceiling => format!(
            "value {} over the limit {}{}",
            num(f.value),
            f.limit.map(num).unwrap_or_else(|| "?".into()),
            f.other
                .as_ref()
                .map(|o| format!(" ({o} = {})", f.other_value.map(num).unwrap_or_default()))
                .unwrap_or_default()
        ),
    };
    if f.rule == RuleKind::Growth {
        detail.push_str(&format!("; value {}", num(f.value)));
    }
    writeln!(out, "      evidence  {detail}")?;
    if let Some(w) = f.window {
        writeln!(
            out,
            "      window    {} .. {} ({})",
            when(meta, w.start),
            when(meta, w.end),
            duration(w.seconds())
        )?;
    }
    match resolved {
        None => writeln!(out, "      status    still firing at the end of the input"),
        Some(r) => writeln!(
            out,
            "      status    resolved {} ({})",
            when(meta, r.at),
            match r.resolved_by {
                Some(ResolvedBy::Cleared) | None => "cleared",
                Some(ResolvedBy::Reset) => "series restarted from zero: a restart, not a cure",
                Some(ResolvedBy::Gone) => "series stopped reporting",
            }
        ),
    }
}

/// Unix seconds of input time `t`, when the input says when it started.
pub fn unix_secs(meta: &Meta, t: f64) -> Option<f64> {
    meta.started_at_ms.map(|ms| ms as f64 / 1000.0 + t)
}

/// `t=1830s (2025-11-24 16:30:30 UTC)`, or just the wall time for Graphite input.
pub fn when(meta: &Meta, t: f64) -> String {
    match unix_secs(meta, t) {
        Some(s) if meta.graphite => utc(s),
        Some(s) => format!("t={}s ({})", num(t), utc(s)),
        None => format!("t={}s", num(t)),
    }
}

/// `2025-11-24 16:30:30 UTC`.
pub fn utc(unix: f64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `2025-11-24T16:30:30Z`.
pub fn iso8601(unix: f64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Splits Unix seconds into UTC (year, month, day, hour, minute, second).
///
/// Howard Hinnant's days-to-civil algorithm: exact for the proleptic Gregorian calendar and
/// small enough not to need a date crate.
pub fn civil(unix: f64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = unix.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `2h05m`, `10m30s`, `45s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A number for people: integers as such, others with 4 significant digits.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        format!("{v:.digits$}")
    }
}

fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", num(v))
    } else {
        num(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(iso8601(1_764_000_000.0), "2025-11-24T16:00:00Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(num(512.0), "512");
        assert_eq!(num(0.05012), "0.05012");
        assert_eq!(num(1234.5678), "1235");
        assert_eq!(duration(630.0), "10m30s");
        assert_eq!(duration(7200.0), "2h00m");
    }
}

//! `leakwatch analyze`: replay samples through one detector [`Engine`] and report.
//!
//! The engine is clock-free, so replaying a recording gives the findings the live watchdog
//! would have raised at the same instants.
//!
//! ```
//! use std::collections::BTreeMap;
//! use leakwatch::recording::Record;
//! use leakwatch_cli::analyze::{RuleArgs, analyze};
//! use leakwatch_cli::source::{Meta, Source};
//!
//! // Callbacks that should follow the streams, but run 30 ahead from t = 100 s.
//! let ticks = (1..=600u32).map(|s| {
//!     let extra = if s > 100 { 30.0 } else { 0.0 };
//!     Record::Tick {
//!         t: f64::from(s),
//!         values: BTreeMap::from([
//!             ("live.http.streams".to_string(), 400.0),
//!             ("live.presence.callbacks".to_string(), 400.0 + extra),
//!         ]),
//!     }
//! });
//! let rules = RuleArgs {
//!     pairs: vec!["live.presence.callbacks=live.http.streams".parse()?],
//!     ..RuleArgs::default()
//! }
//! .rule_set(false)?;
//! let mut source = Source::from_records(Meta::new("in memory"), ticks.collect());
//! let analysis = analyze(&mut source, rules)?;
//! assert_eq!(analysis.episodes.len(), 1);
//! let found = &analysis.episodes[0].firing;
//! assert_eq!((found.rule.as_str(), found.series.as_str()), ("divergence", "live.presence.callbacks"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap};

use leakwatch::MetricKind;
use leakwatch::recording::Record;
use leakwatch::watchdog::{RuleConfig, UnmatchedRule, unmatched_rules};
use leakwatch_detect::{
    CeilingRule, DivergenceRule, Engine, Finding, FindingState, RuleKind, RuleSet, Selector,
};
use serde_json::Value;

use crate::Error;
use crate::report;
use crate::source::{InputArgs, Source};

/// Options of `leakwatch analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to read samples from.
    #[command(flatten)]
    pub input: InputArgs,
    /// Rules added to (or replacing) the watchdog's defaults.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Print exactly one JSON object `{"findings": [...]}` on stdout instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 3 when anything was found (default: 0 whenever the input was read).
    #[arg(long)]
    pub fail_on_findings: bool,
}

/// Rule options, shared with `plot --analyze`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuleArgs {
    /// Two series that should match: `A=B` (A ≈ B), `A=B*K` (A ≈ K·B) or `A=B*K+C`; reported
    /// when they drift apart for a minute. Repeatable.
    #[arg(long = "pair", value_name = "A=B[*K][+C]", value_parser = parse_pair)]
    pub pairs: Vec<Pair>,
    /// Judge growth relative to this load series (e.g. `live.http.streams`): growth that
    /// merely follows the load is not a leak.
    #[arg(long, value_name = "SERIES")]
    pub load: Option<String>,
    /// A limit: `SERIES=MAX`, or `SERIES=MAX/PER` for at most MAX per unit of series PER.
    /// SERIES may use `*` wildcards. Repeatable.
    #[arg(long = "ceiling", value_name = "SERIES=MAX[/PER]", value_parser = parse_ceiling)]
    pub ceilings: Vec<Ceiling>,
    /// Series watched for growth, replacing the default selection (`live.*`,
    /// `memory.resident_bytes`, `memory.heap_bytes`). Repeatable.
    #[arg(long = "watch", value_name = "PATTERN")]
    pub watch: Vec<String>,
}

/// A `--pair A=B*K+C` option: series `a` should stay near `ratio × b + offset`. Parses
/// from its command-line form (`"a=b*2+1".parse()`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The series judged.
    pub a: String,
    /// The series it should follow.
    pub b: String,
    /// Expected `a` per unit of `b`.
    pub ratio: f64,
    /// Expected `a` when `b` is zero.
    pub offset: f64,
}

impl std::str::FromStr for Pair {
    type Err = Error;

    fn from_str(s: &str) -> Result<Pair, Error> {
        parse_pair(s).map_err(|reason| Error::BadOption {
            option: "--pair",
            value: s.to_owned(),
            reason,
        })
    }
}

/// A `--ceiling SERIES=MAX[/PER]` option: at most `max` of `series` (per unit of `per`).
/// Parses from its command-line form (`"live.cb=3/live.http.streams".parse()`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    /// The option as written; the rule's name is `ceiling:<spec>`.
    pub spec: String,
    /// Series pattern (`*` wildcards allowed).
    pub series: String,
    /// The limit.
    pub max: f64,
    /// The series the limit is per unit of, if any.
    pub per: Option<String>,
}

impl std::str::FromStr for Ceiling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ceiling, Error> {
        parse_ceiling(s).map_err(|reason| Error::BadOption {
            option: "--ceiling",
            value: s.to_owned(),
            reason,
        })
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn parse_pair(s: &str) -> Result<Pair, String> {
    let (a, rhs) = s
        .split_once('=')
        .ok_or("expected A=B, e.g. live.presence.callbacks=live.http.streams")?;
    // Peel `+C` then `*K` off the right; series names never contain `*` (it is the glob
    // character) and a `+` is only taken as an offset when a number follows it.
    let (rhs, offset) = match rhs.rsplit_once('+') {
        Some((head, c)) if parse_number(c).is_some() => (head, parse_number(c).unwrap_or(0.0)),
        _ => (rhs, 0.0),
    };
    let (b, ratio) = match rhs.rsplit_once('*') {
        Some((head, k)) => (
            head,
            parse_number(k).ok_or_else(|| format!("`{k}` after `*` is not a number"))?,
        ),
        None => (rhs, 1.0),
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() || b.is_empty() {
        return Err("both series must be named: A=B".into());
    }
    Ok(Pair {
        a: a.into(),
        b: b.into(),
        ratio,
        offset,
    })
}

fn parse_ceiling(s: &str) -> Result<Ceiling, String> {
    let (series, rhs) = s.split_once('=').ok_or(
        "expected SERIES=MAX or SERIES=MAX/PER, e.g. live.presence.callbacks=3/live.http.streams",
    )?;
    let (max, per) = match rhs.split_once('/') {
        Some((m, per)) => (m, Some(per.trim().to_owned())),
        None => (rhs, None),
    };
    let max = parse_number(max).ok_or_else(|| format!("`{max}` is not a number"))?;
    if series.trim().is_empty() || per.as_deref() == Some("") {
        return Err("series names must not be empty".into());
    }
    Ok(Ceiling {
        spec: s.to_owned(),
        series: series.trim().to_owned(),
        max,
        per,
    })
}

impl RuleArgs {
    /// The options as the watchdog's [`RuleConfig`]: `--watch` replaces the default growth
    /// selection, `--load` is the default growth watch's load series, and every `--pair` and
    /// `--ceiling` is an added rule. A watchdog started with the same config
    /// ([`WatchdogBuilder::rule_config`](leakwatch::WatchdogBuilder::rule_config)) runs the
    /// same rules.
    pub fn rule_config(&self) -> Result<RuleConfig, Error> {
        let mut config = RuleConfig {
            watch: (!self.watch.is_empty()).then(|| self.watch.clone()),
            load: self.load.clone(),
            ..RuleConfig::default()
        };
        for p in &self.pairs {
            config.rules.push(
                DivergenceRule::new(&p.a, &p.b)
                    .ratio(p.ratio)
                    .offset(p.offset),
            );
        }
        for c in &self.ceilings {
            let sel = Selector::new([c.series.as_str()])?;
            let rule = match &c.per {
                None => CeilingRule::absolute(sel, c.max),
                Some(per) => CeilingRule::per_unit(sel, per, c.max),
            };
            config.rules.push(rule.name(format!("ceiling:{}", c.spec)));
        }
        Ok(config)
    }

    /// The rules to run: [`rule_config`](Self::rule_config), built as the watchdog builds it.
    ///
    /// `graphite`: series names carry a path before the leakwatch name
    /// (`stats.gauges.app.web1.leakwatch.live.x`), so every growth pattern is also tried
    /// after any dotted prefix.
    pub fn rule_set(&self, graphite: bool) -> Result<RuleSet, Error> {
        let mut rules = self.rule_config()?.build()?;
        if graphite {
            for g in &mut rules.growth {
                let mut patterns = g.series.patterns().to_vec();
                for p in g.series.patterns() {
                    if !p.starts_with('*') {
                        patterns.push(format!("*.{p}"));
                    }
                }
                g.series = Selector::new(patterns)?;
            }
        }
        Ok(rules)
    }
}

/// One firing finding and, if it happened within the input, its resolution.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The `firing` transition.
    pub firing: Finding,
    /// The matching `resolved` transition, if any.
    pub resolved: Option<Finding>,
}

/// An alert line found in the input.
#[derive(Debug, Clone)]
pub struct RecordedAlert {
    /// When.
    pub t: f64,
    /// The alert object as written.
    pub alert: Value,
}

/// Everything one pass over the input produced.
#[derive(Debug)]
pub struct Analysis {
    /// Ticks read.
    pub ticks: u64,
    /// Distinct series seen.
    pub series: usize,
    /// First and last tick time.
    pub span: Option<(f64, f64)>,
    /// Findings, in detection order.
    pub episodes: Vec<Episode>,
    /// Alerts written in the input.
    pub alerts: Vec<RecordedAlert>,
    /// Rules that judged nothing: none of the series they name or select is in the input.
    pub unmatched: Vec<UnmatchedRule>,
    /// Up to [`NAMES_KEPT`] series names seen, in name order (for suggestions).
    pub names: Vec<String>,
    /// Growth-watched series the input declares as counters (running totals, which always
    /// rise): their growth says nothing about a leak.
    pub counters_watched: Vec<String>,
    /// Recording files whose last line was cut off mid-object and skipped.
    pub truncated: Vec<std::path::PathBuf>,
}

/// How many series names an [`Analysis`] keeps for its suggestions.
pub const NAMES_KEPT: usize = 40;

impl Analysis {
    /// Findings still firing at the end of the input.
    pub fn open(&self) -> usize {
        self.episodes
            .iter()
            .filter(|e| e.resolved.is_none())
            .count()
    }
}

/// Feeds every tick of `source` through one engine running `rules` and collects what it
/// found, in detection order, with the alerts written in the input.
pub fn analyze(source: &mut Source, rules: RuleSet) -> Result<Analysis, Error> {
    let mut engine = Engine::new(rules)?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    let mut episodes: Vec<Episode> = Vec::new();
    // (rule kind, rule name, series, other) -> index of the episode still firing.
    let mut open: HashMap<(RuleKind, String, String, Option<String>), usize> = HashMap::new();
    let mut analysis = Analysis {
        ticks: 0,
        series: 0,
        span: None,
        episodes: Vec::new(),
        alerts: Vec::new(),
        unmatched: Vec::new(),
        names: Vec::new(),
        counters_watched: Vec::new(),
        truncated: Vec::new(),
    };
    for record in &mut *source {
        match record? {
            Record::Tick { t, values } => {
                analysis.ticks += 1;
                analysis.span = Some(match analysis.span {
                    None => (t, t),
                    Some((a, b)) => (a.min(t), b.max(t)),
                });
                // Cloning each name once per run, not per tick, keeps this cheap.
                for k in values.keys() {
                    if !names.contains(k) {
                        names.insert(k.clone());
                    }
                }
                out.clear();
                engine.observe_into(t, values.iter().map(|(k, v)| (k.as_str(), *v)), &mut out);
                for f in out.drain(..) {
                    let key = (f.rule, f.name.clone(), f.series.clone(), f.other.clone());
                    match f.state {
                        FindingState::Firing => {
                            open.insert(key, episodes.len());
                            episodes.push(Episode {
                                firing: f,
                                resolved: None,
                            });
                        }
                        FindingState::Resolved => {
                            if let Some(i) = open.remove(&key) {
                                episodes[i].resolved = Some(f);
                            }
                        }
                    }
                }
            }
            Record::Alert { t, alert } => analysis.alerts.push(RecordedAlert { t, alert }),
        }
    }
    analysis.series = names.len();
    analysis.episodes = episodes;
    analysis.unmatched = unmatched_rules(engine.rules(), names.iter().map(String::as_str));
    analysis.counters_watched = names
        .iter()
        .filter(|n| engine.rules().growth.iter().any(|g| g.series.matches(n)))
        .filter(|n| source.kind(n) == Some(MetricKind::Counter))
        .cloned()
        .collect();
    analysis.names = names.into_iter().take(NAMES_KEPT).collect();
    analysis.truncated = source.truncated().to_vec();
    Ok(analysis)
}

/// Runs `leakwatch analyze`: reads the input, prints the report on standard output, and
/// returns whether the exit status should say "found" (only with `--fail-on-findings`).
pub fn run(args: &Args, quiet: bool) -> Result<bool, Error> {
    let mut source = Source::open(&args.input, quiet)?;
    let rules = args.rules.rule_set(source.meta.graphite)?;
    let analysis = analyze(&mut source, rules.clone())?;
    if analysis.ticks == 0 {
        return Err(Error::NoData(format!(
            "{} has no samples (only a header{})",
            source.meta.label,
            if analysis.alerts.is_empty() {
                ""
            } else {
                " and alerts"
            }
        )));
    }
    let stdout = &mut std::io::stdout().lock();
    let written = if args.json {
        // One JSON object on stdout; what was not judged goes to stderr.
        for note in report::notes(&analysis) {
            eprintln!("leakwatch: note: {note}");
        }
        report::write_json(stdout, &source.meta, &analysis)
    } else {
        report::write_text(stdout, &source.meta, &rules, &analysis)
    };
    match written {
        // `leakwatch analyze rec | head` closing the pipe early is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            return Err(Error::Output {
                path: "standard output".into(),
                reason: e.to_string(),
            });
        }
        Ok(()) => {}
    }
    Ok(args.fail_on_findings && !analysis.episodes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let p = parse_pair("a.b=c.d").unwrap();
        assert_eq!(
            (p.a.as_str(), p.b.as_str(), p.ratio, p.offset),
            ("a.b", "c.d", 1.0, 0.0)
        );
        let p = parse_pair("a=b*2.5+10").unwrap();
        assert_eq!((p.b.as_str(), p.ratio, p.offset), ("b", 2.5, 10.0));
        let p = parse_pair("a=b+c").unwrap();
        assert_eq!(p.b, "b+c");
        assert!(parse_pair("a").is_err());
        assert!(parse_pair("a=b*x").is_err());
        assert!(parse_pair("=b").is_err());
    }

    #[test]
    fn ceilings() {
        let c = parse_ceiling("live.*=1000").unwrap();
        assert_eq!((c.series.as_str(), c.max, c.per), ("live.*", 1000.0, None));
        let c = parse_ceiling("live.cb=3/live.streams").unwrap();
        assert_eq!(c.per.as_deref(), Some("live.streams"));
        assert!(parse_ceiling("x=y").is_err());
        assert!(parse_ceiling("x=3/").is_err());
    }

    #[test]
    fn graphite_patterns_match_after_a_path() {
        let rules = RuleArgs::default().rule_set(true).unwrap();
        let sel = &rules.growth[0].series;
        assert!(sel.matches("live.x"));
        assert!(sel.matches("stats.gauges.app.web1.leakwatch.live.x"));
        assert!(!sel.matches("stats.gauges.app.web1.leakwatch.created.x"));
    }
}

//! `leakwatch plot`: the graphs that found the Flowdock leaks (memory, delivery volume, HTTP
//! status codes, callback counts) as stacked panels with alert times marked.
//!
//! Series are grouped by metric prefix (`live.*`, `memory.*`, `delivered.*`,
//! `count.http.status.*`, ...). Counters (`created.*`, `delivered.*`, `count.*`, ...) are
//! drawn as per-second rates, because a cumulative total always rises and hides the shape
//! that matters (a peak in delivery volume). Every series is downsampled while reading into
//! at most 1024 buckets (min and max kept for levels, the mean for rates), so memory stays
//! bounded whatever the recording's length and spikes stay visible.
//!
//! ```
//! use std::collections::BTreeMap;
//! use leakwatch::recording::Record;
//! use leakwatch_cli::plot::{self, PlotOptions};
//! use leakwatch_cli::source::{Meta, Source};
//!
//! let mut records: Vec<Record> = (0..600u32)
//!     .map(|s| Record::Tick {
//!         t: f64::from(s),
//!         values: BTreeMap::from([
//!             ("live.http.streams".to_string(), 100.0),
//!             ("live.presence.callbacks".to_string(), 100.0 + f64::from(s / 60)),
//!             ("count.http.status.409".to_string(), f64::from(s / 3)),
//!         ]),
//!     })
//!     .collect();
//! // An alert as the watchdog records it: a red line at t = 300 s.
//! let alert = serde_json::json!({"rule": "growth", "series": "live.presence.callbacks", "state": "firing"});
//! records.push(Record::Alert { t: 300.0, alert });
//!
//! let meta = Meta::new("demo").started_at_ms(1_764_000_000_000);
//! let options = PlotOptions { width: 800, ..PlotOptions::default() };
//! let chart = plot::chart(&mut Source::from_records(meta, records), &options)?;
//! assert_eq!((chart.panels(), chart.series(), chart.markers()), (2, 3, 1));
//! let path = std::env::temp_dir().join(format!("leakwatch-doc-{}.svg", std::process::id()));
//! plot::write_file(&chart, &path)?;
//! assert!(std::fs::read_to_string(&path)?.contains("count.http.status.* (per second)"));
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use leakwatch::MetricKind;
use leakwatch::recording::Record;
use leakwatch_detect::{Engine, FindingState, Selector};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

use crate::Error;
use crate::analyze::RuleArgs;
use crate::glyphs::{GlyphBackend, encode_png};
use crate::report;
use crate::source::{InputArgs, Meta, Source};

/// Options of `leakwatch plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to read samples from.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output file; the format follows the extension: `.svg` or `.png`.
    #[arg(short, long, value_name = "FILE.svg|FILE.png")]
    pub output: PathBuf,
    /// What to draw.
    #[command(flatten)]
    pub options: PlotOptions,
}

/// What to draw and how big; [`Default`] gives the command's defaults.
#[derive(Clone, Debug, clap::Args)]
pub struct PlotOptions {
    /// Series to draw (`*` matches anything, dots included). Repeatable. Default: `live.*`,
    /// `memory.resident_bytes`, `memory.heap_bytes`, `delivered.*`, `count.*`, or every
    /// series when none of those exist.
    #[arg(long = "series", value_name = "PATTERN")]
    pub series: Vec<String>,
    /// Image width, pixels (300 to 10,000).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(300..=10_000))]
    pub width: u32,
    /// Image height, pixels (150 to 20,000; default: 52 + 260 per panel).
    #[arg(long, value_parser = clap::value_parser!(u32).range(150..=20_000))]
    pub height: Option<u32>,
    /// Also run the detectors (with the rule options below, as `analyze` does) and mark their
    /// findings.
    #[arg(long)]
    pub analyze: bool,
    /// Rules for `--analyze`.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Chart title (default: the input's name and time range).
    #[arg(long)]
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            series: Vec::new(),
            width: 1200,
            height: None,
            analyze: false,
            rules: RuleArgs::default(),
            title: None,
        }
    }
}

/// Series drawn when no `--series` is given: the seed story's graphs.
const DEFAULT_SERIES: &[&str] = &[
    "live.*",
    "memory.resident_bytes",
    "memory.heap_bytes",
    "delivered.*",
    "count.*",
];

/// Metric prefixes (from `Snapshot::metrics`) whose values are running totals: the guess
/// for recordings that do not declare their metrics' kinds (written before they did).
const COUNTER_PREFIXES: &[&str] = &[
    "created",
    "dropped",
    "delivered",
    "emitted",
    "closed_normal",
    "closed_aborted",
    "closed_dead",
    "closed_error",
    "reaped",
    "late",
    "outlived",
    "count",
];

/// Buckets kept per series; two points (min, max) each for levels.
const MAX_BUCKETS: usize = 1024;

/// Series drawn per panel at most; the legend says how many more were left out.
const MAX_PER_PANEL: usize = 12;

/// Series colours: dark, distinct, and free of the red/green/orange used for markers.
const PALETTE: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 160, 180),
    RGBColor(110, 110, 110),
    RGBColor(160, 160, 20),
    RGBColor(0, 0, 128),
    RGBColor(0, 110, 110),
    RGBColor(30, 30, 30),
];

const FIRING: RGBColor = RGBColor(214, 39, 40);
const RESOLVED: RGBColor = RGBColor(44, 160, 44);
const FINDING: RGBColor = RGBColor(255, 127, 14);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    idx: i64,
    min: (f64, f64),
    max: (f64, f64),
    w: f64,
    wv: f64,
    wt: f64,
}

impl Bucket {
    fn new(idx: i64, t: f64, v: f64, w: f64) -> Self {
        Bucket {
            idx,
            min: (t, v),
            max: (t, v),
            w,
            wv: w * v,
            wt: w * t,
        }
    }

    fn merge(&mut self, o: &Bucket) {
        if o.min.1 < self.min.1 {
            self.min = o.min;
        }
        if o.max.1 > self.max.1 {
            self.max = o.max;
        }
        self.w += o.w;
        self.wv += o.wv;
        self.wt += o.wt;
    }
}

/// Streaming downsampler: fixed-width time buckets whose width doubles whenever there are
/// more than [`MAX_BUCKETS`] of them.
#[derive(Debug)]
struct Downsampler {
    origin: f64,
    width: f64,
    mean: bool,
    buckets: Vec<Bucket>,
}

impl Downsampler {
    fn new(origin: f64, width: f64, mean: bool) -> Self {
        Downsampler {
            origin,
            width,
            mean,
            buckets: Vec::new(),
        }
    }

    fn push(&mut self, t: f64, v: f64, weight: f64) {
        let idx = ((t - self.origin) / self.width).floor() as i64;
        let b = Bucket::new(idx, t, v, weight);
        match self.buckets.last_mut() {
            Some(last) if last.idx == idx => last.merge(&b),
            // Out-of-order samples (overlapping parts) are dropped, as the engine does.
            Some(last) if last.idx > idx => {}
            _ => self.buckets.push(b),
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.width *= 2.0;
            let mut merged: Vec<Bucket> = Vec::with_capacity(MAX_BUCKETS / 2 + 1);
            for mut b in self.buckets.drain(..) {
                b.idx = b.idx.div_euclid(2);
                match merged.last_mut() {
                    Some(l) if l.idx == b.idx => l.merge(&b),
                    _ => merged.push(b),
                }
            }
            self.buckets = merged;
        }
    }

    /// The kept points as line segments, split where data is missing for a while.
    fn segments(&self, interval: f64) -> Vec<Vec<(f64, f64)>> {
        let gap = 3.0 * self.width.max(interval);
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut last_t = f64::NEG_INFINITY;
        for b in &self.buckets {
            let pts: Vec<(f64, f64)> = if self.mean {
                vec![(b.wt / b.w, b.wv / b.w)]
            } else if b.min.0 <= b.max.0 {
                vec![b.min, b.max]
            } else {
                vec![b.max, b.min]
            };
            for p in pts {
                if p.0 - last_t > gap || out.is_empty() {
                    out.push(Vec::new());
                }
                if let Some(seg) = out.last_mut()
                    && seg.last() != Some(&p)
                {
                    seg.push(p);
                }
                last_t = p.0;
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    rank: u8,
    key: String,
    rate: bool,
}

impl GroupKey {
    fn title(&self) -> String {
        match (self.key.as_str(), self.rate) {
            ("memory", false) => "memory.* (bytes)".into(),
            (k, true) => format!("{k}.* (per second)"),
            (k, false) => format!("{k}.*"),
        }
    }
}

/// Which panel a series goes to, and whether it is a running total to draw as a rate: as
/// the input declares its kind, or (recordings that declare none) by its metric prefix.
fn classify(name: &str, graphite: bool, kind: Option<MetricKind>) -> GroupKey {
    if graphite {
        // StatsD already turned counters into rates; group by the leakwatch name inside the
        // Graphite path when there is one (`stats.gauges.app.web1.leakwatch.live.x`).
        let local = name
            .split_once("leakwatch.")
            .map(|(_, l)| l)
            .unwrap_or(name);
        let key = local.split('.').next().unwrap_or(local);
        return GroupKey {
            rank: if key == "live" { 0 } else { 4 },
            key: key.to_owned(),
            rate: false,
        };
    }
    let head = name.split('.').next().unwrap_or(name);
    let rate = match kind {
        Some(kind) => kind == MetricKind::Counter,
        None => {
            COUNTER_PREFIXES.contains(&head)
                || (head == "memory" && !name.ends_with("_bytes") && name.contains('.'))
        }
    };
    let key = if head == "count" {
        // `count.http.status.409` and `count.http.status.200` belong together.
        name.rsplit_once('.').map(|(k, _)| k).unwrap_or(head)
    } else {
        head
    };
    let rank = match (head, rate) {
        ("live", _) => 0,
        ("memory", false) => 1,
        ("delivered", _) => 2,
        ("count", _) => 3,
        (_, false) => 4,
        (_, true) => 5,
    };
    GroupKey {
        rank,
        key: key.to_owned(),
        rate,
    }
}

#[derive(Debug)]
struct Track {
    group: GroupKey,
    data: Downsampler,
    prev: Option<(f64, f64)>,
    last: f64,
    default_match: bool,
    /// One of leakwatch's own counters (`count.leakwatch.*`, `count.statsd.*`).
    internal: bool,
    /// Some value was not zero.
    moved: bool,
}

/// Whether `name` is a metric leakwatch keeps about itself: the series of its own event
/// counters are named `leakwatch.*` (hooks, webhook, sample consumers) and `statsd.*`.
fn is_internal(name: &str) -> bool {
    let series = name.split_once('.').map_or("", |(_, s)| s);
    series.starts_with("leakwatch.") || series.starts_with("statsd.")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum MarkKind {
    Firing,
    Resolved,
    Finding,
}

#[derive(Clone, Debug)]
struct Marker {
    t: f64,
    kind: MarkKind,
    label: String,
    series: String,
}

#[derive(Debug)]
struct SeriesLine {
    name: String,
    last: f64,
    segments: Vec<Vec<(f64, f64)>>,
}

#[derive(Debug)]
struct Panel {
    title: String,
    lines: Vec<SeriesLine>,
    left_out: usize,
    y: (f64, f64),
}

/// A chart ready to render: panels of downsampled series, alert and finding markers, the
/// time range and the image size. Built by [`chart`]; holds at most 1024 buckets per series
/// whatever the input's length.
#[derive(Debug)]
pub struct Chart {
    title: String,
    panels: Vec<Panel>,
    markers: Vec<Marker>,
    t: (f64, f64),
    /// Unix seconds of t = 0, for wall-clock axis labels.
    origin: Option<f64>,
    size: (u32, u32),
}

/// The image formats [`write_file`] writes, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics (`.svg`).
    Svg,
    /// Portable network graphics (`.png`).
    Png,
}

impl Format {
    /// The format named by `path`'s extension (`.svg` or `.png`, any case); any other is a
    /// usage error naming the option `--output`.
    pub fn from_path(path: &Path) -> Result<Format, Error> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(Error::BadOption {
                option: "--output",
                value: path.display().to_string(),
                reason: "the file name must end in .svg or .png".into(),
            }),
        }
    }
}

/// Runs `leakwatch plot`: reads the input, draws the chart and writes it to `args.output`,
/// then (unless `quiet`) says on stderr what was written.
pub fn run(args: &Args, quiet: bool) -> Result<(), Error> {
    // Refuse a bad file name before reading a large input.
    Format::from_path(&args.output)?;
    let mut source = Source::open(&args.input, quiet)?;
    let chart = chart(&mut source, &args.options)?;
    write_file(&chart, &args.output)?;
    if !quiet {
        let (width, height) = chart.size;
        eprintln!(
            "leakwatch: wrote {} ({width}x{height}): {} panel(s), {} series, {} marker(s)",
            args.output.display(),
            chart.panels(),
            chart.series(),
            chart.markers()
        );
    }
    Ok(())
}

/// Renders `chart` into `path` as SVG or PNG, by the file's extension ([`Format::from_path`]).
///
/// The image is written to a temporary file beside `path` and renamed over it once complete,
/// so a failed write (a full disk) never leaves a truncated image where a good one was.
pub fn write_file(chart: &Chart, path: &Path) -> Result<(), Error> {
    let bytes = match Format::from_path(path)? {
        Format::Svg => chart.svg()?.into_bytes(),
        Format::Png => chart.png()?,
    };
    write_aside(path, &bytes).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to a hidden temporary file in `path`'s directory, then renames it to
/// `path` (atomic on one file system); the temporary file is removed on failure.
fn write_aside(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Chart {
    /// Image size in pixels, `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Panels drawn.
    pub fn panels(&self) -> usize {
        self.panels.len()
    }

    /// Series drawn, all panels together (at most 12 per panel).
    pub fn series(&self) -> usize {
        self.panels.iter().map(|p| p.lines.len()).sum()
    }

    /// Alert and finding markers drawn.
    pub fn markers(&self) -> usize {
        self.markers.len()
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, Error> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            draw(root, self).map_err(|reason| Error::Plot {
                what: "SVG".into(),
                reason,
            })?;
        }
        Ok(svg)
    }

    /// The chart as the bytes of a PNG file (8-bit RGB; text from a built-in bitmap font,
    /// so no system font is needed).
    pub fn png(&self) -> Result<Vec<u8>, Error> {
        let drawn = |reason| Error::Plot {
            what: "PNG".into(),
            reason,
        };
        let (width, height) = self.size;
        let mut rgb = vec![255u8; width as usize * height as usize * 3];
        {
            let root = GlyphBackend::new(&mut rgb, self.size).into_drawing_area();
            draw(root, self).map_err(drawn)?;
        }
        encode_png(&rgb, self.size).map_err(drawn)
    }
}

/// Reads every record of `source` into a [`Chart`]: the series chosen by `options` (or the
/// default panels), alerts recorded in the input as red (firing) and green (resolved)
/// lines, and with `options.analyze` the detectors' findings as orange lines.
pub fn chart(source: &mut Source, options: &PlotOptions) -> Result<Chart, Error> {
    if !(300..=10_000).contains(&options.width) {
        return Err(Error::BadOption {
            option: "--width",
            value: options.width.to_string(),
            reason: "must be 300 to 10000 pixels".into(),
        });
    }
    if let Some(h) = options.height
        && !(150..=20_000).contains(&h)
    {
        return Err(Error::BadOption {
            option: "--height",
            value: h.to_string(),
            reason: "must be 150 to 20000 pixels".into(),
        });
    }
    let mut chart = collect(source, options)?;
    let height = options
        .height
        .unwrap_or(52 + 260 * chart.panels.len() as u32)
        .min(20_000);
    chart.size = (options.width, height);
    Ok(chart)
}

fn collect(source: &mut Source, args: &PlotOptions) -> Result<Chart, Error> {
    let meta = source.meta.clone();
    let interval = meta.interval_secs.unwrap_or(1.0).max(1e-3);
    let chosen = if args.series.is_empty() {
        None
    } else {
        Some(Selector::new(args.series.iter().cloned())?)
    };
    let defaults = Selector::new(DEFAULT_SERIES.iter().copied())?;
    let mut engine = if args.analyze {
        Some(Engine::new(args.rules.rule_set(meta.graphite)?)?)
    } else {
        None
    };
    // `None`: seen and not selected, so the glob is matched once per series, not per tick.
    let mut tracks: HashMap<String, Option<Track>> = HashMap::new();
    let mut markers = Vec::new();
    let mut found = Vec::new();
    // Not a `for` loop: a new series asks the source for its kind mid-stream.
    while let Some(record) = source.next() {
        match record? {
            Record::Tick { t, values } => {
                for (name, &v) in &values {
                    if !v.is_finite() {
                        continue;
                    }
                    let slot = match tracks.get_mut(name.as_str()) {
                        Some(slot) => slot,
                        None => {
                            let kind = source.kind(name);
                            let track = new_track(
                                name,
                                kind,
                                chosen.as_ref(),
                                &defaults,
                                &meta,
                                t,
                                interval,
                            );
                            tracks.entry(name.clone()).or_insert(track)
                        }
                    };
                    if let Some(track) = slot {
                        feed(track, t, v);
                    }
                }
                if let Some(engine) = &mut engine {
                    found.clear();
                    engine.observe_into(
                        t,
                        values.iter().map(|(k, v)| (k.as_str(), *v)),
                        &mut found,
                    );
                    for f in found.iter().filter(|f| f.state == FindingState::Firing) {
                        markers.push(Marker {
                            t: f.at,
                            kind: MarkKind::Finding,
                            label: format!("{} {}", f.rule, f.series),
                            series: f.series.clone(),
                        });
                    }
                }
            }
            Record::Alert { t, alert } => {
                let field = |k: &str| alert.get(k).and_then(Value::as_str).unwrap_or("?");
                markers.push(Marker {
                    t,
                    kind: if field("state") == "resolved" {
                        MarkKind::Resolved
                    } else {
                        MarkKind::Firing
                    },
                    label: format!("{} {}", field("rule"), field("series")),
                    series: field("series").to_owned(),
                });
            }
        }
    }
    let mut tracks: Vec<(String, Track)> = tracks
        .into_iter()
        .filter_map(|(name, t)| t.map(|t| (name, t)))
        .collect();
    if chosen.is_none() && tracks.iter().any(|(_, t)| t.default_match) {
        tracks.retain(|(_, t)| t.default_match);
    }
    // leakwatch's own failure counters (hook panics, drops, ...) are noise while they stay
    // zero; one that moved matters, and `--series` can always ask for them.
    if chosen.is_none() {
        tracks.retain(|(_, t)| !t.internal || t.moved);
    }
    if tracks.is_empty() {
        let what = if args.series.is_empty() {
            "has no samples".to_string()
        } else {
            format!("has no series matching {}", args.series.join(", "))
        };
        return Err(Error::NoData(format!("{} {what}", meta.label)));
    }
    let mut groups: BTreeMap<GroupKey, Vec<SeriesLine>> = BTreeMap::new();
    let (mut t0, mut t1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (name, track) in tracks {
        let segments = track.data.segments(interval);
        for p in segments.iter().flatten() {
            t0 = t0.min(p.0);
            t1 = t1.max(p.0);
        }
        groups.entry(track.group).or_default().push(SeriesLine {
            name,
            last: track.last,
            segments,
        });
    }
    let panels = groups
        .into_iter()
        .map(|(key, mut lines)| {
            // Biggest first: with many series, the ones that matter most are drawn.
            lines.sort_by(|a, b| b.last.total_cmp(&a.last).then(a.name.cmp(&b.name)));
            let left_out = lines.len().saturating_sub(MAX_PER_PANEL);
            lines.truncate(MAX_PER_PANEL);
            let y = y_range(&lines);
            Panel {
                title: key.title(),
                lines,
                left_out,
                y,
            }
        })
        .collect();
    if !t0.is_finite() {
        (t0, t1) = (0.0, 1.0);
    }
    if t1 <= t0 {
        t1 = t0 + interval.max(1.0);
    }
    let origin = report::unix_secs(&meta, 0.0);
    let title = args.title.clone().unwrap_or_else(|| {
        let range = match origin {
            Some(o) => format!("{} .. {}", short_utc(o + t0), short_utc(o + t1)),
            None => format!("t = {} .. {}", report::duration(t0), report::duration(t1)),
        };
        format!("leakwatch: {}   {range}", meta.label)
    });
    Ok(Chart {
        title,
        panels,
        markers,
        t: (t0, t1),
        origin,
        size: (0, 0),
    })
}

fn new_track(
    name: &str,
    kind: Option<MetricKind>,
    chosen: Option<&Selector>,
    defaults: &Selector,
    meta: &Meta,
    t: f64,
    interval: f64,
) -> Option<Track> {
    let default_match = defaults.matches(name);
    if let Some(sel) = chosen
        && !sel.matches(name)
    {
        return None;
    }
    let group = classify(name, meta.graphite, kind);
    let rate = group.rate;
    Some(Track {
        group,
        data: Downsampler::new(t, interval, rate),
        prev: None,
        last: 0.0,
        default_match,
        internal: !meta.graphite && is_internal(name),
        moved: false,
    })
}

fn feed(track: &mut Track, t: f64, v: f64) {
    track.moved |= v != 0.0;
    if !track.group.rate {
        track.data.push(t, v, 1.0);
        track.last = v;
        return;
    }
    if let Some((pt, pv)) = track.prev {
        // A drop is a counter reset (process restart): no rate across it.
        if t > pt && v >= pv {
            let rate = (v - pv) / (t - pt);
            track.data.push(t, rate, t - pt);
            track.last = rate;
        }
    }
    track.prev = Some((t, v));
}

fn y_range(lines: &[SeriesLine]) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in lines.iter().flat_map(|l| l.segments.iter().flatten()) {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // Near f64::MAX the padded range (or its span) overflows to infinity, and the chart's
    // tick search never ends: keep the axis within a quarter of the f64 range (points beyond
    // are clipped; no count gets near that).
    const LIMIT: f64 = f64::MAX / 8.0;
    let (lo, hi) = (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT));
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1.0) * 0.1
    };
    // Counts and rates cannot be negative: do not pad below zero.
    let bottom = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    (bottom, hi + pad)
}

fn short_utc(unix: f64) -> String {
    let (y, mo, d, h, mi, _) = report::civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

impl Chart {
    /// Axis ticks at round wall-clock steps (every 5 min, 15 min, 1 h, ...), at most 8.
    fn time_ticks(&self) -> Vec<f64> {
        const STEPS: &[f64] = &[
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            7200.0, 10_800.0, 21_600.0, 43_200.0, 86_400.0, 172_800.0, 604_800.0,
        ];
        let (t0, t1) = self.t;
        let span = t1 - t0;
        let step = STEPS
            .iter()
            .copied()
            .find(|s| span / s <= 8.0)
            .unwrap_or_else(|| (span / 8.0 / 604_800.0).ceil() * 604_800.0);
        // Align to the clock people read (UTC), not to the start of the recording.
        let off = self.origin.unwrap_or(0.0);
        let mut t = ((t0 + off) / step).ceil() * step - off;
        let mut ticks = Vec::new();
        while t <= t1 && ticks.len() < 64 {
            ticks.push(t);
            t += step;
        }
        ticks
    }

    fn time_label(&self, t: f64) -> String {
        let span = self.t.1 - self.t.0;
        match self.origin {
            Some(o) => {
                let (_, mo, d, h, mi, s) = report::civil(o + t);
                if span > 2.0 * 86_400.0 {
                    format!("{mo:02}-{d:02} {h:02}:{mi:02}")
                } else if span < 600.0 {
                    format!("{h:02}:{mi:02}:{s:02}")
                } else {
                    format!("{h:02}:{mi:02}")
                }
            }
            None => report::duration(t),
        }
    }
}

/// The time axis: linear, with its ticks at round wall-clock steps ([`Chart::time_ticks`])
/// instead of plotters' round numbers of seconds (which give ticks such as 16:16, 16:33).
struct TimeAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// Compact axis numbers: `10.49M`, `2.5k`, `0.125`.
fn si(v: f64) -> String {
    let a = v.abs();
    let (div, suffix) = match a {
        _ if a >= 1e12 => (1e12, "T"),
        _ if a >= 1e9 => (1e9, "G"),
        _ if a >= 1e6 => (1e6, "M"),
        _ if a >= 1e4 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let s = format!("{:.3}", v / div);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{suffix}")
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(52);
    let title_style = ("sans-serif", 20).into_font().color(&BLACK);
    head.draw_text(&chart.title, &title_style, (12, 8))
        .map_err(err)?;
    // Key of the marker colours, one coloured bar before each label.
    let key_style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = 14;
    for (color, label) in [
        (FIRING, "alert firing"),
        (RESOLVED, "alert resolved"),
        (FINDING, "detector finding (--analyze)"),
    ] {
        head.draw(&PathElement::new(
            vec![(x, 32), (x, 46)],
            color.stroke_width(3),
        ))
        .map_err(err)?;
        head.draw_text(label, &key_style, (x + 8, 39))
            .map_err(err)?;
        x += 8 + head.estimate_text_size(label, &key_style).map_err(err)?.0 as i32 + 24;
    }
    let areas = body.split_evenly((chart.panels.len(), 1));
    for (area, panel) in areas.iter().zip(&chart.panels) {
        draw_panel(area, panel, chart)?;
    }
    root.present().map_err(err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    chart: &Chart,
) -> Result<(), String> {
    let (y0, y1) = panel.y;
    let mut ctx = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(6)
        .margin_right(24)
        .x_label_area_size(26)
        .y_label_area_size(72)
        .build_cartesian_2d(
            TimeAxis {
                linear: (chart.t.0..chart.t.1).into(),
                ticks: chart.time_ticks(),
            },
            y0..y1,
        )
        .map_err(err)?;
    let time_fmt = |t: &f64| chart.time_label(*t);
    let y_fmt = |v: &f64| si(*v);
    ctx.configure_mesh()
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .y_labels(5)
        .x_label_formatter(&time_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let label_style = ("sans-serif", 11).into_font();
    let mut labelled = 0;
    for m in &chart.markers {
        let color = match m.kind {
            MarkKind::Firing => FIRING,
            MarkKind::Resolved => RESOLVED,
            MarkKind::Finding => FINDING,
        };
        ctx.draw_series(std::iter::once(PathElement::new(
            vec![(m.t, y0), (m.t, y1)],
            color.mix(0.8).stroke_width(2),
        )))
        .map_err(err)?;
        // Name the alert only in the panel of its series, near the bottom (the legend holds
        // the top-left corner), staggered so neighbours stay legible.
        if panel.lines.iter().any(|l| l.name == m.series) {
            let dy = (labelled % 4) as f64 * (y1 - y0) * 0.07;
            ctx.draw_series(std::iter::once(Text::new(
                format!(" {}", m.label),
                (m.t, y0 + (y1 - y0) * 0.12 + dy),
                label_style.clone().color(&color),
            )))
            .map_err(err)?;
            labelled += 1;
        }
    }
    for (i, line) in panel.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for seg in &line.segments {
            // One pixel wide: the bitmap rasterizer joins thick polylines with unbounded
            // miters, which turns the zigzag of a min/max envelope into spikes.
            ctx.draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(1)))
                .map_err(err)?;
        }
    }
    draw_legend(&ctx.plotting_area().strip_coord_spec(), panel)
}

/// Legend in the top-left corner of the plot: leaks rise, so that corner is usually empty.
/// Drawn by hand (not plotters' series labels) so its box is measured by the backend that
/// draws the text, which keeps it tight in both SVG and PNG.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut entries: Vec<String> = panel
        .lines
        .iter()
        .map(|l| format!("{}  {}", l.name, si(l.last)))
        .collect();
    if panel.left_out > 0 {
        entries.push(format!("+{} more (narrow with --series)", panel.left_out));
    }
    let row = 16;
    let mut width = 0;
    for e in &entries {
        width = width.max(area.estimate_text_size(e, &style).map_err(err)?.0 as i32);
    }
    let (x, y) = (8, 6);
    let h = row * entries.len() as i32 + 6;
    area.draw(&Rectangle::new(
        [(x, y), (x + width + 36, y + h)],
        WHITE.mix(0.85).filled(),
    ))
    .map_err(err)?;
    area.draw(&Rectangle::new(
        [(x, y), (x + width + 36, y + h)],
        RGBColor(200, 200, 200).stroke_width(1),
    ))
    .map_err(err)?;
    for (i, e) in entries.iter().enumerate() {
        let cy = y + 3 + row * i as i32 + row / 2;
        if i < panel.lines.len() {
            let color = PALETTE[i % PALETTE.len()];
            area.draw(&PathElement::new(
                vec![(x + 6, cy), (x + 24, cy)],
                color.stroke_width(3),
            ))
            .map_err(err)?;
        }
        area.draw(&Text::new(e.clone(), (x + 30, cy), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        let g = classify("count.http.status.409", false, None);
        assert_eq!((g.key.as_str(), g.rate), ("count.http.status", true));
        let g = classify("live.presence.Watch", false, None);
        assert_eq!((g.key.as_str(), g.rate, g.rank), ("live", false, 0));
        assert!(classify("delivered.presence.callbacks", false, None).rate);
        assert!(!classify("memory.resident_bytes", false, None).rate);
        assert!(classify("memory.allocations", false, None).rate);
        let g = classify("stats.gauges.app.web1.leakwatch.live.x", true, None);
        assert_eq!((g.key.as_str(), g.rate), ("live", false));
    }

    #[test]
    fn y_range_stays_finite_for_extreme_values() {
        let line = |pts: Vec<(f64, f64)>| SeriesLine {
            name: "live.a".into(),
            last: 0.0,
            segments: vec![pts],
        };
        for pts in [
            vec![(1.0, 1e308), (2.0, -1e308)],
            vec![(1.0, 1.7e308), (2.0, 1.7e308)],
            vec![(1.0, -f64::MAX)],
        ] {
            let (a, b) = y_range(&[line(pts.clone())]);
            assert!(a < b && (b - a).is_finite(), "{pts:?} -> {a}..{b}");
        }
    }

    #[test]
    fn downsampler_is_bounded_and_keeps_extremes() {
        let mut d = Downsampler::new(0.0, 1.0, false);
        for i in 0..100_000 {
            let v = if i == 54_321 { 1e6 } else { f64::from(i % 7) };
            d.push(f64::from(i), v, 1.0);
        }
        assert!(d.buckets.len() <= MAX_BUCKETS);
        let pts: Vec<_> = d.segments(1.0).concat();
        assert!(pts.iter().any(|p| p.1 == 1e6));
        assert_eq!(d.segments(1.0).len(), 1);
    }

    #[test]
    fn gaps_split_lines() {
        let mut d = Downsampler::new(0.0, 1.0, false);
        for t in (0..10).chain(100..110) {
            d.push(f64::from(t), 1.0, 1.0);
        }
        assert_eq!(d.segments(1.0).len(), 2);
    }

    #[test]
    fn a_failed_write_leaves_the_old_image_and_no_temporary_file() {
        let d = std::env::temp_dir().join(format!("leakwatch-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("leaks.png");
        write_aside(&path, b"good image").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"good image");
        // The temporary file cannot be created (a directory is in its place): the write
        // fails and the image already there is untouched.
        let tmp = d.join(format!(".leaks.png.{}.tmp", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        assert!(write_aside(&path, b"half an im").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"good image");
        std::fs::remove_dir(&tmp).unwrap();
        // The rename fails (a directory is at the target): the temporary file is removed.
        let target = d.join("dir.png");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_aside(&target, b"image").is_err());
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rates_are_means() {
        let mut d = Downsampler::new(0.0, 10.0, true);
        d.push(1.0, 2.0, 1.0);
        d.push(2.0, 4.0, 1.0);
        assert_eq!(d.segments(1.0), vec![vec![(1.5, 3.0)]]);
        assert_eq!(si(10_485_760.0), "10.486M");
        assert_eq!(si(0.5), "0.5");
    }
}

//! Where the samples come from: recording files (rotated parts in order), graphite-web, or
//! records a program holds in memory.
//!
//! All end up as the same stream of [`Record`]s in time order, so `analyze` and `plot` do
//! not care which one they read. Recordings are streamed (a 256 MiB recording is never held
//! in memory); Graphite answers arrive whole anyway.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressBarIter, ProgressDrawTarget, ProgressStyle};
use leakwatch::MetricKind;
use leakwatch::recording::{Record, RecordingError, RecordingReader};

use crate::Error;

/// Inputs larger than this (all parts together) get a progress bar on stderr.
const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Where to read samples from; shared by `analyze` and `plot`.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Recording files. Rotated parts may be given in any order (`rec.jsonl*`): they are read
    /// in the order of the `part` number in their headers.
    #[arg(value_name = "REC", required_unless_present = "graphite")]
    pub recordings: Vec<PathBuf>,
    /// Read series from graphite-web's render API at this base URL (http://host:port)
    /// instead of recordings.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "recordings",
        requires = "targets"
    )]
    pub graphite: Option<String>,
    /// Graphite target (globs allowed), e.g. `stats.gauges.app.*.leakwatch.live.*`. Repeatable.
    #[arg(long = "target", value_name = "TARGET", requires = "graphite")]
    pub targets: Vec<String>,
    /// Start of the Graphite time range (`-2h`, `-7d`, Unix seconds).
    #[arg(
        long,
        value_name = "TIME",
        default_value = "-24h",
        requires = "graphite",
        allow_hyphen_values = true
    )]
    pub from: String,
    /// End of the Graphite time range (default: now).
    #[arg(
        long,
        value_name = "TIME",
        requires = "graphite",
        allow_hyphen_values = true
    )]
    pub until: Option<String>,
}

/// What is known about the input as a whole.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Meta {
    /// Short description for reports and titles, e.g. `rec.jsonl (3 parts)`.
    pub label: String,
    /// Unix time in milliseconds of `t = 0` (0 for Graphite, whose `t` is Unix seconds).
    pub started_at_ms: Option<u64>,
    /// Sampling interval in seconds, when known.
    pub interval_secs: Option<f64>,
    /// Series names carry a Graphite path before the leakwatch name.
    pub graphite: bool,
    /// Gauge or counter per metric, for samples held in memory ([`Meta::kinds`]).
    pub kinds: BTreeMap<String, MetricKind>,
}

impl Meta {
    /// Describes samples held in memory: `label` names them in reports and chart titles;
    /// no start time (times print as `t=…s`), interval unknown (taken as 1 s for plotting).
    pub fn new(label: impl Into<String>) -> Meta {
        Meta {
            label: label.into(),
            started_at_ms: None,
            interval_secs: None,
            graphite: false,
            kinds: BTreeMap::new(),
        }
    }

    /// Which metrics are gauges (levels) and which counters (running totals, plotted as
    /// rates); metrics not named here are classified by their name, as in old recordings.
    pub fn kinds(mut self, kinds: BTreeMap<String, MetricKind>) -> Meta {
        self.kinds = kinds;
        self
    }

    /// Unix time in milliseconds of `t = 0`, so reports and axes show wall-clock times.
    pub fn started_at_ms(mut self, ms: u64) -> Meta {
        self.started_at_ms = Some(ms);
        self
    }

    /// The sampling interval: gaps longer than three intervals split plotted lines.
    pub fn interval(mut self, interval: std::time::Duration) -> Meta {
        self.interval_secs = Some(interval.as_secs_f64());
        self
    }
}

/// A stream of records in time order, with the input's [`Meta`].
pub struct Source {
    /// What the input is.
    pub meta: Meta,
    records: Records,
    /// Metric kinds declared by recording parts already read to their end.
    kinds: BTreeMap<String, MetricKind>,
    /// Files whose last line was cut off mid-object and skipped.
    truncated: Vec<PathBuf>,
}

type FileReader = RecordingReader<BufReader<ProgressBarIter<File>>>;

/// One recording file being read.
struct Part {
    path: PathBuf,
    reader: FileReader,
}

enum Records {
    Files {
        parts: std::vec::IntoIter<Part>,
        current: Option<Box<Part>>,
        bar: ProgressBar,
    },
    Memory(std::vec::IntoIter<Record>),
    Graphite(GraphiteRows),
}

impl Source {
    /// Opens the input named by `args`; `quiet` suppresses the progress bar.
    pub fn open(args: &InputArgs, quiet: bool) -> Result<Source, Error> {
        match &args.graphite {
            Some(url) => from_graphite(url, args),
            None => Source::files(&args.recordings, quiet),
        }
    }

    /// Reads recording files: one recording, or several rotated parts of one in any order
    /// (they are read in the order of their headers). Files from different recordings are
    /// refused: their times would interleave into nonsense. Only the headers are read now;
    /// the samples stream as the source is iterated. `quiet` suppresses the progress bar
    /// that inputs over 4 MiB otherwise draw on a terminal's stderr.
    pub fn files(paths: &[PathBuf], quiet: bool) -> Result<Source, Error> {
        from_files(paths, quiet)
    }

    /// Samples a program holds in memory (`Record::Tick`s and `Record::Alert`s in time
    /// order), e.g. built from its own snapshots, for [`crate::analyze::analyze`] and
    /// [`crate::plot::chart`].
    pub fn from_records(meta: Meta, records: Vec<Record>) -> Source {
        Source {
            meta,
            records: Records::Memory(records.into_iter()),
            kinds: BTreeMap::new(),
            truncated: Vec::new(),
        }
    }

    /// Whether metric `name` is a gauge or a counter, as the input declares it (recording
    /// headers and the lines read so far, or [`Meta::kinds`]); `None` when it does not say.
    pub fn kind(&self, name: &str) -> Option<MetricKind> {
        match &self.records {
            Records::Files {
                current: Some(part),
                ..
            } => part.reader.kind(name),
            _ => None,
        }
        .or_else(|| self.kinds.get(name).copied())
        .or_else(|| self.meta.kinds.get(name).copied())
    }

    /// Files whose last line was cut off mid-object (the writer was killed or the disk
    /// filled up) and was skipped, among those read to their end so far.
    pub fn truncated(&self) -> &[PathBuf] {
        &self.truncated
    }
}

impl Iterator for Source {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.records {
            Records::Memory(it) => it.next().map(Ok),
            Records::Graphite(rows) => rows.next().map(Ok),
            Records::Files {
                parts,
                current,
                bar,
            } => loop {
                let Some(part) = current else {
                    bar.finish_and_clear();
                    return None;
                };
                match part.reader.next() {
                    Some(r) => return Some(r.map_err(Error::from)),
                    None => {
                        if part.reader.truncated() {
                            self.truncated.push(part.path.clone());
                        }
                        self.kinds
                            .extend(part.reader.kinds().iter().map(|(k, v)| (k.clone(), *v)));
                        *current = parts.next().map(Box::new);
                    }
                }
            },
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // An error ends the stream early: do not leave a half-drawn bar on the terminal.
        if let Records::Files { bar, .. } = &self.records {
            bar.finish_and_clear();
        }
    }
}

fn from_files(paths: &[PathBuf], quiet: bool) -> Result<Source, Error> {
    let mut total = 0u64;
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let io = |source| RecordingError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        total += file.metadata().map_err(io)?.len();
        files.push((path, file));
    }
    let bar = if quiet || total < PROGRESS_MIN_BYTES {
        ProgressBar::hidden()
    } else {
        // Draws only when stderr is a terminal, so logs and pipes stay clean.
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        )
    };
    bar.set_message("reading");
    let mut parts = Vec::with_capacity(files.len());
    for (path, file) in files {
        parts.push(Part {
            path: path.clone(),
            reader: RecordingReader::new(path.clone(), BufReader::new(bar.wrap_read(file)))?,
        });
    }
    // Rotation renames the oldest part to the highest number, so a shell glob lists parts
    // newest-first; the header's `part` is the reliable order (stable for equal parts).
    parts.sort_by_key(|p| (p.reader.header().started_at_ms, p.reader.header().part));
    one_recording(&parts)?;
    let first = parts.first().ok_or_else(|| {
        Error::NoData("no recording given: name one or more recording files".into())
    })?;
    let started_at_ms = first.reader.header().started_at_ms;
    let interval_secs = Some(first.reader.header().interval_ms as f64 / 1000.0);
    let label = match paths.len() {
        1 => paths[0].display().to_string(),
        n => format!("{} ({n} parts)", paths[paths.len() - 1].display()),
    };
    let mut parts = parts.into_iter();
    let current = parts.next().map(Box::new);
    Ok(Source {
        meta: Meta {
            label,
            started_at_ms,
            interval_secs,
            graphite: false,
            kinds: BTreeMap::new(),
        },
        records: Records::Files {
            parts,
            current,
            bar,
        },
        kinds: BTreeMap::new(),
        truncated: Vec::new(),
    })
}

/// Checks that `parts` (sorted by start and part number) are parts of one recording: the
/// same start time and interval in every header, and no part number twice.
fn one_recording(parts: &[Part]) -> Result<(), Error> {
    for w in parts.windows(2) {
        let (a, b) = (w[0].reader.header(), w[1].reader.header());
        let (pa, pb) = (w[0].path.display(), w[1].path.display());
        let refuse = |why: String| Err(Error::NotOneRecording(why));
        if a.started_at_ms != b.started_at_ms {
            let when = |ms: Option<u64>| match ms {
                Some(ms) => crate::report::utc(ms as f64 / 1000.0),
                None => "at an unknown time".into(),
            };
            return refuse(format!(
                "{pa} and {pb} are from different recordings (started {} and {}): \
                 give the parts of one recording at a time",
                when(a.started_at_ms),
                when(b.started_at_ms)
            ));
        }
        if a.interval_ms != b.interval_ms {
            return refuse(format!(
                "{pa} and {pb} are from different recordings (sampled every {} ms and {} ms): \
                 give the parts of one recording at a time",
                a.interval_ms, b.interval_ms
            ));
        }
        if a.part == b.part {
            return refuse(format!(
                "{pa} and {pb} are both part {} of one recording: give each part once",
                a.part
            ));
        }
    }
    Ok(())
}

/// Most points read from graphite-web in one run. Points are kept per series until the
/// rows are merged (24 bytes each), so this bounds the memory a read can take to about
/// 480 MB whatever the range asked for; narrow `--from`/`--until` or the targets past it.
pub const MAX_GRAPHITE_POINTS: usize = 20_000_000;

fn from_graphite(url: &str, args: &InputArgs) -> Result<Source, Error> {
    let series = crate::graphite::fetch(url, &args.targets, &args.from, args.until.as_deref())?;
    if series.is_empty() {
        return Err(Error::NoData(format!(
            "graphite-web at {url} has no series for target {} from {}",
            args.targets.join(", "),
            args.from
        )));
    }
    let n = series.len();
    let rows = GraphiteRows::new(series, MAX_GRAPHITE_POINTS).map_err(|points| {
        Error::NoData(format!(
            "graphite-web at {url} answered {points} points, more than the {} read at once: \
             narrow --from/--until or the targets",
            MAX_GRAPHITE_POINTS
        ))
    })?;
    Ok(Source {
        meta: Meta {
            label: format!("graphite {url} ({n} series)"),
            started_at_ms: Some(0),
            interval_secs: rows.step,
            graphite: true,
            kinds: BTreeMap::new(),
        },
        records: Records::Graphite(rows),
        kinds: BTreeMap::new(),
        truncated: Vec::new(),
    })
}

/// Graphite's columns (one per series) merged into rows (one per instant) as they are
/// read: only the current row's map exists at a time, never a map per instant.
struct GraphiteRows {
    series: Vec<crate::graphite::GraphiteSeries>,
    /// Next point of each series.
    pos: Vec<usize>,
    /// Smallest time step between two points of a series, when known.
    step: Option<f64>,
}

impl GraphiteRows {
    /// Fails with the number of points when there are more than `max`.
    fn new(series: Vec<crate::graphite::GraphiteSeries>, max: usize) -> Result<Self, usize> {
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        if points > max {
            return Err(points);
        }
        let mut step = f64::INFINITY;
        for s in &series {
            for w in s.points.windows(2) {
                step = step.min(w[1].0 - w[0].0);
            }
        }
        Ok(GraphiteRows {
            pos: vec![0; series.len()],
            series,
            step: step.is_finite().then_some(step),
        })
    }
}

impl Iterator for GraphiteRows {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            // Graphite timestamps are whole seconds: rows are keyed by the whole second.
            let t = self
                .series
                .iter()
                .zip(&self.pos)
                .filter_map(|(s, &i)| s.points.get(i).map(|p| p.0 as i64))
                .min()?;
            let mut values = BTreeMap::new();
            for (s, i) in self.series.iter().zip(self.pos.iter_mut()) {
                while let Some(&(pt, v)) = s.points.get(*i) {
                    if pt as i64 != t {
                        break;
                    }
                    if let Some(v) = v {
                        values.insert(s.name.clone(), v);
                    }
                    *i += 1;
                }
            }
            // An instant where every series is null is no sample.
            if !values.is_empty() {
                return Some(Record::Tick {
                    t: t as f64,
                    values,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphite::GraphiteSeries;

    fn series(name: &str, points: &[(f64, Option<f64>)]) -> GraphiteSeries {
        GraphiteSeries {
            name: name.into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn graphite_columns_merge_into_rows_in_time_order() {
        let rows = GraphiteRows::new(
            vec![
                series("a", &[(10.0, Some(1.0)), (20.0, None), (30.0, Some(3.0))]),
                series("b", &[(20.0, None), (30.0, Some(30.0)), (40.0, Some(40.0))]),
            ],
            100,
        )
        .unwrap();
        assert_eq!(rows.step, Some(10.0));
        let got: Vec<(f64, Vec<(String, f64)>)> = rows
            .map(|r| match r {
                Record::Tick { t, values } => (t, values.into_iter().collect()),
                Record::Alert { .. } => unreachable!(),
            })
            .collect();
        let row =
            |t: f64, v: &[(&str, f64)]| (t, v.iter().map(|(k, x)| (k.to_string(), *x)).collect());
        assert_eq!(
            got,
            vec![
                row(10.0, &[("a", 1.0)]),
                row(30.0, &[("a", 3.0), ("b", 30.0)]),
                row(40.0, &[("b", 40.0)]),
            ],
            "t=20 has only nulls: no row"
        );
    }

    #[test]
    fn graphite_reads_past_the_point_limit_are_refused() {
        let s = series("a", &[(1.0, Some(1.0)), (2.0, Some(2.0)), (3.0, Some(3.0))]);
        assert_eq!(GraphiteRows::new(vec![s.clone()], 2).err(), Some(3));
        assert!(GraphiteRows::new(vec![s], 3).is_ok());
    }
}

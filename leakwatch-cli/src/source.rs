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
        }
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
}

// One per CLI run: the size difference costs nothing worth an extra indirection.
#[allow(clippy::large_enum_variant)]
enum Records {
    Files {
        parts: std::vec::IntoIter<RecordingReader<BufReader<ProgressBarIter<File>>>>,
        current: Option<RecordingReader<BufReader<ProgressBarIter<File>>>>,
        bar: ProgressBar,
    },
    Memory(std::vec::IntoIter<Record>),
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
    /// (they are read in the order of their headers). Only the headers are read now; the
    /// samples stream as the source is iterated. `quiet` suppresses the progress bar that
    /// inputs over 4 MiB otherwise draw on a terminal's stderr.
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
        }
    }
}

impl Iterator for Source {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.records {
            Records::Memory(it) => it.next().map(Ok),
            Records::Files {
                parts,
                current,
                bar,
            } => loop {
                let Some(reader) = current else {
                    bar.finish_and_clear();
                    return None;
                };
                match reader.next() {
                    Some(r) => return Some(r.map_err(Error::from)),
                    None => *current = parts.next(),
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
    let mut readers = Vec::with_capacity(files.len());
    for (path, file) in files {
        readers.push(RecordingReader::new(
            path.clone(),
            BufReader::new(bar.wrap_read(file)),
        )?);
    }
    // Rotation renames the oldest part to the highest number, so a shell glob lists parts
    // newest-first; the header's `part` is the reliable order (stable for equal parts).
    readers.sort_by_key(|r| (r.header().started_at_ms, r.header().part));
    let first = readers.first().ok_or_else(|| {
        Error::NoData("no recording given: name one or more recording files".into())
    })?;
    let started_at_ms = first.header().started_at_ms;
    let interval_secs = Some(first.header().interval_ms as f64 / 1000.0);
    let label = match paths.len() {
        1 => paths[0].display().to_string(),
        n => format!("{} ({n} parts)", paths[paths.len() - 1].display()),
    };
    let mut parts = readers.into_iter();
    let current = parts.next();
    Ok(Source {
        meta: Meta {
            label,
            started_at_ms,
            interval_secs,
            graphite: false,
        },
        records: Records::Files {
            parts,
            current,
            bar,
        },
    })
}

fn from_graphite(url: &str, args: &InputArgs) -> Result<Source, Error> {
    let series = crate::graphite::fetch(url, &args.targets, &args.from, args.until.as_deref())?;
    if series.is_empty() {
        return Err(Error::NoData(format!(
            "graphite-web at {url} has no series for target {} from {}",
            args.targets.join(", "),
            args.from
        )));
    }
    // Graphite hands out one column per series; the detectors want one row per instant.
    let mut rows: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    let mut step = f64::INFINITY;
    for s in &series {
        for w in s.points.windows(2) {
            step = step.min(w[1].0 - w[0].0);
        }
        for &(t, v) in &s.points {
            if let Some(v) = v {
                // Graphite timestamps are whole seconds; the key keeps rows exact and sorted.
                rows.entry(t as i64).or_default().insert(s.name.clone(), v);
            }
        }
    }
    let records: Vec<Record> = rows
        .into_iter()
        .map(|(t, values)| Record::Tick {
            t: t as f64,
            values,
        })
        .collect();
    Ok(Source {
        meta: Meta {
            label: format!("graphite {url} ({} series)", series.len()),
            started_at_ms: Some(0),
            interval_secs: step.is_finite().then_some(step),
            graphite: true,
        },
        records: Records::Memory(records.into_iter()),
    })
}

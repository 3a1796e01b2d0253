//! The `leakwatch` command's library: run the leak detectors over a recording, Graphite
//! history or samples held in memory, report what they find, and draw the series as SVG or
//! PNG with alerts and findings marked.
//!
//! The `leakwatch` binary of this crate is a thin command line over these functions; other
//! programs (a demo drawing its own graphs, a CI step judging a soak test) call them directly.
//!
//! ```
//! use std::collections::BTreeMap;
//! use leakwatch::recording::Record;
//! use leakwatch_cli::{analyze, plot, source::{Meta, Source}};
//!
//! // Two hours of samples: a callback registry that leaks one registration in ten after
//! // the first half hour, beside the streams it should follow.
//! let records: Vec<Record> = (1..=7200u32)
//!     .map(|s| {
//!         let streams = 400.0 + f64::from(s % 7);
//!         let leaked = f64::from(s.saturating_sub(1800) / 10);
//!         let values = BTreeMap::from([
//!             ("live.http.streams".to_string(), streams),
//!             ("live.presence.callbacks".to_string(), streams + leaked),
//!         ]);
//!         Record::Tick { t: f64::from(s), values }
//!     })
//!     .collect();
//!
//! // Analysis: the watchdog's default rules (growth of `live.*` and memory).
//! let rules = analyze::RuleArgs::default().rule_set(false)?;
//! let mut source = Source::from_records(Meta::new("soak test"), records.clone());
//! let analysis = analyze::analyze(&mut source, rules)?;
//! let growth = &analysis.episodes[0].firing;
//! assert_eq!(growth.series, "live.presence.callbacks");
//!
//! // Plotting: one panel per group (`live.*` here), the findings marked in orange.
//! let options = plot::PlotOptions { analyze: true, ..plot::PlotOptions::default() };
//! let mut source = Source::from_records(Meta::new("soak test"), records);
//! let chart = plot::chart(&mut source, &options)?;
//! let svg = chart.svg()?;
//! assert!(svg.starts_with("<svg") && svg.contains("growth live.presence.callbacks"));
//! let png = chart.png()?;
//! assert_eq!(&png[..4], b"\x89PNG");
//! # Ok::<(), leakwatch_cli::Error>(())
//! ```
//!
//! * [`analyze`]: [`analyze::analyze`] replays samples through one detector engine (the
//!   watchdog's, built by the same rule assembly) into an [`analyze::Analysis`];
//!   [`report`] prints it for people or as JSON.
//! * [`plot`]: [`plot::chart`] reads samples into a bounded [`plot::Chart`] (every series
//!   downsampled while reading), which renders as SVG text or PNG bytes;
//!   [`plot::write_file`] picks the format from the file name and replaces the file only
//!   once the image is complete.
//! * [`source`]: where samples come from: recording files (rotated parts in order),
//!   graphite-web ([`graphite`]) or records in memory.
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod analyze;
mod glyphs;
pub mod graphite;
pub mod plot;
pub mod report;
pub mod source;

use std::path::PathBuf;

/// Everything that can make analysis or plotting fail. Each message names the file (and
/// line) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A recording could not be read or has a bad line (the message names `file:line`).
    #[error(transparent)]
    Recording(#[from] leakwatch::recording::RecordingError),
    /// The rules built from the options are invalid.
    #[error("invalid rule: {0}")]
    Rule(#[from] leakwatch_detect::ConfigError),
    /// An option value could not be used (a usage error: exit status 2).
    #[error("invalid {option} {value:?}: {reason}")]
    BadOption {
        /// The option, e.g. `--output`.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what would work.
        reason: String,
    },
    /// The input held nothing to work on.
    #[error("{0}")]
    NoData(String),
    /// Recording files given together are not parts of one recording.
    #[error("{0}")]
    NotOneRecording(String),
    /// Graphite could not be read.
    #[error(transparent)]
    Graphite(#[from] graphite::GraphiteError),
    /// The output file could not be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// Drawing the chart failed.
    #[error("cannot draw {what}: {reason}")]
    Plot {
        /// What was being drawn (the output file, or `SVG`/`PNG` in memory).
        what: String,
        /// The cause.
        reason: String,
    },
}

impl Error {
    /// The `leakwatch` command's exit status for this error: 2 for a usage error (an option
    /// value that cannot work), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadOption { .. } => 2,
            _ => 1,
        }
    }
}

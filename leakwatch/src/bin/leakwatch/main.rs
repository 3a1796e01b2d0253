//! `leakwatch`: run the leak detectors over a recording (or Graphite history) and plot it.
//!
//! ```text
//! leakwatch analyze rec.jsonl.2 rec.jsonl.1 rec.jsonl --pair live.presence.callbacks=live.http.streams
//! leakwatch analyze rec.jsonl --load live.http.streams --json
//! leakwatch analyze --graphite http://127.0.0.1:8080 --target 'stats.gauges.app.*.leakwatch.live.*' --from -2h
//! leakwatch plot rec.jsonl -o leaks.svg --series 'live.*' --series 'memory.*'
//! ```
//!
//! Exit status: 0 when the input was read (whether or not anything was found), 1 on an
//! error (unreadable or malformed input, bad rule, unwritable output), 2 on a usage error,
//! 3 when `analyze --fail-on-findings` found something.

mod analyze;
mod glyphs;
mod plot;
mod report;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "leakwatch",
    version,
    about = "Find logical resource leaks in leakwatch recordings (and Graphite history), and graph them",
    after_help = "Exit status: 0 when the input was read, findings or not; 1 on errors; \
                  2 on usage errors; 3 with `analyze --fail-on-findings` when something was found."
)]
struct Cli {
    /// Never show progress bars (they only appear on stderr, for inputs over 4 MiB).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the watchdog's detectors over a recording and report what they find.
    Analyze(analyze::Args),
    /// Draw the chosen series over time (SVG or PNG), one panel per group, alerts marked.
    Plot(plot::Args),
}

/// Everything that can make the tool fail. Each message names the file (and line) at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A recording could not be read or has a bad line (the message names `file:line`).
    #[error(transparent)]
    Recording(#[from] leakwatch::recording::RecordingError),
    /// The rules built from the options are invalid.
    #[error("invalid rule: {0}")]
    Rule(#[from] leakwatch_detect::ConfigError),
    /// An option value could not be used.
    #[error("invalid {option} {value:?}: {reason}")]
    BadOption {
        /// The option, e.g. `--pair`.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what would work.
        reason: String,
    },
    /// The input held nothing to work on.
    #[error("{0}")]
    NoData(String),
    /// Graphite could not be read.
    #[error("graphite: {0}")]
    Graphite(String),
    /// The output file could not be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// Drawing the chart failed.
    #[error("cannot draw {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
}

/// Exit status when `--fail-on-findings` is given and something was found.
const EXIT_FINDINGS: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(&args, cli.quiet),
        Command::Plot(args) => plot::run(&args, cli.quiet).map(|()| false),
    };
    match result {
        Ok(true) => ExitCode::from(EXIT_FINDINGS),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leakwatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}

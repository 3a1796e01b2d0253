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

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use leakwatch_cli::{analyze, plot};

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
            ExitCode::from(e.exit_code())
        }
    }
}

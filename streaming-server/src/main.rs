//! `streaming-server`: serve, make fixtures, simulate traffic, run the demo.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use streaming_server::config::ServeArgs;
use streaming_server::fixture::Fixture;
use streaming_server::server::{Server, Watching};
use streaming_server::simulate::{SimArgs, Simulation};

#[derive(Parser)]
#[command(
    name = "streaming-server",
    version,
    about = "Reference SSE streaming and presence server, instrumented with leakwatch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the streaming API.
    Serve(Box<ServeArgs>),
    /// Drive a running server with simulated clients and check what they receive.
    Simulate(Box<SimArgs>),
    /// The one-command demo: server, watchdog and simulated traffic with a seed bug switched
    /// on; prints alerts as they fire and writes a report folder.
    Demo(Box<streaming_server::demo::DemoArgs>),
    /// Print a generated fixture (JSON) to stdout.
    Fixture {
        /// Number of users.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Number of flows.
        #[arg(long, default_value_t = 10)]
        flows: usize,
        /// Random seed (the same seed gives the same fixture).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Fixture { users, flows, seed } => {
            let f = Fixture::generate(users, flows, seed);
            println!(
                "{}",
                serde_json::to_string_pretty(&f).expect("fixture serialises")
            );
            ExitCode::SUCCESS
        }
        Command::Serve(args) => runtime().block_on(serve(*args)),
        Command::Simulate(args) => runtime().block_on(simulate(*args)),
        Command::Demo(args) => runtime().block_on(demo(*args)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime")
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(args: ServeArgs) -> ExitCode {
    init_logs();
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("streaming-server: {e}");
            return ExitCode::from(2);
        }
    };
    let fixture = match &args.fixture {
        Some(path) => match Fixture::load(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("streaming-server: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            let f = Fixture::builtin();
            // Printed on stdout for the person who started the server, never to the log.
            println!("built-in fixture (use --fixture FILE for your own); tokens:");
            for u in &f.users {
                println!("  user {} {:<4} token {}", u.id, u.name, u.token);
            }
            for fl in &f.flows {
                println!("  flow {} members {:?}", fl.path(), fl.members);
            }
            f
        }
    };
    let watching = Watching {
        interval: Some(args.sample_interval),
        webhook: args.alert_webhook.clone(),
        statsd: args.statsd.clone(),
        record: args.record.clone(),
        log_alerts: true,
        on_alert: None,
    };
    let server = match Server::start(config, fixture, leakwatch::Registry::global(), watching).await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("streaming-server: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(addr = %server.addr, faults = ?args.inject, reaper = !args.no_reaper, "listening");
    println!("listening on http://{}", server.addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    let stopped = server.shutdown(Duration::from_secs(4)).await;
    tracing::info!(
        streams_left = stopped.streams_left,
        took_ms = stopped.took.as_millis() as u64,
        "stopped"
    );
    ExitCode::SUCCESS
}

async fn simulate(args: SimArgs) -> ExitCode {
    match Simulation::run_from_args(&args).await {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            if report.violations() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("streaming-server simulate: {e}");
            ExitCode::from(2)
        }
    }
}

async fn demo(args: streaming_server::demo::DemoArgs) -> ExitCode {
    match streaming_server::demo::run(&args).await {
        Ok(outcome) if outcome.success => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("streaming-server demo: {e}");
            ExitCode::from(2)
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

//! `streaming-server demo`: the server, its watchdog and the traffic simulator in one process,
//! with one of the seed's bugs switched on (or none), then a report folder with the recording,
//! the graphs and a summary.
//!
//! With no flags it runs the seed's second bug (`--inject late-callback`) for 90 s: clients
//! resume with `Last-Event-ID` as EventSource does, some ids are too old, the server answers
//! 409 while the slow 1-to-1 lookup is still running, and the lookup's late completion leaves
//! presence callbacks behind. The watchdog sees `live.presence.callbacks` leave
//! `live.presence.expected_callbacks` behind and says so within a minute.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leakwatch::{Alert, AlertState, Registry};
use serde::Serialize;

use crate::config::{ServeArgs, parse_duration};
use crate::faults::Fault;
use crate::fixture::Fixture;
use crate::instrument;
use crate::server::{Server, Watching};
use crate::simulate::{Profile, Report, SimArgs, Simulation};

/// Flags of `streaming-server demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// The seed bug to switch on: `late-callback` (the default) or `close-race[=RATE]`.
    #[arg(long, value_name = "FAULT", conflicts_with = "healthy")]
    pub inject: Vec<Fault>,
    /// Run the correct code: the demo then shows that nothing fires.
    #[arg(long)]
    pub healthy: bool,
    /// Turn the dead-connection reaper off (with `close-race`, lost closes then leak).
    #[arg(long)]
    pub no_reaper: bool,
    /// How long the traffic runs.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Also send every series and alert to StatsD at HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub statsd: Option<String>,
    /// Simulated clients at the peak of the load profile.
    #[arg(long, default_value_t = 300)]
    pub clients: usize,
    /// New client connections per second at most (the simulator's `--connect-rate`).
    #[arg(long, default_value_t = 100.0)]
    pub connect_rate: f64,
    /// Median stream lifetime (the simulator's `--lifetime`).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub lifetime: Duration,
    /// Load over time: steady, ramp, diurnal or spike.
    #[arg(long, default_value = "steady")]
    pub profile: Profile,
    /// Report folder (default: `leakwatch-demo-<time>` in the current directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the fixture, the traffic and the fault switches.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the live line every this often.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub every: Duration,
}

impl DemoArgs {
    /// The faults this run switches on.
    pub fn faults(&self) -> Vec<Fault> {
        if self.healthy {
            Vec::new()
        } else if self.inject.is_empty() {
            vec![Fault::LateCallback]
        } else {
            self.inject.clone()
        }
    }

    /// What the demo sets out to show.
    pub fn expectation(&self) -> Expectation {
        let faults = self.faults();
        if faults.contains(&Fault::LateCallback) {
            Expectation::Alert(vec!["live.presence.callbacks"])
        } else if faults.iter().any(|f| matches!(f, Fault::CloseRace(_))) && self.no_reaper {
            Expectation::Alert(vec![
                "live.http.streams",
                "live.stream",
                "live.presence.callbacks",
            ])
        } else {
            Expectation::Silence
        }
    }
}

/// What a run should show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// A firing alert on one of these series.
    Alert(Vec<&'static str>),
    /// No alert at all.
    Silence,
}

/// One alert as the demo saw it.
#[derive(Clone, Debug, Serialize)]
pub struct SeenAlert {
    /// Seconds since the traffic started.
    pub after_secs: f64,
    /// The alert.
    pub alert: Alert,
}

/// The outcome of a demo run.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// Faults on.
    pub faults: Vec<String>,
    /// Whether the reaper ran.
    pub reaper: bool,
    /// What the run set out to show.
    pub expected: Expectation,
    /// Every alert, firing and resolved, in order.
    pub alerts: Vec<SeenAlert>,
    /// Seconds from the start of traffic to the first expected alert.
    pub detected_after_secs: Option<f64>,
    /// Whether the demo showed what it set out to.
    pub success: bool,
    /// Streams reaped (closes that never arrived, found by the reaper).
    pub reaped: u64,
    /// Connection-scoped counts before traffic and after it drained.
    pub baseline: BTreeMap<String, (u64, u64)>,
    /// What `leakwatch analyze` finds in the recording with the same rules: (rule, series).
    pub analyzed: Vec<(String, String)>,
    /// What the live watchdog fired: (rule, series).
    pub live: Vec<(String, String)>,
    /// Resident memory a quarter into the traffic (warmed up), bytes.
    pub rss_warm_bytes: Option<u64>,
    /// Resident memory after the traffic drained, bytes.
    pub rss_end_bytes: Option<u64>,
    /// The simulator's report.
    pub traffic: Report,
    /// The report folder.
    pub folder: PathBuf,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The report folder could not be written.
    #[error("cannot write the report folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server did not start.
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The simulator could not run.
    #[error("the traffic simulator could not run: {0}")]
    Simulate(#[from] crate::simulate::SimError),
    /// Analysis or plotting of the recording failed.
    #[error("cannot analyse or plot the recording: {0}")]
    Report(#[from] leakwatch_cli::Error),
}

/// Series compared before traffic and after it drained (connection-scoped counts).
const DRAINED: &[&str] = &[
    "http.streams",
    "stream",
    "presence.callbacks",
    "presence.expected_callbacks",
    "stream.Shared",
    "conversations.Lookup",
    "tokio.alive_tasks",
    "server.sockets",
];

/// Runs the demo; prints as it goes.
pub async fn run(args: &DemoArgs) -> Result<Outcome, DemoError> {
    let folder = args.out.clone().unwrap_or_else(default_folder);
    std::fs::create_dir_all(&folder).map_err(|source| DemoError::Folder {
        path: folder.clone(),
        source,
    })?;
    let recording = folder.join("recording.jsonl");
    let _ = std::fs::remove_file(&recording);
    let faults = args.faults();
    let expected = args.expectation();

    let fixture = Fixture::generate(400, 24, args.seed);
    let serve = ServeArgs {
        addr: "127.0.0.1:0".parse().expect("literal address"),
        inject: faults.clone(),
        no_reaper: args.no_reaper,
        // Short history, so some resumes after a long absence find their id gone: 409.
        history: 200,
        seed: args.seed,
        ..ServeArgs::default()
    };
    let config = serve.config()?;
    let started = Arc::new(Mutex::new(None::<Instant>));
    let seen: Arc<Mutex<Vec<SeenAlert>>> = Arc::default();
    let on_alert = {
        let seen = seen.clone();
        let started = started.clone();
        Arc::new(move |a: &Alert| {
            let after = started
                .lock()
                .expect("not poisoned")
                .map_or(0.0, |s: Instant| s.elapsed().as_secs_f64());
            print_alert(a, after);
            seen.lock().expect("not poisoned").push(SeenAlert {
                after_secs: after,
                alert: a.clone(),
            });
        }) as crate::server::AlertFn
    };
    let registry = Registry::global();
    let watching = Watching {
        interval: Some(Duration::from_secs(1)),
        webhook: None,
        statsd: args.statsd.clone(),
        record: Some(recording.clone()),
        log_alerts: false,
        on_alert: Some(on_alert),
    };
    let server = Server::start(config, fixture.clone(), registry, watching).await?;
    let fault_text = if faults.is_empty() {
        "none (healthy)".to_owned()
    } else {
        faults
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "leakwatch demo: the reference streaming server with fault {fault_text}, reaper {}",
        if args.no_reaper { "off" } else { "on" }
    );
    println!("  server     http://{}", server.addr);
    println!(
        "  dashboard  http://{}/debug/leakwatch/ui   (open it while the demo runs)",
        server.addr
    );
    println!(
        "  traffic    {} clients, {:?} profile, for {}",
        args.clients,
        args.profile,
        humantime::format_duration(args.duration)
    );
    println!();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = drained_counts(registry);

    let sim = SimArgs {
        clients: args.clients,
        connect_rate: args.connect_rate,
        lifetime: args.lifetime,
        duration: args.duration,
        profile: args.profile,
        seed: Some(args.seed),
        ..SimArgs::default()
    };
    *started.lock().expect("not poisoned") = Some(Instant::now());
    let warm = tokio::spawn({
        let quarter = args.duration / 4;
        async move {
            tokio::time::sleep(quarter).await;
            leakwatch::memory::resident_bytes()
        }
    });
    let ticker = tokio::spawn(live_lines(
        registry.clone(),
        seen.clone(),
        args.every,
        started.clone(),
    ));
    // The simulated clients run on a runtime of their own, so the server's runtime counts
    // (tokio's alive tasks) are the server's alone.
    let traffic = {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (sim, fixture, addr) = (sim.clone(), fixture.clone(), server.addr);
        std::thread::Builder::new()
            .name("demo-clients".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("start the clients' runtime");
                let r = rt.block_on(Simulation::run(
                    &sim,
                    &fixture,
                    addr,
                    crate::simulate::Progress::Hidden,
                ));
                let _ = tx.send(r);
            })
            .expect("spawn the clients' thread");
        rx.await.expect("the clients' thread reports")
    };
    ticker.abort();
    let traffic = traffic?;

    // Let streams drain and lookups finish, then compare with the baseline.
    let drain_by = Instant::now() + Duration::from_secs(15);
    while Instant::now() < drain_by {
        if registry.snapshot_counts().live("http.streams")
            <= baseline.get("http.streams").copied().unwrap_or(0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Lookups finish, and the kernel's socket counts (read at most every
    // `SOCKET_READ_EVERY`) are read afresh after the drain.
    tokio::time::sleep(instrument::SOCKET_READ_EVERY + Duration::from_secs(1)).await;
    let after = drained_counts(registry);
    let rss_warm_bytes = warm.await.ok().flatten();
    let rss_end_bytes = leakwatch::memory::resident_bytes();
    let reaped = registry
        .snapshot_counts()
        .get("http.streams")
        .map_or(0, |s| s.extra("reaped"));
    let rules = instrument::watchdog_rules();
    server.shutdown(Duration::from_secs(4)).await;

    let alerts = seen.lock().expect("not poisoned").clone();
    let live: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| a.alert.state == AlertState::Firing)
        .map(|a| (a.alert.rule.to_string(), a.alert.series.clone()))
        .collect();
    let detected_after_secs = match &expected {
        Expectation::Alert(series) => alerts
            .iter()
            .find(|a| {
                a.alert.state == AlertState::Firing && series.contains(&a.alert.series.as_str())
            })
            .map(|a| a.after_secs),
        Expectation::Silence => None,
    };
    let success = match &expected {
        Expectation::Alert(_) => detected_after_secs.is_some(),
        Expectation::Silence => live.is_empty(),
    };

    let analyzed = report::analyze(&recording, rules)?;
    report::plots(&recording, &folder)?;
    let outcome = Outcome {
        faults: faults.iter().map(|f| f.to_string()).collect(),
        reaper: !args.no_reaper,
        expected,
        alerts,
        detected_after_secs,
        success,
        reaped,
        baseline: DRAINED
            .iter()
            .map(|s| {
                (
                    (*s).to_owned(),
                    (
                        baseline.get(*s).copied().unwrap_or(0),
                        after.get(*s).copied().unwrap_or(0),
                    ),
                )
            })
            .collect(),
        analyzed,
        live,
        rss_warm_bytes,
        rss_end_bytes,
        traffic,
        folder: folder.clone(),
    };
    report::write_summary(&outcome, &folder).map_err(|source| DemoError::Folder {
        path: folder.clone(),
        source,
    })?;
    print_end(&outcome);
    Ok(outcome)
}

fn default_folder() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            .to_string()
            .replace([':', '-'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_owned();
    PathBuf::from(format!("leakwatch-demo-{stamp}"))
}

fn drained_counts(registry: &Registry) -> BTreeMap<String, u64> {
    let snap = registry.snapshot_counts();
    DRAINED
        .iter()
        .map(|s| ((*s).to_owned(), snap.live(s)))
        .collect()
}

async fn live_lines(
    registry: Registry,
    seen: Arc<Mutex<Vec<SeenAlert>>>,
    every: Duration,
    started: Arc<Mutex<Option<Instant>>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = started
            .lock()
            .expect("not poisoned")
            .map_or(0, |s| s.elapsed().as_secs());
        let s = registry.snapshot_counts();
        let rss = leakwatch::memory::resident_bytes().unwrap_or(0) as f64 / 1e6;
        let firing = seen
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|a| a.alert.state == AlertState::Firing)
            .count();
        println!(
            "t={t:>3}s  streams {:>4}  callbacks {:>5} (open streams hold {:>5})  sockets {:>4}  tasks {:>4}  reaped {:>4}  rss {rss:>6.1} MB  alerts {firing}",
            s.live("http.streams"),
            s.live("presence.callbacks"),
            s.live("presence.expected_callbacks"),
            s.live("server.sockets"),
            s.live("tokio.alive_tasks"),
            s.get("http.streams").map_or(0, |x| x.extra("reaped")),
        );
    }
}

fn print_alert(a: &Alert, after: f64) {
    let state = match a.state {
        AlertState::Firing => "ALERT",
        AlertState::Resolved => "resolved",
    };
    let mut out = format!(
        "\n{state} after {after:.0}s: {} [{}] on {}",
        a.rule, a.name, a.series
    );
    if let Some(o) = &a.other {
        let _ = write!(out, " (against {o})");
    }
    let _ = write!(out, "\n  {}", a.message);
    if let Some(r) = a.ratio {
        let _ = write!(out, "\n  ratio {r:.3}");
    }
    if let Some(s) = a.slope_per_sec {
        let _ = write!(out, "\n  slope {s:.3}/s");
    }
    if let Some(e) = a.expected {
        let _ = write!(out, "\n  expected {e:.0}, values {:?}", a.values);
    }
    for site in a.hint.iter().take(3) {
        let _ = write!(
            out,
            "\n  created at {} ({} live, oldest {:.0}s)",
            site.location,
            site.live,
            site.age().as_secs_f64()
        );
    }
    println!("{out}\n");
}

fn print_end(o: &Outcome) {
    println!();
    match (&o.expected, o.detected_after_secs) {
        (Expectation::Alert(_), Some(t)) => {
            println!("caught: the expected alert fired {t:.0} s after traffic started")
        }
        (Expectation::Alert(series), None) => println!("NOT caught: no alert on {series:?}"),
        (Expectation::Silence, _) if o.success => {
            println!("silent: no alert on the healthy server")
        }
        (Expectation::Silence, _) => println!(
            "NOT silent: {} alert(s) fired on a run that should stay quiet",
            o.live.len()
        ),
    }
    if o.reaped > 0 {
        println!(
            "the reaper closed {} stream(s) whose close never arrived",
            o.reaped
        );
    }
    let moved: Vec<String> = o
        .baseline
        .iter()
        .filter(|(_, (b, a))| b != a)
        .map(|(k, (b, a))| format!("{k} {b} -> {a}"))
        .collect();
    if moved.is_empty() {
        println!("after traffic: every connection-scoped count is back at its baseline");
    } else {
        println!("after traffic, not back at baseline: {}", moved.join(", "));
    }
    if let (Some(w), Some(e)) = (o.rss_warm_bytes, o.rss_end_bytes) {
        println!(
            "resident memory: {:.1} MB warmed up, {:.1} MB after traffic ({:+.1}%)",
            w as f64 / 1e6,
            e as f64 / 1e6,
            (e as f64 / w as f64 - 1.0) * 100.0
        );
    }
    println!(
        "traffic: {} streams opened, {} aborts, {} resumes, {} 409s, {} violations",
        o.traffic.connections.opened,
        o.traffic.connections.aborts,
        o.traffic.connections.resumes,
        o.traffic.connections.conflicts,
        o.traffic.violations()
    );
    println!("leakwatch analyze on the recording finds: {:?}", o.analyzed);
    println!(
        "report: {}/ (summary.md, summary.json, recording.jsonl, *.png)",
        o.folder.display()
    );
}

/// The report folder's contents: analysis, graphs and the summary.
mod report {
    use super::*;
    use leakwatch_cli::plot::{self, PlotOptions};
    use leakwatch_cli::source::Source;

    /// The recording analysed with the watchdog's own rules: (rule, series) of each finding.
    pub fn analyze(
        recording: &Path,
        rules: leakwatch::detect::RuleSet,
    ) -> Result<Vec<(String, String)>, leakwatch_cli::Error> {
        let mut source = Source::files(&[recording.to_path_buf()], true)?;
        let analysis = leakwatch_cli::analyze::analyze(&mut source, rules)?;
        Ok(analysis
            .episodes
            .iter()
            .map(|e| (e.firing.rule.to_string(), e.firing.series.clone()))
            .collect())
    }

    /// The seed's four graphs, alerts marked.
    pub const GRAPHS: &[(&str, &str, &[&str])] = &[
        (
            "memory.png",
            "Memory",
            &["memory.resident_bytes", "memory.heap_bytes"],
        ),
        (
            "delivery.png",
            "Delivery volume",
            &["count.delivered.*", "delivered.*"],
        ),
        (
            "http-status.png",
            "HTTP status codes",
            &["count.http.status.*"],
        ),
        (
            "callbacks-vs-connections.png",
            "Callbacks against connections",
            &[
                "live.presence.callbacks",
                "live.presence.expected_callbacks",
                "live.http.streams",
                "live.server.sockets",
                "live.tokio.alive_tasks",
            ],
        ),
    ];

    pub fn plots(recording: &Path, folder: &Path) -> Result<(), leakwatch_cli::Error> {
        for (file, title, series) in GRAPHS {
            let mut source = Source::files(&[recording.to_path_buf()], true)?;
            let options = PlotOptions {
                series: series.iter().map(|s| (*s).to_owned()).collect(),
                title: Some(format!("{title} (leakwatch demo)")),
                height: Some(420),
                ..PlotOptions::default()
            };
            let chart = plot::chart(&mut source, &options)?;
            plot::write_file(&chart, &folder.join(file))?;
        }
        Ok(())
    }

    fn state_name(s: AlertState) -> &'static str {
        match s {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn write_summary(o: &Outcome, folder: &Path) -> std::io::Result<()> {
        std::fs::write(
            folder.join("summary.json"),
            serde_json::to_string_pretty(o).expect("plain data serialises"),
        )?;
        let mut md = String::new();
        let _ = writeln!(md, "# leakwatch demo\n");
        let _ = writeln!(
            md,
            "- faults: {}",
            if o.faults.is_empty() {
                "none".to_owned()
            } else {
                o.faults.join(", ")
            }
        );
        let _ = writeln!(md, "- reaper: {}", if o.reaper { "on" } else { "off" });
        let _ = writeln!(md, "- expected: {:?}", o.expected);
        let _ = writeln!(
            md,
            "- result: {}",
            if o.success { "shown" } else { "NOT shown" }
        );
        if let Some(t) = o.detected_after_secs {
            let _ = writeln!(md, "- first expected alert: {t:.0} s after traffic started");
        }
        let _ = writeln!(md, "- streams reaped: {}\n", o.reaped);
        let _ = writeln!(md, "## Alerts\n");
        for a in &o.alerts {
            let _ = writeln!(
                md,
                "- {:.0} s: {} {} on `{}`: {}",
                a.after_secs,
                state_name(a.alert.state),
                a.alert.rule,
                a.alert.series,
                a.alert.message
            );
        }
        let _ = writeln!(
            md,
            "\n## Live watchdog vs `leakwatch analyze` on the recording\n"
        );
        let _ = writeln!(md, "- live: {:?}\n- analyze: {:?}\n", o.live, o.analyzed);
        let _ = writeln!(
            md,
            "## Connection-scoped counts (before traffic → after it drained)\n"
        );
        for (k, (b, a)) in &o.baseline {
            let _ = writeln!(md, "- `{k}`: {b} → {a}");
        }
        let _ = writeln!(md, "\n## Traffic\n\n```\n{}\n```\n", o.traffic);
        let _ = writeln!(md, "## Graphs\n");
        for (file, title, _) in GRAPHS {
            let _ = writeln!(md, "![{title}]({file})");
        }
        std::fs::write(folder.join("summary.md"), md)
    }
}

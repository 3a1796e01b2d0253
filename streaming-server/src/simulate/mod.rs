//! The traffic simulator (`streaming-server simulate`): realistic EventSource clients driving
//! a running server on loopback, checking everything they receive.
//!
//! ```text
//! streaming-server serve --addr 127.0.0.1:18080 --fixture fx.json &
//! streaming-server simulate --target http://127.0.0.1:18080 --fixture fx.json \
//!     --clients 300 --duration 90s --profile diurnal --resume-fraction 0.3 --seed 7
//! ```
//!
//! Clients connect at `--connect-rate`, as many as `--clients` scaled by the `--profile`;
//! each keeps its stream for a lifetime drawn around `--lifetime`, ends it with a reset
//! (`--abort-fraction`) or a clean close, then reconnects with `Last-Event-ID`
//! (`--resume-fraction`, as EventSource does: the traffic that found the seed's second bug),
//! with an id too old (`--stale-fraction`: 409, then a resync), or leaves. Meanwhile messages
//! are posted (`--post-rate`) and users toggle active/idle (`--toggle-rate`). The run is
//! bounded in time (`--duration` ≤ 1 h, then `--settle`, then every stream is closed) and in
//! connections (`--max-connections`), aims only at loopback, and one `--seed` gives one
//! schedule. What the checks verify is described in the `checks` module (see
//! [`ViolationKind`] for each kind of violation).

mod args;
mod checks;
mod client;
mod http;
mod poster;
mod profile;
mod report;
mod schedule;
mod sse;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use args::{LifetimeDist, SimArgs};
pub use checks::{Example, ViolationKind, Violations};
pub use profile::Profile;
pub use report::Report;

use crate::fixture::{Directory, Fixture, FixtureError, FlowIx, UserId};
use checks::{ConnRecord, PostRecord};
use stats::Stats;

/// Messages kept for the delivery check at most (16 bytes each); streams opened past it are
/// still checked event by event, and counted as unchecked for deliveries.
const MAX_RECORDED_MESSAGES: u64 = 8_000_000;
/// How long client tasks get to close their streams at the end before they are stopped.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long the writers get to finish their requests in flight (each is bounded by 10 s).
const WRITER_GRACE: Duration = Duration::from_secs(15);

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A parameter is out of range.
    #[error("{flag}: {reason}")]
    Args {
        /// The flag.
        flag: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The target is not a loopback `http://HOST:PORT`.
    #[error("--target {target}: {reason}")]
    Target {
        /// What was given.
        target: String,
        /// Why it is refused.
        reason: String,
    },
    /// The fixture could not be loaded or is invalid.
    #[error("{0}")]
    Fixture(#[from] FixtureError),
    /// No user of the fixture is a member of any flow: nobody could stream.
    #[error("the fixture has no user who is a member of a flow; nothing to stream")]
    EmptyFixture,
    /// Nothing answers at the target.
    #[error(
        "no server answers at {addr}: {reason} (start one with `streaming-server serve --addr {addr}`)"
    )]
    Unreachable {
        /// The address.
        addr: SocketAddr,
        /// What connecting said.
        reason: String,
    },
}

/// How the run shows its progress.
#[derive(Clone, Default)]
pub enum Progress {
    /// Nothing.
    #[default]
    Hidden,
    /// A progress bar on stderr, only if stderr is a terminal.
    Bar,
    /// Called about once a second with the live counts (e.g. the demo's live line).
    Callback(Arc<dyn Fn(&LiveStats) + Send + Sync>),
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Progress::Hidden => "Hidden",
            Progress::Bar => "Bar",
            Progress::Callback(_) => "Callback(..)",
        })
    }
}

/// Live counts while a run goes on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveStats {
    /// Since the start.
    pub elapsed: Duration,
    /// The traffic phase's length.
    pub duration: Duration,
    /// Clients wanted now (profile × `--clients`).
    pub target_clients: usize,
    /// Clients running now.
    pub active_clients: usize,
    /// Streams open now.
    pub open_streams: u64,
    /// Stream connections attempted so far.
    pub connections: u64,
    /// Streams aborted with a reset so far.
    pub aborts: u64,
    /// `Last-Event-ID` reconnects so far.
    pub resumes: u64,
    /// 409s so far.
    pub conflicts: u64,
    /// Posts acknowledged so far.
    pub posts: u64,
    /// Events received so far.
    pub events: u64,
    /// Violations found so far by the per-event checks (deliveries are judged at the end).
    pub violations: u64,
}

/// The run's phases: traffic, then settling (no new posts or connections, streams stay open
/// for in-flight deliveries), then closing (every stream closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Settling,
    Closing,
}

/// What every task of a run shares.
struct Shared {
    addr: SocketAddr,
    args: SimArgs,
    seed: u64,
    /// Marks this run's messages (so other posters' and earlier runs' are told apart).
    tag: String,
    dir: Directory,
    /// Users who are a member of at least one flow.
    eligible: Vec<UserId>,
    start: Instant,
    stats: Stats,
    phase_rx: watch::Receiver<Phase>,
    conn_limit: Arc<Semaphore>,
    target_clients: AtomicUsize,
    active_clients: AtomicUsize,
    /// Streaming clients per user.
    claims: Mutex<HashMap<UserId, usize>>,
    records: Mutex<Vec<ConnRecord>>,
    recorded_messages: AtomicU64,
    posts: Mutex<Vec<PostRecord>>,
    violations: Mutex<Violations>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking task cannot leave these plain collections half-updated in a way that
    // matters more than losing the run's report.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn phase(&self) -> Phase {
        *self.phase_rx.borrow()
    }

    /// The profile's load now.
    fn level(&self) -> f64 {
        self.args
            .profile
            .level(self.now().as_secs_f64() / self.args.duration.as_secs_f64())
    }

    /// Sleeps `d` unless the traffic phase ends first; false if it ended.
    async fn sleep_while_running(&self, d: Duration) -> bool {
        let mut rx = self.phase_rx.clone();
        if *rx.borrow_and_update() != Phase::Running {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.phase() == Phase::Running,
            _ = rx.wait_for(|p| *p != Phase::Running) => false,
        }
    }

    /// A connection slot, unless the traffic phase ends while waiting.
    async fn connection_permit(&self) -> Option<OwnedSemaphorePermit> {
        let mut rx = self.phase_rx.clone();
        tokio::select! {
            p = self.conn_limit.clone().acquire_owned() => p.ok(),
            _ = rx.wait_for(|p| *p != Phase::Running) => None,
        }
    }

    fn violation(&self, kind: ViolationKind, detail: impl FnOnce() -> String) {
        lock(&self.violations).record(kind, detail);
    }

    fn merge_violations(&self, v: Violations) {
        if v.total > 0 {
            lock(&self.violations).merge(v);
        }
    }

    fn push_record(&self, r: ConnRecord) {
        lock(&self.records).push(r);
    }

    /// Numbers and records a post about to be sent.
    fn start_post(&self, flow: FlowIx) -> u32 {
        let mut posts = lock(&self.posts);
        // Numbered and timed under one lock: sequence order is send order.
        posts.push(poster::new_post(flow, self.now()));
        (posts.len() - 1) as u32
    }

    fn ack_post(&self, seq: u32, id: u64) {
        let now = self.now();
        if let Some(p) = lock(&self.posts).get_mut(seq as usize) {
            p.id = Some(id);
            p.acked_at = Some(now);
        }
    }

    /// The `pick`-th (modulo) user with a streaming client, if any.
    fn streaming_user(&self, pick: usize) -> Option<UserId> {
        let claims = lock(&self.claims);
        if claims.is_empty() {
            return None;
        }
        let mut users: Vec<UserId> = claims.keys().copied().collect();
        users.sort_unstable();
        Some(users[pick % users.len()])
    }

    fn live(&self) -> LiveStats {
        let s = &self.stats;
        LiveStats {
            elapsed: self.now(),
            duration: self.args.duration,
            target_clients: self.target_clients.load(Relaxed),
            active_clients: self.active_clients.load(Relaxed),
            open_streams: s.open_streams.get(),
            connections: s.connections.get(),
            aborts: s.aborts.get(),
            resumes: s.resumes.get(),
            conflicts: s.conflicts.get(),
            posts: s.posts_acked.get(),
            events: s.events.get(),
            violations: lock(&self.violations).total,
        }
    }
}

/// A client's hold on its user, counted against `--streams-per-user`.
struct UserClaim {
    sh: Arc<Shared>,
    user: UserId,
}

impl UserClaim {
    /// Claims the first user below the per-user bound, trying eligible users from `first` on.
    fn take(sh: &Arc<Shared>, first: usize) -> Option<UserClaim> {
        let n = sh.eligible.len();
        let mut claims = lock(&sh.claims);
        for k in 0..n {
            let user = sh.eligible[(first + k) % n];
            let c = claims.entry(user).or_default();
            if *c < sh.args.streams_per_user {
                *c += 1;
                return Some(UserClaim {
                    sh: sh.clone(),
                    user,
                });
            }
        }
        None
    }
}

impl Drop for UserClaim {
    fn drop(&mut self) {
        let mut claims = lock(&self.sh.claims);
        if let Some(c) = claims.get_mut(&self.user) {
            *c -= 1;
            if *c == 0 {
                claims.remove(&self.user);
            }
        }
    }
}

/// The simulator.
#[derive(Debug)]
pub struct Simulation;

impl Simulation {
    /// Runs a whole simulation against `target` (loopback only) with the users of `fixture`
    /// (the one the server runs with), and returns its report. `args.target` and
    /// `args.fixture` are not read here (see [`Simulation::run_from_args`]). Fails only
    /// before any traffic: bad parameters, a non-loopback target, an unusable fixture, or
    /// nothing listening. Whatever the server answers afterwards ends up in the report.
    pub async fn run(
        args: &SimArgs,
        fixture: &Fixture,
        target: SocketAddr,
        progress: Progress,
    ) -> Result<Report, SimError> {
        args.validate()?;
        if !target.ip().is_loopback() {
            return Err(SimError::Target {
                target: target.to_string(),
                reason: "only loopback targets are allowed".into(),
            });
        }
        fixture.validate()?;
        let dir = Directory::new(fixture.clone());
        let eligible: Vec<UserId> = dir
            .users()
            .iter()
            .map(|u| u.id)
            .filter(|&u| !dir.memberships(u).is_empty())
            .collect();
        if eligible.is_empty() {
            return Err(SimError::EmptyFixture);
        }
        preflight(target).await?;
        let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let sh = Arc::new(Shared {
            addr: target,
            args: args.clone(),
            seed,
            tag: format!("{:08x}", fastrand::u32(..)),
            dir,
            eligible,
            start: Instant::now(),
            stats: Stats::default(),
            phase_rx,
            conn_limit: Arc::new(Semaphore::new(args.max_connections)),
            target_clients: AtomicUsize::new(0),
            active_clients: AtomicUsize::new(0),
            claims: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
            recorded_messages: AtomicU64::new(0),
            posts: Mutex::new(Vec::new()),
            violations: Mutex::new(Violations::default()),
        });
        let ticker = tokio::spawn(show_progress(sh.clone(), progress));
        let posts = tokio::spawn(poster::run_posts(sh.clone()));
        let toggles = tokio::spawn(poster::run_toggles(sh.clone()));
        let mut clients = JoinSet::new();
        drive(&sh, &mut clients).await;

        let _ = phase_tx.send(Phase::Settling);
        for writer in [posts, toggles] {
            if let Ok(Err(e)) = tokio::time::timeout(WRITER_GRACE, writer).await {
                sh.stats.errors.add(format!("writer task: {e}"), 1);
            }
        }
        tokio::time::sleep(args.settle).await;
        let _ = phase_tx.send(Phase::Closing);
        let deadline = Instant::now() + CLOSE_GRACE;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, clients.join_next()).await {
            count_panic(&sh, joined);
        }
        sh.stats.forced_stops.add(clients.len() as u64);
        clients.abort_all();
        while clients.join_next().await.is_some() {}
        ticker.abort();
        let _ = ticker.await;

        let elapsed = sh.now().as_secs_f64();
        let records = std::mem::take(&mut *lock(&sh.records));
        let posts = std::mem::take(&mut *lock(&sh.posts));
        let mut violations = std::mem::take(&mut *lock(&sh.violations));
        let deliveries = checks::check_deliveries(&sh.dir, &posts, &records, &mut violations);
        Ok(Report::build(
            args,
            target.to_string(),
            seed,
            elapsed,
            &sh.stats,
            deliveries,
            violations,
        ))
    }

    /// [`run`](Self::run) with the target and fixture of `args` (the built-in fixture without
    /// `--fixture`, as `serve` does), and a progress bar on a terminal unless `--json`.
    pub async fn run_from_args(args: &SimArgs) -> Result<Report, SimError> {
        let target = args.target_addr()?;
        let fixture = match &args.fixture {
            Some(path) => Fixture::load(path)?,
            None => Fixture::builtin(),
        };
        let progress = if args.json {
            Progress::Hidden
        } else {
            Progress::Bar
        };
        Simulation::run(args, &fixture, target, progress).await
    }
}

/// Refuses to start when nothing listens (every client would only count errors).
async fn preflight(addr: SocketAddr) -> Result<(), SimError> {
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    match http::one_shot(addr, req.as_bytes(), 1024, Duration::from_secs(5)).await {
        // Any HTTP answer will do: the checks judge the server, not this probe.
        Ok(_) => Ok(()),
        Err(e) => Err(SimError::Unreachable {
            addr,
            reason: e.to_string(),
        }),
    }
}

/// Starts clients as the profile wants them, at most `--connect-rate` per second, until the
/// traffic phase is over.
async fn drive(sh: &Arc<Shared>, clients: &mut JoinSet<()>) {
    let args = &sh.args;
    let tick = Duration::from_millis(10);
    // A token bucket: smooth at the rate, with bursts of at most a tenth of a second's worth.
    let burst = (args.connect_rate / 10.0).max(1.0);
    let mut tokens = 1.0f64;
    let mut last = Instant::now();
    let mut next_index = 0u64;
    while sh.now() < args.duration {
        let now = Instant::now();
        tokens = (tokens + (now - last).as_secs_f64() * args.connect_rate).min(burst);
        last = now;
        let target = ((args.clients as f64) * sh.level()).round().max(1.0) as usize;
        sh.target_clients.store(target, Relaxed);
        while tokens >= 1.0 && sh.active_clients.load(Relaxed) < target {
            tokens -= 1.0;
            sh.active_clients.fetch_add(1, Relaxed);
            clients.spawn(client::run_client(sh.clone(), next_index));
            next_index += 1;
        }
        while let Some(joined) = clients.try_join_next() {
            count_panic(sh, joined);
        }
        tokio::time::sleep(tick).await;
    }
}

fn count_panic(sh: &Shared, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        sh.stats.errors.add("client task panicked".into(), 1);
    }
}

async fn show_progress(sh: Arc<Shared>, progress: Progress) {
    match progress {
        Progress::Hidden => {}
        Progress::Bar => {
            if !std::io::stderr().is_terminal() {
                return;
            }
            let total = sh.args.duration.as_millis() as u64;
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            // Finishes the bar when the run aborts this task at its end.
            struct Finish(indicatif::ProgressBar);
            impl Drop for Finish {
                fn drop(&mut self) {
                    self.0.finish_and_clear();
                }
            }
            let bar = Finish(bar);
            loop {
                let l = sh.live();
                bar.0
                    .set_position((l.elapsed.as_millis() as u64).min(total));
                bar.0.set_message(format!(
                    "{} streams, {} conns, {} aborts, {} resumes, {} 409s, {} posts, {} events, {} violations",
                    l.open_streams,
                    l.connections,
                    l.aborts,
                    l.resumes,
                    l.conflicts,
                    l.posts,
                    l.events,
                    l.violations
                ));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Progress::Callback(f) => loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            f(&sh.live());
        },
    }
}

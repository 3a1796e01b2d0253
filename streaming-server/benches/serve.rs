//! Streaming server: speed and memory (issue 11), in one run on this machine, with the load
//! generator sharing it, loopback only, bounded in count and time.
//!
//! ```text
//! cargo bench -p streaming-server --bench serve
//! ```
//!
//! Three servers, each in its own process so that its resident memory is its own:
//! - `reference`: the `streaming-server serve` binary as built by this bench (default features:
//!   leakwatch on, watchdog sampling every second);
//! - `uninstrumented`: the same server built with `--no-default-features` (leakwatch's counting
//!   compiled out, no watchdog; see `src/lw.rs`), built by this bench into
//!   `target/uninstrumented` (the first run compiles it; later runs find it up to date);
//! - `minimal`: axum + one tokio broadcast channel per flow, no auth, presence, history or
//!   instrumentation (`benches/serve/minimal.rs`), run as this binary in another role.
//!
//! For each, with its clients in a load-generator process of their own (this binary in the
//! `load` role: a process may hold only so many sockets): the resident memory per idle stream
//! (ΔRSS/Δstreams from `/proc/PID/status` with 10,000 authenticated streams open, 50 flows ×
//! 200 members), then fan-out rounds of 1,000 messages (200,000 deliveries each) taking turns:
//! the servers not being measured are stopped with SIGSTOP so each round has the machine to
//! itself, bar its load generator. The reference and the uninstrumented server each run in two
//! processes, opened in the order A B ... B A, and their figures pool both: one process of a
//! build is not the build (see `drive`).
//! Before that, a heap profile of 10,000 idle streams of the reference server (live
//! allocations by requested size, counted by this bench's global allocator in a fourth
//! process that runs the server library) shows where the bytes go.
//!
//! Servers run with `--heartbeat 30s` (default 5 s) so that no round contains the burst of
//! 10,000 heartbeats a resumed server would write at once; heartbeats are an idle stream's
//! only traffic and are not what a fan-out figure is about.

#[path = "serve/load.rs"]
mod load;
#[path = "serve/minimal.rs"]
mod minimal;
#[path = "serve/procfs.rs"]
mod procfs;
#[path = "serve/profile.rs"]
mod profile;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Lines, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use streaming_server::fixture::Fixture;

use profile::Table;

#[global_allocator]
static ALLOC: profile::SizeProfile = profile::SizeProfile;

const STREAMS: usize = 10_000;
const FLOWS: usize = 50;
const MESSAGES: usize = 1_000;
const ROUNDS: usize = 5;
const SEED: u64 = 11;
/// Heartbeat interval of the servers under test (see the module docs).
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// Stream handshakes in flight while opening.
pub const OPEN_PARALLEL: usize = 256;
/// Posts in flight during a round.
pub const POST_PARALLEL: usize = 8;
const ROLE: &str = "SERVE_BENCH_ROLE";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("minimal") => minimal::server_main(),
        Ok("profile") => profile::server_main(),
        Ok("load") => load::generator_main(),
        _ => drive(),
    }
}

/// The streams to open and the messages to post, the same in every process.
pub struct Workload {
    /// The fixture the servers load.
    pub fixture: Fixture,
    /// `(flow path, token)` per stream: every member of every flow.
    pub streams: Vec<(String, String)>,
    /// `(flow path, token of a member)` per message, round-robin over the flows.
    pub messages: Vec<(String, String)>,
    /// Deliveries a round must produce: for every message, the streams following its flow.
    pub expected: u64,
}

/// The bench's workload: 10,000 users, 50 flows of 200 members, one flow per user.
pub fn workload() -> Workload {
    let fixture = Fixture::generate_with(STREAMS, FLOWS, 1, SEED);
    let tokens: HashMap<u64, &str> = fixture
        .users
        .iter()
        .map(|u| (u.id, u.token.as_str()))
        .collect();
    let streams = fixture
        .flows
        .iter()
        .flat_map(|f| {
            let path = f.path();
            let tokens = &tokens;
            f.members
                .iter()
                .map(move |m| (path.clone(), tokens[m].to_owned()))
        })
        .collect();
    let messages = (0..MESSAGES)
        .map(|i| {
            let f = &fixture.flows[i % FLOWS];
            (f.path(), tokens[&f.members[0]].to_owned())
        })
        .collect();
    let expected = (0..MESSAGES)
        .map(|i| fixture.flows[i % FLOWS].members.len() as u64)
        .sum();
    Workload {
        fixture,
        streams,
        messages,
        expected,
    }
}

/// A child process driven over its stdin and stdout.
struct Proc {
    child: std::process::Child,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn");
        let mut child = cmd.spawn().expect("start a child process");
        Proc {
            pid: child.id(),
            stdin: child.stdin.take(),
            lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
            child,
        }
    }

    /// The next line starting with `prefix` (others are skipped), without the prefix.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .next()
                .unwrap_or_else(|| panic!("child {} exited before `{prefix}`", self.pid))
                .expect("read a child's stdout");
            if let Some(rest) = line.split(prefix).nth(1) {
                return rest.trim().to_owned();
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}").expect("write to a child");
        stdin.flush().expect("flush");
    }

    fn kill(mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits (bounded) for the process to exit by itself.
    fn finish(mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

fn role(name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("this bench's path"));
    c.env(ROLE, name);
    c
}

/// Starts a server and returns it with its address.
fn start(cmd: Command) -> (Proc, SocketAddr) {
    let mut p = Proc::spawn(cmd);
    let addr = p
        .expect("listening on http://")
        .parse()
        .expect("listening address");
    (p, addr)
}

fn serve_cmd(bin: &Path, fixture: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--heartbeat",
        "30s",
        "--fixture",
    ])
    .arg(fixture);
    c
}

/// A load generator for the server at `addr`, its streams not yet opened.
fn generator(addr: SocketAddr) -> Proc {
    let mut c = role("load");
    c.env("SERVE_BENCH_ADDR", addr.to_string());
    Proc::spawn(c)
}

/// Builds the server without the `instrument` feature into `target/uninstrumented`.
fn build_uninstrumented() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let target = root.join("target").join("uninstrumented");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "streaming-server",
            "--no-default-features",
            "--bin",
            "streaming-server",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "building the uninstrumented server failed"
    );
    println!(
        "uninstrumented server: cargo build --release -p streaming-server --no-default-features \
         --target-dir target/uninstrumented ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    target.join("release").join("streaming-server")
}

/// One server under test, its load generator and its figures.
struct Served {
    name: &'static str,
    server: Proc,
    load: Proc,
    opened: usize,
    rss_before: u64,
    rss_after: u64,
    /// CPU share of a core with the streams open and idle.
    idle_cpu: f64,
    rounds: Vec<RoundResult>,
    /// Server CPU by thread name over all rounds (ns).
    round_threads: BTreeMap<String, u64>,
}

impl Served {
    fn per_stream(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.opened.max(1) as f64
    }
}

struct RoundResult {
    delivered: u64,
    expected: u64,
    secs: f64,
    cpu_secs: f64,
    hist: Vec<(usize, u64)>,
}

impl RoundResult {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.secs
    }
}

fn kb(bytes: f64) -> String {
    format!("{:.2} KB", bytes / 1024.0)
}

/// Asks the generator to open its streams; returns how many opened.
fn open_streams(load: &mut Proc) -> usize {
    load.send("open");
    let line = load.expect("opened ");
    let f: Vec<&str> = line.split_whitespace().collect();
    let opened = f[0].parse().unwrap_or(0);
    println!(
        "  {opened} streams open in {} s ({} failed)",
        f.get(2).unwrap_or(&"?"),
        f.get(1).unwrap_or(&"?")
    );
    opened
}

fn warm(load: &mut Proc) {
    // One post first, so the request path's one-time allocations are in the baseline.
    load.send("warm");
    load.expect("warm ");
}

fn start_server(name: &'static str, cmd: Command) -> Served {
    println!("{name}:");
    let (server, addr) = start(cmd);
    let mut load = generator(addr);
    warm(&mut load);
    procfs::wait_quiet(server.pid, Duration::from_secs(10));
    let rss_before = procfs::rss_bytes(server.pid);
    let opened = open_streams(&mut load);
    let settled = procfs::wait_quiet(server.pid, Duration::from_secs(30));
    let rss_after = procfs::rss_bytes(server.pid);
    // What 10,000 idle streams cost in CPU, by thread.
    let idle_window = Duration::from_secs(3);
    let t0 = procfs::cpu_by_thread(server.pid);
    std::thread::sleep(idle_window);
    let idle = procfs::thread_ms(&t0, &procfs::cpu_by_thread(server.pid));
    let idle_ms: f64 = idle.iter().map(|(_, ms)| ms).sum();
    let s = Served {
        name,
        server,
        load,
        opened,
        rss_before,
        rss_after,
        idle_cpu: idle_ms / idle_window.as_secs_f64() / 1e3,
        rounds: Vec::new(),
        round_threads: BTreeMap::new(),
    };
    println!(
        "  RSS {:.1} MB -> {:.1} MB (settled after {:.1} s): {} per idle stream",
        rss_before as f64 / 1e6,
        rss_after as f64 / 1e6,
        settled.as_secs_f64(),
        kb(s.per_stream())
    );
    println!(
        "  idle with the streams open: {:.1}% of a core [{}]",
        (s.idle_cpu * 100.0).max(0.0),
        threads(&idle)
    );
    procfs::pause(s.server.pid, true);
    s
}

fn fan_out(s: &mut Served) {
    let pid = s.server.pid;
    procfs::pause(pid, false);
    std::thread::sleep(Duration::from_millis(300));
    let by0 = procfs::cpu_by_thread(pid);
    s.load.send("round");
    let head = s.load.expect("round ");
    let by1 = procfs::cpu_by_thread(pid);
    procfs::pause(pid, true);
    let mut cpu_ns = 0;
    for (thread, ns) in &by1 {
        let d = ns.saturating_sub(by0.get(thread).copied().unwrap_or(0));
        *s.round_threads.entry(thread.clone()).or_insert(0) += d;
        cpu_ns += d;
    }
    let mut hist = Vec::new();
    for line in s.load.lines.by_ref().map_while(Result::ok) {
        if line == "end" {
            break;
        }
        let mut f = line
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        if let (Some(b), Some(c)) = (f.next(), f.next()) {
            hist.push((b as usize, c));
        }
    }
    let f: Vec<f64> = head
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    let r = RoundResult {
        delivered: f[0] as u64,
        expected: f[1] as u64,
        secs: f[3],
        cpu_secs: cpu_ns as f64 / 1e9,
        hist,
    };
    println!(
        "  {:<15} {:>7}/{} delivered in {:.3} s: {:>8.0} deliveries/s, {:>8.0} per server CPU s{}",
        s.name,
        r.delivered,
        r.expected,
        r.secs,
        r.rate(),
        r.delivered as f64 / r.cpu_secs,
        if f[2] > 0.0 {
            format!(" ({} posts failed)", f[2])
        } else {
            String::new()
        }
    );
    s.rounds.push(r);
}

/// `name 12.3 ms, ...` for the threads that used at least 0.1 ms.
fn threads(v: &[(String, f64)]) -> String {
    v.iter()
        .filter(|(_, ms)| *ms >= 0.1)
        .map(|(t, ms)| format!("{t} {ms:.1} ms"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Summary {
    rate: f64,
    per_cpu: f64,
    p50: f64,
    p99: f64,
    missing: u64,
}

/// Medians over the rounds of every process in `procs` (one build may run in two).
fn summarise(procs: &[&Served]) -> Summary {
    let rounds = || procs.iter().flat_map(|s| &s.rounds);
    let mut hist = load::histogram();
    for r in rounds() {
        for &(b, c) in &r.hist {
            hist[b] += c;
        }
    }
    Summary {
        rate: median(rounds().map(RoundResult::rate).collect()),
        per_cpu: median(rounds().map(|r| r.delivered as f64 / r.cpu_secs).collect()),
        p50: load::quantile_ms(&hist, 0.50),
        p99: load::quantile_ms(&hist, 0.99),
        missing: rounds()
            .map(|r| r.expected.saturating_sub(r.delivered))
            .sum(),
    }
}

fn snapshot(p: &mut Proc) -> Table {
    p.send("snapshot");
    let mut lines = p.lines.by_ref().map_while(Result::ok);
    Table::read(&mut lines)
}

/// Live allocations of 10,000 idle streams of the reference server, by requested size.
fn heap_profile(fixture: &Path) {
    println!("heap profile (reference server in-process, counting allocator):");
    let mut cmd = role("profile");
    cmd.env("SERVE_BENCH_FIXTURE", fixture);
    let (mut p, addr) = start(cmd);
    let sizes = p.expect("sizes ");
    let mut load = generator(addr);
    warm(&mut load);
    procfs::wait_quiet(p.pid, Duration::from_secs(10));
    let before = snapshot(&mut p);
    let rss0 = procfs::rss_bytes(p.pid);
    let opened = open_streams(&mut load);
    procfs::wait_quiet(p.pid, Duration::from_secs(30));
    let after = snapshot(&mut p);
    let rss1 = procfs::rss_bytes(p.pid);
    p.send("sites");
    let mut sites = Vec::new();
    for line in p.lines.by_ref().map_while(Result::ok) {
        if line == "end" {
            break;
        }
        sites.push(line);
    }
    let n = opened.max(1) as f64;
    let d = Table::diff(&before, &after);
    let mut rows: Vec<(usize, f64)> = d
        .sizes
        .iter()
        .map(|&(s, c)| (s, c as f64 / n))
        .filter(|&(_, per)| per.abs() >= 0.05)
        .collect();
    rows.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    println!("  live allocations added per stream (after - before), largest first:");
    println!(
        "  {:>8} {:>10} {:>12}  allocated at (first frames in the server's code)",
        "size B", "per stream", "B per stream"
    );
    let mut shown = 0.0;
    for &(size, per) in &rows {
        let site = sites
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{size} ")))
            .unwrap_or("");
        println!(
            "  {size:>8} {per:>10.2} {:>12.0}  {site}",
            size as f64 * per
        );
        shown += size as f64 * per;
    }
    let total = d.bytes() as f64 / n;
    println!("  {:>8} {:>10} {:>12.0}", "other", "", total - shown);
    println!(
        "  heap requested {} per stream; as glibc malloc chunks ~{}; this process's ΔRSS {}",
        kb(total),
        kb(d.chunk_bytes() as f64 / n),
        kb((rss1 as f64 - rss0 as f64) / n)
    );
    println!("  sizes of the types (bytes): {sizes}");
    p.kill();
    load.finish();
}

fn drive() {
    let nofile = procfs::raise_nofile(200_000);
    let w = workload();
    let fixture_path =
        std::env::temp_dir().join(format!("serve-bench-{}.json", std::process::id()));
    std::fs::write(
        &fixture_path,
        serde_json::to_vec(&w.fixture).expect("fixture JSON"),
    )
    .expect("write the fixture");
    println!(
        "streaming-server bench: {} streams ({} flows x {}), {} messages x {} rounds per server; \
         {} cores shared with the load generators; loopback; open files per process {}",
        w.streams.len(),
        FLOWS,
        STREAMS / FLOWS,
        MESSAGES,
        ROUNDS,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        nofile
    );
    let uninstrumented = build_uninstrumented();

    heap_profile(&fixture_path);

    let reference_bin = Path::new(env!("CARGO_BIN_EXE_streaming-server"));
    // The reference and the uninstrumented server run twice each, in two processes opened in
    // the order A B ... B A: two processes of one build differ by up to 7% in one run (the
    // same binary measured three times: 0.93-0.98x), and the processes opened last tended to
    // be the fastest, so a comparison between one process of each build, always opened in the
    // same order, measured the processes as much as the builds.
    let mut servers = vec![
        start_server("reference", serve_cmd(reference_bin, &fixture_path)),
        start_server("uninstrumented", serve_cmd(&uninstrumented, &fixture_path)),
        start_server("ref, 60 s tick", {
            // The same binary with the watchdog sampling every minute instead of every
            // second: separates the counting on the request path from the sampling's cost.
            let mut c = serve_cmd(reference_bin, &fixture_path);
            c.args(["--sample-interval", "60s"]);
            c
        }),
        start_server("minimal", role("minimal")),
        start_server("uninstr. #2", serve_cmd(&uninstrumented, &fixture_path)),
        start_server("reference #2", serve_cmd(reference_bin, &fixture_path)),
    ];

    println!(
        "fan-out rounds ({MESSAGES} messages, {POST_PARALLEL} posts in flight, one connection each):"
    );
    for r in 0..ROUNDS {
        // A different server goes first in each round, so none always follows the same one.
        for k in 0..servers.len() {
            let i = (r + k) % servers.len();
            fan_out(&mut servers[i]);
        }
    }

    // Columns: reference, ref 60 s tick, uninstrumented, minimal (indices into `servers`);
    // the two builds compared for the instrumentation's cost pool both of their processes.
    let columns = [[0, 5], [2, 2], [1, 4], [3, 3]];
    let sums: Vec<Summary> = columns
        .iter()
        .map(|c| {
            if c[0] == c[1] {
                summarise(&[&servers[c[0]]])
            } else {
                summarise(&[&servers[c[0]], &servers[c[1]]])
            }
        })
        .collect();
    let same_build = |a: usize, b: usize| {
        let (x, y) = (summarise(&[&servers[a]]), summarise(&[&servers[b]]));
        (x.rate / y.rate, x.per_cpu / y.per_cpu)
    };
    let (ref_aa, unins_aa) = (same_build(0, 5), same_build(1, 4));
    let second_per_stream = [servers[5].per_stream(), servers[4].per_stream()];
    let per_stream: [f64; 4] = std::array::from_fn(|i| servers[columns[i][0]].per_stream());
    let idle: [f64; 4] =
        std::array::from_fn(|i| (servers[columns[i][0]].idle_cpu * 100.0).max(0.0));
    println!("server CPU by thread over all rounds:");
    for s in &servers {
        let none = BTreeMap::new();
        println!(
            "  {:<15} {}",
            s.name,
            threads(&procfs::thread_ms(&none, &s.round_threads))
        );
    }
    // Graceful shutdown with 10,000 streams open (target: within 5 s).
    let mut shutdown = Vec::new();
    for s in servers {
        let Served {
            name,
            mut server,
            load,
            ..
        } = s;
        procfs::pause(server.pid, false);
        if name == "minimal" {
            server.kill();
            load.finish();
            continue;
        }
        let start = Instant::now();
        procfs::terminate(server.pid);
        let ok = loop {
            match server.child.try_wait() {
                Ok(Some(code)) => break code.success(),
                Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break false,
            }
        };
        shutdown.push((name, start.elapsed(), ok));
        server.kill();
        load.finish();
    }
    let _ = std::fs::remove_file(&fixture_path);

    let (r, r60, u, m) = (&sums[0], &sums[1], &sums[2], &sums[3]);
    let row = |label: &str, v: [String; 4]| {
        println!(
            "  {label:<34} {:>14} {:>14} {:>14} {:>14}",
            v[0], v[1], v[2], v[3]
        );
    };
    let each = |f: &dyn Fn(&Summary) -> String| [f(r), f(r60), f(u), f(m)];
    println!();
    println!(
        "summary (medians of {ROUNDS} rounds, of {} for reference and uninstrumented (two processes each); latency = post sent to frame read, all rounds pooled)",
        2 * ROUNDS
    );
    row(
        "",
        [
            "reference",
            "ref, 60 s tick",
            "uninstrumented",
            "minimal axum",
        ]
        .map(String::from),
    );
    row("memory per idle stream (ΔRSS/Δ)", per_stream.map(kb));
    row(
        "CPU with the streams idle (1 core)",
        idle.map(|p| format!("{p:.1}%")),
    );
    row("fan-out deliveries/s", each(&|s| format!("{:.0}", s.rate)));
    row(
        "deliveries per server CPU second",
        each(&|s| format!("{:.0}", s.per_cpu)),
    );
    row(
        "delivery latency p50 (ms)",
        each(&|s| format!("{:.1}", s.p50)),
    );
    row(
        "delivery latency p99 (ms)",
        each(&|s| format!("{:.1}", s.p99)),
    );
    row(
        "deliveries missing (all rounds)",
        each(&|s| s.missing.to_string()),
    );
    println!("ratios (target):");
    println!(
        "  memory per idle stream, reference       {} (target <= 4 KB); minimal axum {}, {:.2}x the reference's",
        kb(per_stream[0]),
        kb(per_stream[3]),
        per_stream[3] / per_stream[0]
    );
    println!(
        "    second processes: reference #2 {}, uninstrumented #2 {} (uninstrumented #1 {})",
        kb(second_per_stream[0]),
        kb(second_per_stream[1]),
        kb(per_stream[2])
    );
    println!(
        "  fan-out, reference / minimal             {:.2}x (target >= 0.8x); per server CPU second {:.2}x",
        r.rate / m.rate,
        r.per_cpu / m.per_cpu
    );
    println!(
        "  fan-out, instrumented / uninstrumented   {:.2}x (target >= 0.97x); per server CPU second {:.2}x",
        r.rate / u.rate,
        r.per_cpu / u.per_cpu
    );
    println!(
        "    (medians of {} rounds per build over two processes each, opened A B .. B A)",
        2 * ROUNDS
    );
    println!(
        "  same build, process #1 / #2 (the noise): reference {:.2}x ({:.2}x per CPU s), uninstrumented {:.2}x ({:.2}x)",
        ref_aa.0, ref_aa.1, unins_aa.0, unins_aa.1
    );
    println!(
        "  the same with a 60 s watchdog tick       {:.2}x; per server CPU second {:.2}x",
        r60.rate / u.rate,
        r60.per_cpu / u.per_cpu
    );
    for (name, took, ok) in shutdown {
        println!(
            "  SIGTERM with {STREAMS} streams open, {name}: exited in {:.2} s{}",
            took.as_secs_f64(),
            if ok { "" } else { " (did not exit cleanly)" }
        );
    }
}

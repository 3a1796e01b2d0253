//! The heap profile of idle streams: a global allocator that keeps, per requested size, how
//! many allocations of that size are live, and the `profile` role, which runs the reference
//! server in this process and prints that table on request.
//!
//! Counting is off unless the `profile` role switches it on, so the other roles (the minimal
//! server, the load generator) pay one relaxed load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};

/// Sizes up to this are counted one by one; larger ones together.
const MAX_EXACT: usize = 64 * 1024;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: [AtomicI64; MAX_EXACT + 1] = [const { AtomicI64::new(0) }; MAX_EXACT + 1];
static BIG_COUNT: AtomicI64 = AtomicI64::new(0);
static BIG_BYTES: AtomicI64 = AtomicI64::new(0);

/// Sizes up to this get sampled allocation sites.
const MAX_SAMPLED: usize = 4096;
/// Every `SAMPLE_EVERY`th allocation of a size is sampled, ...
const SAMPLE_EVERY: u32 = 1_000;
/// ... up to this many per size.
const SLOTS: usize = 8;
/// Set after the first snapshot: from then on allocations are sampled.
static ARMED: AtomicBool = AtomicBool::new(false);
static SEEN: [AtomicU32; MAX_SAMPLED + 1] = [const { AtomicU32::new(0) }; MAX_SAMPLED + 1];
/// The sampled allocations' addresses, per size (0: empty or freed since), so only samples
/// still live at the end are reported: a size shared by a transient and a per-stream value is
/// then attributed to the one that stayed.
static SAMPLED: [[AtomicUsize; SLOTS]; MAX_SAMPLED + 1] =
    [const { [const { AtomicUsize::new(0) }; SLOTS] }; MAX_SAMPLED + 1];
static SITES: Mutex<Vec<(usize, usize, Backtrace)>> = Mutex::new(Vec::new());

thread_local! {
    /// True while this thread captures a backtrace: its own allocations are neither counted
    /// nor sampled.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

fn sample(ptr: *mut u8, size: usize) {
    if !ARMED.load(Ordering::Relaxed) || size > MAX_SAMPLED {
        return;
    }
    let n = SEEN[size].fetch_add(1, Ordering::Relaxed) + 1;
    if !n.is_multiple_of(SAMPLE_EVERY) || (n / SAMPLE_EVERY) as usize > SLOTS {
        return;
    }
    let slot = (n / SAMPLE_EVERY) as usize - 1;
    CAPTURING.with(|c| c.set(true));
    let bt = Backtrace::force_capture();
    if let Ok(mut sites) = SITES.lock() {
        sites.push((size, slot, bt));
    }
    SAMPLED[size][slot].store(ptr as usize, Ordering::Relaxed);
    CAPTURING.with(|c| c.set(false));
}

fn freed(ptr: *mut u8, size: usize) {
    if size > MAX_SAMPLED || SEEN[size].load(Ordering::Relaxed) < SAMPLE_EVERY {
        return;
    }
    for s in &SAMPLED[size] {
        if s.load(Ordering::Relaxed) == ptr as usize {
            s.store(0, Ordering::Relaxed);
        }
    }
}

/// Per size, the most common site among the samples still live, with how many of the
/// size's samples it accounts for.
fn live_sites() -> Vec<(usize, String, usize)> {
    let Ok(sites) = SITES.lock() else {
        return Vec::new();
    };
    let mut by_size: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for (size, slot, bt) in sites.iter() {
        if SAMPLED[*size][*slot].load(Ordering::Relaxed) != 0 {
            by_size.entry(*size).or_default().push(site(bt));
        }
    }
    by_size
        .into_iter()
        .filter_map(|(size, sites)| {
            let mut counts: std::collections::BTreeMap<&String, usize> = Default::default();
            for s in &sites {
                *counts.entry(s).or_default() += 1;
            }
            let (best, n) = counts.into_iter().max_by_key(|&(_, n)| n)?;
            Some((size, best.clone(), n))
        })
        .collect()
}

fn counting() -> bool {
    ON.load(Ordering::Relaxed) && !CAPTURING.with(Cell::get)
}

/// The first frames of a backtrace in the server, tokio or leakwatch (not the allocator's or
/// std's own), innermost first.
fn site(bt: &Backtrace) -> String {
    let text = bt.to_string();
    let frames: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (n, f) = l.trim().split_once(": ")?;
            n.parse::<u32>().ok()?;
            Some(f.to_owned())
        })
        .filter(|f| {
            ![
                "std::",
                "alloc::",
                "core::",
                "serve::profile",
                "<serve::profile",
                "__rust",
            ]
            .iter()
            .any(|p| f.starts_with(p))
        })
        .map(|f| match f.rfind("::h") {
            Some(i) if f.len() - i == 19 => f[..i].to_owned(),
            _ => f,
        })
        .take(3)
        .collect();
    frames.join(" < ")
}

/// The system allocator, counting live allocations by size while switched on.
pub struct SizeProfile;

fn record(size: usize, delta: i64) {
    if size <= MAX_EXACT {
        LIVE[size].fetch_add(delta, Ordering::Relaxed);
    } else {
        BIG_COUNT.fetch_add(delta, Ordering::Relaxed);
        BIG_BYTES.fetch_add(delta * size as i64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counting touches only atomics
// and never allocates.
unsafe impl GlobalAlloc for SizeProfile {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && counting() {
            record(layout.size(), 1);
            sample(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && counting() {
            record(layout.size(), 1);
            sample(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            record(layout.size(), -1);
            freed(ptr, layout.size());
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && counting() {
            record(layout.size(), -1);
            freed(ptr, layout.size());
            record(new_size, 1);
            sample(p, new_size);
        }
        p
    }
}

/// Live allocations by requested size (`size -> count`), and the larger ones as a total.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// `(size, live count)` for every size with a non-zero count.
    pub sizes: Vec<(usize, i64)>,
    /// Live allocations above `MAX_EXACT`.
    pub big_count: i64,
    /// Their bytes.
    pub big_bytes: i64,
}

impl Table {
    fn now() -> Table {
        Table {
            sizes: LIVE
                .iter()
                .enumerate()
                .map(|(s, c)| (s, c.load(Ordering::Relaxed)))
                .filter(|&(_, c)| c != 0)
                .collect(),
            big_count: BIG_COUNT.load(Ordering::Relaxed),
            big_bytes: BIG_BYTES.load(Ordering::Relaxed),
        }
    }

    /// Parses what [`print`] wrote.
    pub fn read(lines: &mut impl Iterator<Item = String>) -> Table {
        let mut t = Table::default();
        for line in lines {
            let mut f = line.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("end"), _, _) => break,
                (Some("big"), Some(c), Some(b)) => {
                    t.big_count = c.parse().unwrap_or(0);
                    t.big_bytes = b.parse().unwrap_or(0);
                }
                (Some(s), Some(c), None) => {
                    if let (Ok(s), Ok(c)) = (s.parse(), c.parse()) {
                        t.sizes.push((s, c));
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// `after - before`, per size.
    pub fn diff(before: &Table, after: &Table) -> Table {
        let mut m: std::collections::BTreeMap<usize, i64> = after.sizes.iter().copied().collect();
        for &(s, c) in &before.sizes {
            *m.entry(s).or_default() -= c;
        }
        Table {
            sizes: m.into_iter().filter(|&(_, c)| c != 0).collect(),
            big_count: after.big_count - before.big_count,
            big_bytes: after.big_bytes - before.big_bytes,
        }
    }

    /// Requested bytes in all live allocations of the table.
    pub fn bytes(&self) -> i64 {
        self.sizes.iter().map(|&(s, c)| s as i64 * c).sum::<i64>() + self.big_bytes
    }

    /// What glibc's malloc sets aside for them: each chunk is the request plus an 8-byte header,
    /// rounded up to 16, at least 32 (x86-64). An estimate of the allocator's share.
    pub fn chunk_bytes(&self) -> i64 {
        self.sizes
            .iter()
            .map(|&(s, c)| (((s + 8 + 15) & !15).max(32)) as i64 * c)
            .sum::<i64>()
            + self.big_bytes
    }
}

fn print(out: &mut impl Write, t: &Table) {
    for &(s, c) in &t.sizes {
        let _ = writeln!(out, "{s} {c}");
    }
    let _ = writeln!(out, "big {} {}", t.big_count, t.big_bytes);
    let _ = writeln!(out, "end");
    let _ = out.flush();
}

/// The `profile` role: the reference server (default features, watchdog on as `serve` runs
/// it) in this process with counting on; prints `listening on http://ADDR`, then answers each
/// `snapshot` line on stdin with the table of live allocations and `sites` with one sampled
/// allocation site per size (the most common among its sampled allocations still live: every
/// 1,000th allocation of the size after the first snapshot, up to 8), until stdin closes.
pub fn server_main() {
    ON.store(true, Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture_path = std::env::var("SERVE_BENCH_FIXTURE").expect("SERVE_BENCH_FIXTURE");
    let fixture = streaming_server::fixture::Fixture::load(std::path::Path::new(&fixture_path))
        .expect("load the bench fixture");
    let server = rt.block_on(async {
        let args = streaming_server::config::ServeArgs {
            addr: "127.0.0.1:0".parse().expect("address"),
            heartbeat: crate::HEARTBEAT,
            ..Default::default()
        };
        let config = args.config().expect("config");
        let watching = streaming_server::server::Watching {
            interval: Some(args.sample_interval),
            log_alerts: true,
            ..Default::default()
        };
        streaming_server::server::Server::start(
            config,
            fixture,
            leakwatch::Registry::global(),
            watching,
        )
        .await
        .expect("start the reference server")
    });
    // The stream task's future, built and dropped unpolled: its size is what `stream::run`
    // adds to the task that serves a stream.
    let run_future = rt.block_on(async {
        let sock = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect to the server");
        let peer = sock.local_addr().expect("address");
        let slot = server.app.presence.reserve(1).expect("a stream slot");
        let open = streaming_server::stream::OpenStream {
            user: 1,
            flows: Vec::new(),
            active: true,
            resume: None,
            slot,
            peer,
        };
        size_of_val(&streaming_server::stream::run(
            server.app.clone(),
            sock,
            open,
        ))
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{}", server.addr);
    let _ = writeln!(
        out,
        "sizes stream::run future={run_future} StreamShared={} ArcStreamShared={} Subscription={} Connection={} Scope={} TcpStream={}",
        size_of::<streaming_server::stream::StreamShared>(),
        size_of::<streaming_server::stream::StreamShared>() + 16,
        size_of::<leakwatch::Subscription>(),
        size_of::<leakwatch::Connection>(),
        size_of::<leakwatch::Scope>(),
        size_of::<tokio::net::TcpStream>(),
    );
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        match line.as_deref() {
            Ok("snapshot") => {
                print(&mut out, &Table::now());
                ARMED.store(true, Ordering::Relaxed);
            }
            Ok("sites") => {
                ARMED.store(false, Ordering::Relaxed);
                for (size, site, live) in live_sites() {
                    let _ = writeln!(out, "{size} {live}/{SLOTS} {site}");
                }
                let _ = writeln!(out, "end");
                let _ = out.flush();
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(server);
}

//! What counting costs: create+drop of a boxed 64-byte struct, untracked vs `#[tracked]` vs
//! `countme` vs one shared atomic, on 1 thread and on 2 threads hammering the same type; token
//! create+drop and callback register+unregister through a `StaticSeries` against the same work
//! uncounted, and scope open+close likewise (and the by-name APIs for reference); and `Registry::snapshot()` with 10,000
//! series.
//!
//! Run with `cargo bench -p leakwatch --bench counting`. Each figure is the minimum over many
//! interleaved rounds: on this machine kind the minimum is stable to about ±2% while medians
//! wander (background load only ever makes a round slower).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, LazyLock, RwLock, Weak};
use std::time::{Duration, Instant};

use leakwatch::{Callbacks, StaticSeries, Token};

/// Create+drop iterations per thread per round: short rounds (a few ms), so that on a shared,
/// busy machine some rounds of every variant still run undisturbed.
const ITERS: u64 = 250_000;
/// Interleaved rounds; the minimum of each variant is reported.
const ROUNDS: usize = 81;

// `data` is only there to make the value 64 bytes.
#[allow(dead_code)]
struct Untracked {
    data: [u64; 8],
}

// `data` is only there to make the value 64 bytes.
#[allow(dead_code)]
#[leakwatch::tracked(name = "bench.Tracked")]
struct Tracked {
    data: [u64; 8],
    tracker: leakwatch::Tracker<Self>,
}

// `data` is only there to make the value 64 bytes.
#[allow(dead_code)]
struct Countme {
    data: [u64; 8],
    _c: countme::Count<Self>,
}

static GLOBAL_LIVE: AtomicU64 = AtomicU64::new(0);

// `data` is only there to make the value 64 bytes.
#[allow(dead_code)]
struct Atomic {
    data: [u64; 8],
}

impl Atomic {
    #[inline]
    fn new(data: [u64; 8]) -> Self {
        GLOBAL_LIVE.fetch_add(1, Ordering::Relaxed);
        Atomic { data }
    }
}

impl Drop for Atomic {
    #[inline]
    fn drop(&mut self) {
        GLOBAL_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

const _: () = assert!(size_of::<Untracked>() == 64);
const _: () = assert!(size_of::<Tracked>() == 64);
const _: () = assert!(size_of::<Countme>() == 64);
const _: () = assert!(size_of::<Atomic>() == 64);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Untracked,
    Tracked,
    Countme,
    Atomic,
}

const VARIANTS: [(Variant, &str); 4] = [
    (Variant::Untracked, "untracked"),
    (Variant::Tracked, "#[tracked]"),
    (Variant::Countme, "countme"),
    (Variant::Atomic, "global atomic"),
];

static TOKENS: StaticSeries = StaticSeries::tokens("bench.token");
static SCOPES: StaticSeries = StaticSeries::scopes("bench.scope");
static CALLBACKS: StaticSeries = StaticSeries::callbacks("bench.callbacks");

// `data` is only there to make the value 64 bytes before the token.
#[allow(dead_code)]
struct WithToken {
    data: [u64; 8],
    token: Token,
}

#[inline(never)]
fn boxed_untracked(iters: u64) {
    let data = black_box([1u64; 8]);
    for _ in 0..iters {
        black_box(Box::new(Untracked { data }));
    }
}

#[inline(never)]
fn boxed_static_token(iters: u64) {
    let data = black_box([1u64; 8]);
    for _ in 0..iters {
        black_box(Box::new(WithToken {
            data,
            token: TOKENS.token(),
        }));
    }
}

// `data` is only there to make the value 64 bytes before the token.
#[allow(dead_code)]
struct WithStaticToken {
    data: [u64; 8],
    token: leakwatch::StaticToken,
}

#[inline(never)]
fn boxed_lean_token(iters: u64) {
    let data = black_box([1u64; 8]);
    for _ in 0..iters {
        black_box(Box::new(WithStaticToken {
            data,
            token: TOKENS.static_token(),
        }));
    }
}

#[inline(never)]
fn boxed_named_token(iters: u64) {
    let data = black_box([1u64; 8]);
    for _ in 0..iters {
        black_box(Box::new(WithToken {
            data,
            token: Token::new("bench.token.by_name"),
        }));
    }
}

/// The uncounted baseline for callbacks: the same structure as `leakwatch::Callbacks` (a map
/// of reference-counted entries under a read-write lock, ids from an atomic, subscriptions
/// holding a weak handle that unregisters on drop), without any counting.
// `f` is stored as a registry would; no emit runs in this bench.
#[allow(dead_code)]
struct PlainEntry<F: ?Sized> {
    alive: AtomicBool,
    f: F,
}
type PlainCallback = Arc<PlainEntry<dyn Fn(&u32) + Send + Sync>>;
struct PlainShared {
    subscribers: RwLock<BTreeMap<u64, PlainCallback>>,
    next_id: AtomicU64,
}
struct PlainSubscription {
    id: u64,
    owner: Weak<PlainShared>,
}
impl PlainShared {
    fn register(self: &Arc<Self>, f: impl Fn(&u32) + Send + Sync + 'static) -> PlainSubscription {
        let entry: PlainCallback = Arc::new(PlainEntry {
            alive: AtomicBool::new(true),
            f,
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscribers.write().unwrap().insert(id, entry);
        PlainSubscription {
            id,
            owner: Arc::downgrade(self),
        }
    }
}
impl Drop for PlainSubscription {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            let removed = owner.subscribers.write().unwrap().remove(&self.id);
            if let Some(e) = &removed {
                e.alive.store(false, Ordering::Release);
            }
        }
    }
}

static PLAIN: LazyLock<Arc<PlainShared>> = LazyLock::new(|| {
    Arc::new(PlainShared {
        subscribers: RwLock::new(BTreeMap::new()),
        next_id: AtomicU64::new(0),
    })
});
static STATIC_CBS: LazyLock<Callbacks<u32>> = LazyLock::new(|| Callbacks::with_series(&CALLBACKS));
static NAMED_CBS: LazyLock<Callbacks<u32>> =
    LazyLock::new(|| Callbacks::new("bench.callbacks.by_name"));

#[inline(never)]
fn register_plain(iters: u64) {
    let plain = &*PLAIN;
    for i in 0..iters {
        drop(black_box(plain.register(move |x| {
            black_box(x + i as u32);
        })));
    }
}

#[inline(never)]
fn register_static(iters: u64) {
    let cbs = &*STATIC_CBS;
    for i in 0..iters {
        drop(black_box(cbs.register(move |x| {
            black_box(x + i as u32);
        })));
    }
}

#[inline(never)]
fn register_named(iters: u64) {
    let cbs = &*NAMED_CBS;
    for i in 0..iters {
        drop(black_box(cbs.register(move |x| {
            black_box(x + i as u32);
        })));
    }
}

/// The uncounted baseline for scopes: the same structure as `leakwatch::Scope` (a shared
/// handle around shared state: a mutex over the close time, the bound items and a key
/// counter, plus the grace period), closed explicitly and then dropped, without counting.
struct PlainScopeState {
    closed_at: Option<Instant>,
    bound: std::collections::HashMap<u64, u64>,
    next_key: u64,
}
struct PlainScopeInner {
    grace: Duration,
    state: parking_lot::Mutex<PlainScopeState>,
}
struct PlainScopeHandle {
    inner: Arc<PlainScopeInner>,
}
impl PlainScopeHandle {
    fn close(&self) -> bool {
        let mut st = self.inner.state.lock();
        if st.closed_at.is_some() {
            return false;
        }
        st.closed_at = Some(Instant::now());
        black_box((st.bound.is_empty(), st.next_key, self.inner.grace));
        true
    }
}
impl Drop for PlainScopeHandle {
    fn drop(&mut self) {
        self.close();
    }
}

#[inline(never)]
fn scope_plain(iters: u64) {
    for _ in 0..iters {
        let scope = Arc::new(PlainScopeHandle {
            inner: Arc::new(PlainScopeInner {
                grace: Duration::from_secs(5),
                state: parking_lot::Mutex::new(PlainScopeState {
                    closed_at: None,
                    bound: std::collections::HashMap::new(),
                    next_key: 0,
                }),
            }),
        });
        black_box(scope.close());
        drop(black_box(scope));
    }
}

#[inline(never)]
fn scope_static(iters: u64) {
    for _ in 0..iters {
        let scope = SCOPES.open_scope();
        black_box(scope.close());
        drop(black_box(scope));
    }
}

#[inline(never)]
fn scope_named(iters: u64) {
    for _ in 0..iters {
        let scope = leakwatch::Scope::open("bench.scope.by_name");
        black_box(scope.close());
        drop(black_box(scope));
    }
}

/// One thread's loop; `#[inline(never)]` so every variant is compiled the same way.
#[inline(never)]
fn hammer(v: Variant, iters: u64) {
    let data = black_box([1u64; 8]);
    match v {
        Variant::Untracked => {
            for _ in 0..iters {
                black_box(Box::new(Untracked { data }));
            }
        }
        Variant::Tracked => {
            for _ in 0..iters {
                black_box(Box::new(Tracked {
                    data,
                    tracker: leakwatch::Tracker::new(),
                }));
            }
        }
        Variant::Countme => {
            for _ in 0..iters {
                black_box(Box::new(Countme {
                    data,
                    _c: countme::Count::new(),
                }));
            }
        }
        Variant::Atomic => {
            for _ in 0..iters {
                black_box(Box::new(Atomic::new(data)));
            }
        }
    }
}

/// ns per create+drop with `threads` threads running the loop at once (wall time / per-thread
/// iterations: each thread does `ITERS`, so perfect scaling keeps the figure flat).
fn run(v: Variant, threads: usize) -> f64 {
    run_fn(&|n| hammer(v, n), threads, ITERS)
}

/// [`run`] for any loop `f(iterations)`.
fn run_fn(f: &(dyn Fn(u64) + Sync), threads: usize, iters: u64) -> f64 {
    if threads == 1 {
        let t = Instant::now();
        f(iters);
        return t.elapsed().as_nanos() as f64 / iters as f64;
    }
    // Each thread times its own loop; the round spans from the first start to the last end,
    // so a thread that is descheduled never makes the figure look faster than it was.
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    // Touch the counters once before timing, so one-time set-up is not measured.
                    f(1);
                    barrier.wait();
                    let start = Instant::now();
                    f(iters);
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    (end - start).as_nanos() as f64 / iters as f64
}

/// A loop to time: its label, the loop, and the target ratio to the group's first (uncounted)
/// row, if it has one.
type Row = (&'static str, fn(u64), Option<f64>);

/// Times every row of a group in interleaved rounds and prints each against the first row.
fn bench_group(title: &str, rows: &[Row], threads: usize, iters: u64) -> bool {
    let mut best = vec![f64::INFINITY; rows.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f, _)) in rows.iter().enumerate() {
            best[i] = best[i].min(run_fn(f, threads, iters));
        }
    }
    println!("{title}, {threads} thread(s), min of {ROUNDS} interleaved rounds x {iters}:");
    let mut ok = true;
    for (i, (name, _, target)) in rows.iter().enumerate() {
        let ratio = best[i] / best[0];
        let note = match target {
            Some(t) => {
                let pass = ratio <= *t;
                ok &= pass;
                format!("  target <= {t:.2}x  {}", verdict(pass))
            }
            None => String::new(),
        };
        println!("  {name:<28} {:>8.2} ns/op  {ratio:>6.2}x{note}", best[i]);
    }
    ok
}

const TOKEN_ROWS: [Row; 4] = [
    ("untracked Box<64 B>", boxed_untracked, None),
    ("StaticSeries::static_token", boxed_lean_token, Some(1.25)),
    ("StaticSeries::token", boxed_static_token, None),
    ("Token::new(name)", boxed_named_token, None),
];

const SCOPE_ROWS: [Row; 3] = [
    ("uncounted scope structure", scope_plain, None),
    ("StaticSeries::open_scope", scope_static, Some(1.25)),
    ("Scope::open(name)", scope_named, None),
];

const CALLBACK_ROWS: [Row; 3] = [
    ("uncounted registry", register_plain, None),
    ("Callbacks::with_series", register_static, Some(1.25)),
    ("Callbacks::new(name)", register_named, None),
];

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn bench_counting(threads: usize, target: f64) -> bool {
    let mut best = [f64::INFINITY; VARIANTS.len()];
    for _ in 0..ROUNDS {
        for (i, (v, _)) in VARIANTS.iter().enumerate() {
            best[i] = best[i].min(run(*v, threads));
        }
    }
    let base = best[0];
    println!(
        "create+drop of a boxed 64-byte struct, {threads} thread(s), min of {ROUNDS} interleaved rounds x {ITERS} iterations:"
    );
    let mut ok = true;
    for (i, (v, name)) in VARIANTS.iter().enumerate() {
        let ratio = best[i] / base;
        let note = if *v == Variant::Tracked {
            let pass = ratio <= target;
            ok &= pass;
            format!("  target <= {target:.2}x  {}", verdict(pass))
        } else {
            String::new()
        };
        println!("  {name:<14} {:>7.2} ns/op  {ratio:>5.2}x{note}", best[i]);
    }
    ok
}

fn bench_snapshot() -> bool {
    const SERIES: usize = 10_000;
    const TARGET: Duration = Duration::from_millis(5);
    let reg = leakwatch::Registry::new();
    let tokens: Vec<leakwatch::Token> = (0..SERIES)
        .map(|i| leakwatch::Token::new_in(&reg, &format!("s{i}")))
        .collect();
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let snap = black_box(reg.snapshot());
        best = best.min(t.elapsed());
        assert_eq!(snap.series.len(), SERIES);
    }
    drop(tokens);
    let pass = best < TARGET;
    println!(
        "Registry::snapshot() with {SERIES} series: {:.3} ms (min of {ROUNDS})  target < {} ms  {}",
        best.as_secs_f64() * 1e3,
        TARGET.as_millis(),
        verdict(pass)
    );
    pass
}

fn main() {
    // `cargo test --benches` runs benches with `--test`-like args; keep that quick.
    if std::env::args().any(|a| a == "--test") {
        hammer(Variant::Tracked, 10);
        for (_, f, _) in TOKEN_ROWS.iter().chain(&CALLBACK_ROWS).chain(&SCOPE_ROWS) {
            f(10);
        }
        println!("counting bench: smoke run ok");
        return;
    }
    countme::enable(true);
    let one = bench_counting(1, 1.10);
    let two = bench_counting(2, 1.25);
    let mut items = true;
    for threads in [1, 2] {
        items &= bench_group(
            "token create+drop in a boxed 64-byte struct",
            &TOKEN_ROWS,
            threads,
            ITERS,
        );
        items &= bench_group("scope open+close", &SCOPE_ROWS, threads, ITERS / 10);
        items &= bench_group(
            "callback register+unregister",
            &CALLBACK_ROWS,
            threads,
            ITERS / 10,
        );
    }
    let snap = bench_snapshot();
    let c = leakwatch::counts::<Tracked>();
    assert_eq!(c.live, 0, "tracked counts must return to zero");
    assert_eq!(TOKENS.counts().live, 0, "token counts must return to zero");
    assert_eq!(
        CALLBACKS.counts().live,
        0,
        "registrations must return to zero"
    );
    assert_eq!(SCOPES.counts().live, 0, "scopes must return to zero");
    println!("overall: {}", verdict(one && two && items && snap));
}

//! Cost of the watchdog: sampling and evaluating 10,000 series once per (simulated) second.
//!
//! `cargo bench -p leakwatch --bench watchdog`
//!
//! Prints, per tick: the counts-only snapshot (baseline), snapshot + flattening with interned
//! names, the tick's own reading (into the last snapshot, then interned), and the full
//! watchdog tick (snapshot, history, default growth detectors over every `live.*` series), as
//! CPU time and as % of one core at a 1 s interval. Target: ≤ 0.5% (the budget; absolute shares depend on the machine, so the
//! ratio to the bare snapshot is printed beside them). The watchdog runs with a
//! short real interval and `tick_seconds(1.0)`, so an hour of 1 s samples passes in seconds;
//! the CPU per tick is what a 1 s interval would cost.

use std::hint::black_box;
use std::time::{Duration, Instant};

use leakwatch::{Registry, Token, Watchdog};

const SERIES: usize = 10_000;

fn min_time(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("rounds > 0")
}

fn main() {
    let reg = Registry::new();
    let mut tokens: Vec<Token> = (0..SERIES)
        .map(|i| Token::new_in(&reg, &format!("svc.series{i:05}")))
        .collect();

    let snap = min_time(20, || {
        black_box(reg.snapshot_counts());
    });
    let mut names = leakwatch::MetricNames::new();
    let flat = min_time(20, || {
        let s = reg.snapshot_counts();
        black_box(names.flatten(&s).len());
    });
    // What a tick does before history and detectors: read into the last tick's snapshot,
    // then intern its metrics.
    let mut kept = reg.snapshot_counts();
    let mut tick_names = leakwatch::MetricNames::new();
    let in_place = min_time(20, || {
        reg.snapshot_counts_into(&mut kept);
        let mut n = 0u32;
        tick_names.flatten_each(&kept, |_| n += 1);
        black_box(n);
    });

    // A few hundred simulated seconds in, every series has history and detector state; some
    // series change each tick so the detectors have real work.
    let ticks_wanted = 900u64;
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(20))
        .tick_seconds(1.0)
        .start()
        .expect("default rules are valid");
    let warm = 100;
    while wd.ticks() < warm {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (busy0, ticks0) = (wd.busy_time(), wd.ticks());
    let mut i = 0;
    while wd.ticks() < ticks_wanted {
        // Churn: 1% of series change level each 10 ms.
        for _ in 0..SERIES / 100 {
            let k = (i * 7919) % SERIES;
            tokens.push(Token::new_in(&reg, &format!("svc.series{k:05}")));
            if tokens.len() > SERIES + 500 {
                tokens.swap_remove(SERIES + (i % 500));
            }
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let per_tick = (wd.busy_time() - busy0) / (wd.ticks() - ticks0) as u32;
    wd.stop();

    let pct = |d: Duration| d.as_secs_f64() * 100.0;
    println!(
        "watchdog cost, {SERIES} series (≈{} flattened metrics), CPU time of the watchdog thread",
        SERIES * 4
    );
    println!(
        "  snapshot only (baseline)          {:>8.2} ms/tick  {:>6.3}% of one core at 1 s",
        snap.as_secs_f64() * 1e3,
        pct(snap)
    );
    println!(
        "  snapshot + flatten                {:>8.2} ms/tick  {:>6.3}%  ({:.2}× baseline)",
        flat.as_secs_f64() * 1e3,
        pct(flat),
        flat.as_secs_f64() / snap.as_secs_f64()
    );
    println!(
        "  read in place + interned (a tick's) {:>7.2} ms/tick  {:>6.3}%  ({:.2}× baseline)",
        in_place.as_secs_f64() * 1e3,
        pct(in_place),
        in_place.as_secs_f64() / snap.as_secs_f64()
    );
    println!(
        "  full watchdog tick (mean)         {:>8.2} ms/tick  {:>6.3}%  ({:.2}× baseline)",
        per_tick.as_secs_f64() * 1e3,
        pct(per_tick),
        per_tick.as_secs_f64() / snap.as_secs_f64()
    );
    println!(
        "  target ≤ 0.5% of one core: {}",
        if pct(per_tick) <= 0.5 { "PASS" } else { "FAIL" }
    );
    println!(
        "  memory: history 300 samples × 4 B per flattened metric (1.2 KB) + detector state \
         ≈2.1 KB per growth-watched series"
    );
}

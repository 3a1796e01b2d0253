//! What an open dashboard costs a service with 10,000 series, against the watchdog's own
//! sampling cost measured in the same run: one data poll (8 series, samples since the last
//! poll), one discovery (`match=live.*`, the 8 largest of 10,000, names only), and the page
//! itself. Run with `cargo bench -p leakwatch-dashboard --bench endpoint`.

use std::time::{Duration, Instant};

use leakwatch::{Registry, Token, Watchdog};
use leakwatch_dashboard::Dashboard;

const SERIES: usize = 10_000;

/// Median time of `runs` calls of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn main() {
    let reg = Registry::new();
    let tokens: Vec<Token> = (0..SERIES)
        .map(|i| Token::new_in(&reg, &format!("svc.series{i}")))
        .collect();
    let watchdog = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(5))
        .tick_seconds(1.0)
        .start()
        .unwrap();
    while watchdog.ticks() < 320 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tick = watchdog.busy_time() / watchdog.ticks() as u32;
    let dashboard = Dashboard::new(watchdog);
    let names: Vec<String> = (0..8).map(|i| format!("live.svc.series{i}")).collect();
    let newest = dashboard.watchdog().samples_since(&[], 0.0).newest.unwrap();
    let poll_q = format!("series={}&since={}", names.join(","), newest - 1.0);
    let poll = median(51, || {
        assert_eq!(dashboard.data(Some(&poll_q)).status(), 200)
    });
    let discover = median(21, || {
        let r = dashboard.data(Some("match=live.*&limit=8&points=false&alerts=false"));
        assert_eq!(r.status(), 200);
    });
    let full = median(21, || {
        let q = format!("series={}", names.join(","));
        assert_eq!(dashboard.data(Some(&q)).status(), 200);
    });
    let page = median(51, || assert_eq!(dashboard.page().status(), 200));
    // The page polls once a second and discovers its 4 default groups every 5 s (counted
    // here as 4 live.* discoveries, the dearest: an upper bound).
    let per_second = poll + discover * 4 / 5;
    println!(
        "{SERIES} series, {} flattened metrics",
        dashboard.watchdog().series().len()
    );
    println!("baseline: watchdog tick (sample, history, default growth watch of live.*) {tick:?}");
    println!(
        "data poll, 8 series since the last poll: {poll:?} ({:.2}x a tick)",
        ratio(poll, tick)
    );
    println!(
        "data, 8 series, whole history (a new series): {full:?} ({:.2}x)",
        ratio(full, tick)
    );
    println!(
        "discovery, match=live.* top 8 of {SERIES}: {discover:?} ({:.2}x)",
        ratio(discover, tick)
    );
    println!("page: {page:?}");
    println!(
        "open page at 1 s refresh: {per_second:?} per second = {:.2}% of one core ({:.2}x the watchdog's own cost)",
        per_second.as_secs_f64() * 100.0,
        ratio(per_second, tick)
    );
    drop(tokens);
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

//! The watchdog's read accessors for dashboards: recent alerts (resolved ones kept), bulk
//! history reads since a time, and newest values of a filtered set of series.
//!
//! The workload runs in an `on_sample` consumer (once per tick, on the watchdog thread) and
//! `tick_seconds(1.0)` makes each 1 ms tick count as one second, as in `tests/watchdog.rs`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use leakwatch::{Alert, AlertRule, AlertState, DivergenceRule, Registry, Token, Watchdog};

fn set_level(tokens: &mut Vec<Token>, reg: &Registry, name: &str, n: usize) {
    tokens.truncate(n);
    while tokens.len() < n {
        tokens.push(Token::new_in(reg, name));
    }
}

/// A watchdog whose callbacks diverge from streams from t=20 to t=60 (sustain 5 s, clear
/// after 5 s), then agree again.
fn diverging_watchdog() -> (Watchdog, mpsc::Receiver<Alert>) {
    let reg = Registry::new();
    let (tx, rx) = mpsc::channel();
    let (mut callbacks, mut streams) = (Vec::new(), Vec::new());
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .growth(leakwatch::GrowthRule::new(leakwatch::Selector::none()))
        .divergence(
            DivergenceRule::new("live.cb", "live.streams")
                .sustain(Duration::from_secs(5))
                .clear_after(Duration::from_secs(5)),
        )
        .hook(move |a: &Alert| drop(tx.send(a.clone())))
        .on_sample(move |_| {
            tick += 1;
            let extra = if (20..60).contains(&tick) { 30 } else { 0 };
            set_level(&mut streams, &r2, "streams", 10);
            set_level(&mut callbacks, &r2, "cb", 10 + extra);
        })
        .start()
        .unwrap();
    (wd, rx)
}

fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn recent_alerts_keep_resolved_ones_in_order() {
    let (wd, rx) = diverging_watchdog();
    assert!(wd.recent_alerts().is_empty(), "nothing sent yet");
    let resolved = rx
        .iter()
        .find(|a| a.state == AlertState::Resolved)
        .expect("the divergence resolves");
    let recent = wd.recent_alerts();
    let states: Vec<_> = recent
        .iter()
        .filter(|a| a.rule == AlertRule::Divergence)
        .map(|a| a.state)
        .collect();
    assert_eq!(states, [AlertState::Firing, AlertState::Resolved]);
    assert_eq!(recent.last(), Some(&resolved));
    assert!(
        recent.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
    assert!(
        wd.active_alerts().is_empty(),
        "resolved: no longer active, still recent"
    );
}

#[test]
fn samples_since_reads_only_newer_samples_of_known_series() {
    let (wd, _rx) = diverging_watchdog();
    assert!(wait_until(30, || wd.ticks() >= 10), "watchdog ticks");
    let all = wd.samples_since(&["live.cb", "live.nope"], f64::NEG_INFINITY);
    let newest = all.newest.expect("ticks happened");
    assert_eq!(all.series.len(), 2, "one entry per requested series");
    assert_eq!(all.series[1], None, "unknown series");
    let cb = all.series[0].clone().expect("live.cb has history");
    assert!(!cb.is_empty());
    assert!(cb.iter().all(|&(t, _)| t <= newest));
    assert_eq!(cb.last().map(|p| p.0), Some(newest), "read under one lock");

    assert!(wait_until(30, || wd.ticks() >= 20), "more ticks");
    let later = wd.samples_since(&["live.cb"], newest);
    let new_points = later.series[0].clone().expect("still known");
    assert!(!new_points.is_empty(), "ticks after {newest} were sampled");
    assert!(new_points.iter().all(|&(t, _)| t > newest));
    let joined: Vec<f64> = cb.iter().chain(&new_points).map(|p| p.0).collect();
    assert!(
        joined.windows(2).all(|w| w[0] < w[1]),
        "no sample twice, none out of order"
    );
}

#[test]
fn latest_values_filters_by_name() {
    let (wd, _rx) = diverging_watchdog();
    assert!(
        wait_until(30, || wd.ticks() >= 30),
        "inside the divergence window"
    );
    let live = wd.latest_values(|n| n.starts_with("live."));
    let names: Vec<&str> = live.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["live.cb", "live.streams"], "sorted, filtered");
    assert_eq!(live[1].1, 10.0);
    assert!(
        live[0].1 >= 10.0,
        "newest value of live.cb, got {}",
        live[0].1
    );
    assert!(wd.latest_values(|_| false).is_empty());
}

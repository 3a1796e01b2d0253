//! Every leakwatch series is visible through the `metrics` facade: gauges set, counters as
//! deltas, names `leakwatch.<metric>.<series>`.

use std::time::Duration;

use leakwatch::facade::MetricsBridge;
use leakwatch::{Callbacks, Registry, Token};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

fn read(recorder: &DebuggingRecorder) -> Vec<(String, DebugValue)> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect()
}

fn value<'a>(values: &'a [(String, DebugValue)], name: &str) -> Option<&'a DebugValue> {
    values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

#[test]
fn gauges_are_set_and_counters_send_deltas() {
    let reg = Registry::new();
    let recorder = DebuggingRecorder::new();
    let mut bridge = MetricsBridge::new();
    let a = Token::new_in(&reg, "jobs");
    let _b = Token::new_in(&reg, "jobs");
    let cbs = Callbacks::<u8>::new_in(&reg, "events");
    let _sub = cbs.register(|_| {});
    cbs.emit(&1);

    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    let first = read(&recorder);
    assert_eq!(
        value(&first, "leakwatch.live.jobs"),
        Some(&DebugValue::Gauge(2.0.into()))
    );
    assert_eq!(
        value(&first, "leakwatch.created.jobs"),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        value(&first, "leakwatch.delivered.events"),
        Some(&DebugValue::Counter(1))
    );

    drop(a);
    let _c = Token::new_in(&reg, "jobs");
    let _d = Token::new_in(&reg, "jobs");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    let second = read(&recorder);
    assert_eq!(
        value(&second, "leakwatch.live.jobs"),
        Some(&DebugValue::Gauge(3.0.into()))
    );
    // Two more created since the last publish: the counter got +2, not the total 4.
    assert_eq!(
        value(&second, "leakwatch.created.jobs"),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        value(&second, "leakwatch.dropped.jobs"),
        Some(&DebugValue::Counter(1))
    );
}

#[test]
fn prefix_is_configurable_and_nothing_is_installed_globally() {
    let reg = Registry::new();
    let _t = Token::new_in(&reg, "x");
    let recorder = DebuggingRecorder::new();
    let mut bridge = MetricsBridge::with_prefix("svc");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    assert!(value(&read(&recorder), "svc.live.x").is_some());
    // Publishing with no recorder installed is a no-op, not an error.
    bridge.publish(&reg.snapshot());
}

#[test]
fn series_of_different_kinds_with_one_name_keep_their_own_totals() {
    // A token kind and a callback registry both named `jobs` both flatten to `created.jobs`.
    let reg = Registry::new();
    let recorder = DebuggingRecorder::new();
    let mut bridge = MetricsBridge::new();
    let _a = Token::new_in(&reg, "jobs");
    let _b = Token::new_in(&reg, "jobs");
    let cbs = Callbacks::<u8>::new_in(&reg, "jobs");
    let _sub = cbs.register(|_| {});
    let created =
        |recorder: &DebuggingRecorder| match value(&read(recorder), "leakwatch.created.jobs") {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            other => panic!("not a counter: {other:?}"),
        };

    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    assert_eq!(created(&recorder), 3, "2 tokens + 1 registration");
    // Nothing changed: each series' delta is 0. Keyed by name alone, the two totals
    // overwrote each other and every publish added a phantom difference.
    for _ in 0..3 {
        metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    }
    // (Each read of the debugging recorder returns the increments since the last read.)
    assert_eq!(created(&recorder), 0);
    let _c = Token::new_in(&reg, "jobs");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    assert_eq!(created(&recorder), 1);
}

#[test]
fn a_spawned_publisher_takes_any_interval() {
    // Clamped to 1 ms..=1 day: neither spins nor overflows a deadline; dropping stops it.
    for interval in [Duration::ZERO, Duration::MAX] {
        drop(MetricsBridge::new().spawn(Registry::new(), interval));
    }
}

//! Every leakwatch series is visible through the `metrics` facade: gauges set, counters as
//! deltas, names `leakwatch.<metric>.<series>`.

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

//! Every leakwatch series is visible through the `metrics` facade as one metric per kind with
//! the series as a label (`leakwatch_live{series="jobs"}`, counters ending in `_total`):
//! gauges set, counters as deltas.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use leakwatch::facade::MetricsBridge;
use leakwatch::{Callbacks, Registry, Token};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Every metric the recorder holds, as `name{label="value",..}` (labels sorted) and value.
fn read(snapshotter: &Snapshotter) -> Vec<(String, DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            (name, value)
        })
        .collect()
}

fn value<'a>(values: &'a [(String, DebugValue)], name: &str) -> Option<&'a DebugValue> {
    values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

#[test]
fn gauges_are_set_and_counters_send_deltas_under_labelled_names() {
    let reg = Registry::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut bridge = MetricsBridge::new();
    let a = Token::new_in(&reg, "jobs");
    let _b = Token::new_in(&reg, "jobs");
    let cbs = Callbacks::<u8>::new_in(&reg, "presence.events");
    let _sub = cbs.register(|_| {});
    cbs.emit(&1);

    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    let first = read(&snapshotter);
    assert_eq!(
        value(&first, r#"leakwatch_live{series="jobs"}"#),
        Some(&DebugValue::Gauge(2.0.into())),
        "{first:?}"
    );
    assert_eq!(
        value(&first, r#"leakwatch_created_total{series="jobs"}"#),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        value(
            &first,
            r#"leakwatch_delivered_total{series="presence.events"}"#
        ),
        Some(&DebugValue::Counter(1))
    );
    // No per-series metric names any more.
    assert!(
        first
            .iter()
            .all(|(n, _)| !n.contains("jobs") || n.contains(r#"series="jobs""#)),
        "{first:?}"
    );

    drop(a);
    let _c = Token::new_in(&reg, "jobs");
    let _d = Token::new_in(&reg, "jobs");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    let second = read(&snapshotter);
    assert_eq!(
        value(&second, r#"leakwatch_live{series="jobs"}"#),
        Some(&DebugValue::Gauge(3.0.into()))
    );
    // Two more created since the last publish: the counter got +2, not the total 4.
    assert_eq!(
        value(&second, r#"leakwatch_created_total{series="jobs"}"#),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        value(&second, r#"leakwatch_dropped_total{series="jobs"}"#),
        Some(&DebugValue::Counter(1))
    );
}

#[test]
fn the_prefix_is_configurable() {
    let reg = Registry::new();
    let _t = Token::new_in(&reg, "x");
    let recorder = DebuggingRecorder::new();
    let mut bridge = MetricsBridge::with_prefix("svc");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    let values = read(&recorder.snapshotter());
    assert_eq!(
        value(&values, r#"svc_live{series="x"}"#),
        Some(&DebugValue::Gauge(1.0.into())),
        "{values:?}"
    );
    assert!(value(&values, r#"leakwatch_live{series="x"}"#).is_none());
}

#[test]
fn series_of_different_kinds_with_one_name_keep_their_own_totals() {
    // A token kind and a callback registry both named `jobs` both flatten to `created.jobs`.
    let reg = Registry::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut bridge = MetricsBridge::new();
    let _a = Token::new_in(&reg, "jobs");
    let _b = Token::new_in(&reg, "jobs");
    let cbs = Callbacks::<u8>::new_in(&reg, "jobs");
    let _sub = cbs.register(|_| {});
    let created = || match value(
        &read(&snapshotter),
        r#"leakwatch_created_total{series="jobs"}"#,
    ) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("not a counter: {other:?}"),
    };

    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    assert_eq!(created(), 3, "2 tokens + 1 registration");
    // Nothing changed: each series' delta is 0. Keyed by name alone, the two totals
    // overwrote each other and every publish added a phantom difference.
    for _ in 0..3 {
        metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    }
    // (Each read of the debugging recorder returns the increments since the last read.)
    assert_eq!(created(), 0);
    let _c = Token::new_in(&reg, "jobs");
    metrics::with_local_recorder(&recorder, || bridge.publish(&reg.snapshot()));
    assert_eq!(created(), 1);
}

#[test]
fn a_spawned_publisher_publishes_with_any_interval_and_stops_when_dropped() {
    // The publisher thread uses the global recorder; this is the only test that installs one.
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    let snapshotter = SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other global recorder in this test binary");
        snapshotter
    });
    // Clamped to 1 ms..=1 day: neither spins nor overflows a deadline. Each publishes at once.
    for (i, interval) in [Duration::ZERO, Duration::MAX].into_iter().enumerate() {
        let reg = Registry::new();
        let name = format!("spawned{i}");
        let _t = Token::new_in(&reg, &name);
        let publisher = MetricsBridge::new().spawn(reg, interval);
        let key = format!(r#"leakwatch_live{{series="{name}"}}"#);
        // A deadline only so that a broken publisher fails instead of hanging.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let values = read(snapshotter);
            if let Some(v) = value(&values, &key) {
                assert_eq!(v, &DebugValue::Gauge(1.0.into()));
                break;
            }
            assert!(Instant::now() < deadline, "{key} never published");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(publisher); // joins the thread: a publisher that did not stop would hang here
    }
}

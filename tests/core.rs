//! The core counting API end to end on the global registry: tracked types, named callbacks,
//! callback registries, scopes, connections, snapshots (JSON, diff, table) and the
//! returns-to-baseline assertion.
//!
//! Everything here uses series names unique to this file, so it can share the global registry
//! with other tests in this binary.

use std::time::Duration;

use leakwatch::{
    CloseReason, Connections, Scope, ScopeFinding, SeriesKind, Snapshot, Token, assert_returns_to,
};

#[leakwatch::tracked(name = "core_test.Watch")]
#[derive(Clone, Debug)]
struct Watch {
    user: u32,
    tracker: leakwatch::Tracker<Self>,
}

#[test]
fn a_connection_lifecycle_returns_every_count_to_baseline() {
    let _serial = leakwatch::testing::serial();
    let base = leakwatch::snapshot();
    let presence = leakwatch::Callbacks::<u32>::new("core_test.presence");
    let conns = Connections::new("core_test.streams");
    {
        let scope = Scope::open("core_test.stream");
        let conn = conns.open(|| true);
        let watch = Watch {
            user: 1,
            tracker: leakwatch::Tracker::new(),
        };
        let _copy = watch.clone();
        let sub = presence
            .register_in(&scope, move |u| assert!(*u > 0))
            .unwrap();
        let relay = scope.named("core_test.relay", |x: u32| x + 1).unwrap();
        assert_eq!(relay(1), 2);
        assert_eq!(presence.emit(&watch.user), 1);

        let during = leakwatch::snapshot();
        assert_eq!(during.live("core_test.Watch"), 2);
        assert_eq!(during.live("core_test.presence"), 1);
        assert_eq!(during.live("core_test.streams"), 1);
        assert_eq!(during.live("core_test.relay"), 1);
        assert_eq!(during.live("core_test.stream"), 1);
        let grown: Vec<_> = during.diff(&base).grown().map(|c| c.name.clone()).collect();
        for name in ["core_test.Watch", "core_test.presence", "core_test.relay"] {
            assert!(grown.iter().any(|g| g == name), "{name} grew: {grown:?}");
        }

        conn.close(CloseReason::Aborted);
        scope.close();
        drop((sub, relay));
    }
    assert_returns_to(&base);
    let after = leakwatch::snapshot();
    let streams = after.get("core_test.streams").unwrap();
    assert_eq!(streams.extra("closed_aborted"), 1);
    assert_eq!(streams.kind, SeriesKind::Connections);
    assert_eq!(leakwatch::counts::<Watch>().created, 2);
}

#[test]
fn snapshot_serialises_to_json_and_prints_a_table() {
    // The lifecycle test asserts the whole global registry returns to its baseline.
    let _serial = leakwatch::testing::serial();
    let _t = Token::new("core_test.json_token");
    let snap = leakwatch::snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let series = value["series"].as_array().unwrap();
    let token = series
        .iter()
        .find(|s| s["name"] == "core_test.json_token")
        .expect("token series in JSON");
    assert_eq!(token["kind"], "token");
    assert_eq!(token["live"], 1);
    assert!(
        token["sites"][0]["location"]
            .as_str()
            .unwrap()
            .contains("core.rs")
    );
    assert!(value["memory"]["resident_bytes"].as_u64().unwrap() > 0);
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    let table = snap.to_string();
    assert!(table.lines().next().unwrap().contains("live"));
    assert!(table.contains("core_test.json_token"));
    assert!(table.contains("memory.resident_bytes"));
}

#[test]
fn leak_assertion_names_series_amount_and_site() {
    let reg = leakwatch::Registry::new();
    let base = reg.snapshot();
    let leaked = Token::new_in(&reg, "core_test.leaked");
    let err = leakwatch::testing::check_returns_to(&base).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("core_test.leaked"), "{msg}");
    assert!(msg.contains("+1 live"), "{msg}");
    assert!(msg.contains("tests/core.rs"), "{msg}");
    drop(leaked);
    assert_returns_to(&base);
}

#[test]
fn outlived_scope_items_are_reported_with_their_site() {
    let reg = leakwatch::Registry::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    reg.on_scope_finding(move |f| tx.lock().unwrap().send(f.clone()).unwrap());
    let scope = Scope::builder("core_test.conn")
        .registry(&reg)
        .grace(Duration::from_millis(10))
        .open();
    let kept = scope.token("core_test.kept").unwrap();
    scope.close();
    match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
        ScopeFinding::Outlived { item, site, .. } => {
            assert_eq!(item, "core_test.kept");
            assert!(site.contains("tests/core.rs"), "{site}");
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(kept);
}

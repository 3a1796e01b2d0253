//! One rule assembly, two drivers: a watchdog runs over a workload and records it, then
//! `leakwatch analyze` replays the recording with the matching options; both must report the
//! same findings (rule, series, state) at the same ticks.
//!
//! The workload is driven from an `on_sample` consumer (once per tick, on the watchdog thread)
//! with `tick_seconds(1.0)`, so a 1 ms tick counts as one second and the scenario takes about
//! a second of wall time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use leakwatch::recording::{Record, RecordingReader};
use leakwatch::{DivergenceRule, Registry, Token, Watchdog};
use serde_json::Value;

/// Keeps `n` tokens of `name` alive.
fn set_level(tokens: &mut Vec<Token>, reg: &Registry, name: &str, n: usize) {
    tokens.truncate(n);
    while tokens.len() < n {
        tokens.push(Token::new_in(reg, name));
    }
}

fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("same-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A finding or recorded alert reduced to what both drivers must agree on.
type Key = (String, String, String, u64);

fn key(v: &Value, state: &str, at: &Value) -> Key {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let at = at.as_f64().expect("a numeric time");
    (s("rule"), s("series"), state.to_owned(), at.round() as u64)
}

const TICKS: usize = 1500;

/// Runs the watchdog over the workload; returns the recording's path.
fn run_watchdog(rec: &Path) {
    let reg = Registry::new();
    let (done_tx, done_rx) = mpsc::channel();
    let (mut streams, mut callbacks, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        // Every transition is sent (and recorded): nothing held back as flapping.
        .cooldown(Duration::ZERO)
        .divergence(DivergenceRule::new(
            "live.presence.callbacks",
            "live.http.streams",
        ))
        .load_series("live.http.streams")
        .record(rec)
        .on_sample(move |_| {
            tick += 1;
            let n = 100 + tick % 5;
            // Callbacks run 40 ahead of the streams from t=200 to t=400 (a divergence that
            // resolves); jobs leak one every 2 s from t=100 until they are all dropped at
            // t=1300 (growth relative to the load, then a reset).
            let extra = if (200..400).contains(&tick) { 40 } else { 0 };
            let leaked = if (100..1300).contains(&tick) {
                (tick - 100) / 2
            } else {
                0
            };
            set_level(&mut streams, &r2, "http.streams", n);
            set_level(&mut callbacks, &r2, "presence.callbacks", n + extra);
            set_level(&mut jobs, &r2, "jobs", 10 + leaked);
            if tick == TICKS {
                let _ = done_tx.send(());
            }
        })
        .start()
        .unwrap();
    // A deadline so a stuck watchdog fails the test instead of hanging it.
    done_rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the watchdog ran the whole workload");
    wd.stop();
}

#[test]
fn watchdog_and_analyze_report_the_same_findings_at_the_same_ticks() {
    let d = dir("findings");
    let rec = d.join("rec.jsonl");
    run_watchdog(&rec);

    // What the watchdog raised, as it recorded it.
    let mut live: BTreeSet<Key> = BTreeSet::new();
    let mut last_t = 0.0f64;
    for r in RecordingReader::open(&rec).unwrap() {
        match r.unwrap() {
            Record::Alert { alert, .. } => {
                let state = alert["state"].as_str().unwrap().to_owned();
                live.insert(key(&alert, &state, &alert["at"]));
            }
            Record::Tick { t, .. } => last_t = t,
        }
    }
    assert!(last_t >= TICKS as f64, "recorded {last_t} s");
    let rules: BTreeSet<&str> = live.iter().map(|k| k.0.as_str()).collect();
    assert!(
        rules.contains("divergence") && rules.contains("growth"),
        "the workload raises both kinds: {live:#?}"
    );
    assert!(
        live.iter().any(|k| k.0 == "growth" && k.1 == "live.jobs"),
        "{live:#?}"
    );

    // What `leakwatch analyze` finds in the recording with the matching options.
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(["analyze", "--json", rec.to_str().unwrap()])
        .args(["--pair", "live.presence.callbacks=live.http.streams"])
        .args(["--load", "live.http.streams"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut replayed: BTreeSet<Key> = BTreeSet::new();
    for f in report["findings"].as_array().unwrap() {
        replayed.insert(key(f, "firing", &f["at"]));
        if !f["resolved_at"].is_null() {
            replayed.insert(key(f, "resolved", &f["resolved_at"]));
        }
    }
    assert_eq!(live, replayed);
}

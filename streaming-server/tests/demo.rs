//! End-to-end proof on the reference server (issue: simulator and demo): with either seed bug
//! switched on, the demo's watchdog raises the right alert within a minute of simulated
//! traffic; with the bugs off, under the ramp, diurnal and spike profiles, it stays silent and
//! every connection-scoped count drains back to its baseline; and what the live watchdog found
//! is what `leakwatch analyze` finds in the recording.
//!
//! Each case runs `streaming-server demo` as a child process (each demo counts in its own
//! process-wide registry) and reads the `summary.json` it writes. Longer runs are documented
//! commands in README ("Soak").

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn demo(name: &str, args: &[&str]) -> Value {
    let out: PathBuf =
        std::env::temp_dir().join(format!("leakwatch-demo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streaming-server"));
    cmd.arg("demo")
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--every")
        .arg("10s");
    let output = cmd.output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap_or_else(|e| {
        panic!(
            "{name}: no summary ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let v: Value = serde_json::from_str(&summary).expect("summary.json parses");
    for png in [
        "memory.png",
        "delivery.png",
        "http-status.png",
        "callbacks-vs-connections.png",
    ] {
        let bytes = std::fs::read(out.join(png)).unwrap_or_else(|e| panic!("{name}: {png}: {e}"));
        assert_eq!(&bytes[..4], b"\x89PNG", "{name}: {png}");
    }
    assert_eq!(
        output.status.code(),
        Some(if v["success"] == true { 0 } else { 1 }),
        "{name}: exit status follows success\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&out);
    eprintln!("{name}:\n{stdout}");
    v
}

/// The distinct (rule, series) pairs of the summary's `key` list.
fn pairs(v: &Value, key: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What the live watchdog fired.
fn firing(v: &Value) -> Vec<(String, String)> {
    pairs(v, "live")
}

/// What `leakwatch analyze` of the recording found.
fn analyzed(v: &Value) -> Vec<(String, String)> {
    pairs(v, "analyzed")
}

/// Every connection-scoped count, tokio's alive tasks and the server's sockets are back at
/// their baseline after traffic drained.
fn drained(name: &str, v: &Value) {
    for (series, pair) in v["baseline"].as_object().unwrap() {
        assert_eq!(
            pair[0], pair[1],
            "{name}: {series} did not return to its baseline"
        );
    }
}

#[test]
fn late_callback_is_caught_within_a_minute_on_the_callback_series() {
    let v = demo(
        "late-callback",
        &["--inject", "late-callback", "--duration", "50s"],
    );
    assert_eq!(v["success"], true);
    let t = v["detected_after_secs"].as_f64().expect("detected");
    assert!(t <= 60.0, "detected after {t} s");
    assert!(
        firing(&v)
            .iter()
            .any(|(r, s)| r == "divergence" && s == "live.presence.callbacks")
    );
    assert!(
        v["traffic"]["connections"]["resumes"].as_u64().unwrap() > 0,
        "Last-Event-ID reconnects ran"
    );
    assert!(
        v["traffic"]["connections"]["conflicts"].as_u64().unwrap() > 0,
        "some resumes got 409"
    );
    assert_eq!(
        firing(&v),
        analyzed(&v),
        "live watchdog and leakwatch analyze agree"
    );
}

#[test]
fn a_lost_close_without_the_reaper_is_caught_within_a_minute() {
    let v = demo(
        "close-race",
        &["--inject", "close-race", "--no-reaper", "--duration", "50s"],
    );
    assert_eq!(v["success"], true);
    let t = v["detected_after_secs"].as_f64().expect("detected");
    assert!(t <= 60.0, "detected after {t} s");
    assert!(
        firing(&v)
            .iter()
            .any(|(r, s)| r == "divergence" && s == "live.http.streams")
    );
    assert_eq!(v["reaped"], 0);
    assert_eq!(
        firing(&v),
        analyzed(&v),
        "live watchdog and leakwatch analyze agree"
    );
}

#[test]
fn with_the_reaper_lost_closes_are_reaped_and_nothing_fires() {
    let v = demo(
        "close-race-reaped",
        &["--inject", "close-race", "--duration", "50s"],
    );
    assert_eq!(v["success"], true, "no alert: {:?}", firing(&v));
    assert!(
        v["reaped"].as_u64().unwrap() > 0,
        "the reaper closed lost streams"
    );
    assert!(firing(&v).is_empty());
    assert!(analyzed(&v).is_empty());
    drained("close-race-reaped", &v);
}

#[test]
fn a_healthy_server_stays_silent_and_drains_under_ramp_diurnal_and_spike() {
    for profile in ["ramp", "diurnal", "spike"] {
        let v = demo(
            &format!("healthy-{profile}"),
            &[
                "--healthy",
                "--profile",
                profile,
                "--duration",
                "60s",
                "--clients",
                "400",
            ],
        );
        assert_eq!(v["success"], true, "{profile}: {:?}", firing(&v));
        assert!(firing(&v).is_empty(), "{profile}");
        assert!(analyzed(&v).is_empty(), "{profile}");
        assert_eq!(
            v["traffic"]["violations"]["total"].as_u64().unwrap_or(0),
            0,
            "{profile}"
        );
        drained(profile, &v);
    }
}

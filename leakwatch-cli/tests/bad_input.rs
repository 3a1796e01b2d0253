//! The `leakwatch` command on input that would mislead: files of different recordings, rules
//! that match nothing, a cut-off last line, garbage from "graphite-web", internal counters
//! and declared metric kinds in plots.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use leakwatch::MetricKind;
use leakwatch::recording::{Header, RecordingWriter, Rotation};

fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bad-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn leakwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(args)
        .output()
        .expect("run leakwatch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `secs` one-second ticks of a steady `live.http.streams` and `count.jobs`, in a recording
/// started at `started_at_ms`.
fn record(path: &Path, started_at_ms: u64, secs: u32) {
    let header = Header::new(1000, Some(started_at_ms));
    let mut w = RecordingWriter::create(path, header, Rotation::default()).unwrap();
    for s in 1..=secs {
        let v = BTreeMap::from([("live.http.streams", 100.0), ("count.jobs", f64::from(s))]);
        w.tick(f64::from(s), &v).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn files_of_different_recordings_are_refused() {
    let d = dir("mixed");
    let (a, b) = (d.join("a.jsonl"), d.join("b.jsonl"));
    record(&a, 1_764_000_000_000, 10);
    record(&b, 1_764_000_600_000, 10);
    let out = leakwatch(&["analyze", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("are from different recordings"), "{err}");
    assert!(err.contains("2025-11-24 16:00:00 UTC"), "{err}");
    // The same file twice is the same part twice.
    let out = leakwatch(&[
        "plot",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "-o",
        "x.svg",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("are both part 0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rules_that_match_nothing_are_said_in_the_verdict() {
    let d = dir("unmatched");
    let rec = d.join("rec.jsonl");
    record(&rec, 1_764_000_000_000, 30);
    let out = leakwatch(&[
        "analyze",
        rec.to_str().unwrap(),
        "--pair",
        "live.presence.callbacks=live.http.streams",
        "--watch",
        "nothing.*",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("Not judged (3):"), "{report}");
    assert!(
        report.contains("rule growth: no series matches nothing.*"),
        "{report}"
    );
    assert!(
        report.contains("live.presence.callbacks never appeared"),
        "{report}"
    );
    assert!(
        report.contains("series in the input: count.jobs, live.http.streams;"),
        "{report}"
    );
    assert!(report.contains("--watch 'count.*'"), "{report}");
    assert!(
        report.contains("Verdict: nothing found, but 2 rule(s) watched no series"),
        "{report}"
    );
    assert!(!report.contains("no leak found."), "{report}");
    // --json keeps stdout one object; the notes go to stderr.
    let out = leakwatch(&["analyze", "--json", rec.to_str().unwrap(), "--watch", "x.*"]);
    assert_eq!(text(&out.stdout).trim(), r#"{"findings":[]}"#);
    assert!(
        text(&out.stderr).contains("note: rule growth: no series matches x.*"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn counters_watched_for_growth_are_pointed_out() {
    let d = dir("counters");
    let rec = d.join("rec.jsonl");
    let mut header = Header::new(1000, Some(1_764_000_000_000));
    header
        .kinds
        .insert("count.jobs".into(), MetricKind::Counter);
    let mut w = RecordingWriter::create(&rec, header, Rotation::default()).unwrap();
    for s in 1..=30 {
        w.tick(
            f64::from(s),
            &BTreeMap::from([("count.jobs", f64::from(s))]),
        )
        .unwrap();
    }
    w.flush().unwrap();
    let out = leakwatch(&["analyze", rec.to_str().unwrap(), "--watch", "count.*"]);
    let report = text(&out.stdout);
    assert!(
        report.contains("1 watched for growth but recorded as counters"),
        "{report}"
    );
}

#[test]
fn a_cut_off_last_line_is_reported() {
    let d = dir("cut");
    let rec = d.join("rec.jsonl");
    record(&rec, 1_764_000_000_000, 20);
    let mut f = std::fs::OpenOptions::new().append(true).open(&rec).unwrap();
    f.write_all(br#"{"t":21,"values":{"live.http.str"#).unwrap();
    drop(f);
    let out = leakwatch(&["analyze", rec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("20 ticks"), "{report}");
    assert!(
        report.contains(&format!(
            "the last line of {} was cut off mid-line",
            rec.display()
        )),
        "{report}"
    );
}

/// A one-shot server on loopback answering with `answer` bytes; returns its base URL.
fn serve_once(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let _ = conn.write_all(answer);
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn garbage_from_graphite_web_is_reported_as_such() {
    let graphite =
        |url: &str| leakwatch(&["analyze", "--graphite", url, "--target", "stats.gauges.*"]);
    // Not HTTP at all.
    let out = graphite(&serve_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is not graphite-web's"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
    // HTTP, but not render JSON: what came is shown.
    let out = graphite(&serve_once(
        b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\nConnection: close\r\n\r\n<html>welcome</html>\n",
    ));
    let err = text(&out.stderr);
    assert!(err.contains("is not render JSON"), "{err}");
    assert!(err.contains("<html>welcome"), "{err}");
    // Nobody listening is still "cannot reach".
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = text(&graphite(&format!("http://127.0.0.1:{port}")).stderr);
    assert!(err.contains("cannot reach graphite-web"), "{err}");
}

#[test]
fn plots_follow_declared_kinds_and_leave_out_idle_internal_counters() {
    let d = dir("plot");
    let rec = d.join("rec.jsonl");
    let mut header = Header::new(1000, Some(1_764_000_000_000));
    // `jobs.done` has no prefix the old guess knew: only its declared kind makes it a rate.
    header.kinds.insert("jobs.done".into(), MetricKind::Counter);
    let mut w = RecordingWriter::create(&rec, header, Rotation::default()).unwrap();
    for s in 1..=120 {
        if s == 2 {
            w.declare("count.leakwatch.hook.dropped", MetricKind::Counter);
            w.declare("count.leakwatch.hook.panics", MetricKind::Counter);
        }
        let mut v = BTreeMap::from([
            ("live.http.streams", 100.0),
            ("jobs.done", 3.0 * f64::from(s)),
        ]);
        if s >= 2 {
            v.insert("count.leakwatch.hook.panics", 0.0);
            v.insert("count.leakwatch.hook.dropped", f64::from(s / 60));
        }
        w.tick(f64::from(s), &v).unwrap();
    }
    w.flush().unwrap();
    let svg = d.join("p.svg");
    let all = ["--series", "*"];
    let out = leakwatch(&["plot", rec.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.contains("count.leakwatch.hook.dropped"), "it moved");
    assert!(!drawn.contains("count.leakwatch.hook.panics"), "idle");
    // Asked for explicitly, every series is drawn, and the declared counter as a rate.
    let mut args = vec!["plot", rec.to_str().unwrap(), "-o", svg.to_str().unwrap()];
    args.extend(all);
    assert!(leakwatch(&args).status.success());
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.contains("count.leakwatch.hook.panics"));
    assert!(drawn.contains("jobs.* (per second)"), "declared counter");
}

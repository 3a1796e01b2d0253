//! End-to-end tests of the `leakwatch` binary: recordings are written with the library's
//! `RecordingWriter` (2 h of 1 s samples, ~0.5 MB each) and the built binary is run on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use leakwatch::recording::{Header, RecordingWriter, Rotation};
use serde_json::{Value, json};

const HOUR: u32 = 3600;
/// 2025-11-24 16:00:00 UTC.
const STARTED_AT_MS: u64 = 1_764_000_000_000;

fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic noise in [-1, 1] (splitmix64), so every run sees the same recording.
fn noise(i: u32, seed: u64) -> f64 {
    let mut z = u64::from(i).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Writes `secs` one-second ticks of `values(t)` to `path` with the given rotation.
fn record_with(
    path: &Path,
    secs: u32,
    rotation: Rotation,
    values: impl Fn(u32) -> Vec<(&'static str, f64)>,
) {
    let header = Header::new(1000, Some(STARTED_AT_MS));
    let mut w = RecordingWriter::create(path, header, rotation).unwrap();
    for s in 1..=secs {
        let v: BTreeMap<&str, f64> = values(s).into_iter().collect();
        w.tick(f64::from(s), &v).unwrap();
    }
    w.flush().unwrap();
}

fn record(path: &Path, secs: u32, values: impl Fn(u32) -> Vec<(&'static str, f64)>) {
    record_with(path, secs, Rotation::default(), values);
}

/// A healthy service: noisy, short-period oscillations, no trend.
fn healthy(s: u32) -> Vec<(&'static str, f64)> {
    let t = f64::from(s);
    let streams = (400.0 + 15.0 * (t / 60.0).sin() + 4.0 * noise(s, 1)).round();
    vec![
        ("live.http.streams", streams),
        (
            "live.presence.callbacks",
            (streams + 2.0 * noise(s, 2)).round(),
        ),
        ("live.presence.Watch", (120.0 + 3.0 * noise(s, 3)).round()),
        ("memory.resident_bytes", 50e6 + 2e5 * noise(s, 4)),
        ("delivered.presence.callbacks", 20.0 * t),
        ("count.http.status.200", (5.0 * t).floor()),
        ("count.http.status.409", (0.2 * t).floor()),
    ]
}

/// Healthy, except that from minute 30 one presence callback in ~20 is never removed.
fn leaking(s: u32) -> Vec<(&'static str, f64)> {
    let leaked = f64::from(s.saturating_sub(1800)) / 20.0;
    healthy(s)
        .into_iter()
        .map(|(k, v)| match k {
            "live.presence.callbacks" => (k, v + leaked.floor()),
            _ => (k, v),
        })
        .collect()
}

fn leakwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .args(args)
        .output()
        .expect("run leakwatch")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `analyze --json`, checks the output is exactly one JSON object, returns findings.
fn findings(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["analyze", "--json"];
    all.extend_from_slice(args);
    let out = leakwatch(&all);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one line of JSON: {stdout}"
    );
    let v: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["findings"], "{stdout}");
    obj["findings"].as_array().unwrap().clone()
}

fn about<'a>(found: &'a [Value], rule: &str, series: &str) -> Vec<&'a Value> {
    found
        .iter()
        .filter(|f| f["rule"] == rule && f["series"] == series)
        .collect()
}

#[test]
fn healthy_recording_has_no_findings() {
    let d = dir("healthy");
    let rec = d.join("rec.jsonl");
    record(&rec, 2 * HOUR, healthy);
    let out = leakwatch(&["analyze", "--json", arg(&rec)]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"findings": []}));

    let text = leakwatch(&["analyze", arg(&rec)]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("7200 ticks, 7 series"), "{text}");
    assert!(text.contains("No findings."), "{text}");
    assert!(text.contains("2025-11-24 16:00:00 UTC"), "{text}");
}

#[test]
fn a_recording_shorter_than_the_warmup_says_growth_was_not_judged() {
    let d = dir("short");
    let rec = d.join("rec.jsonl");
    record(&rec, 120, leaking);
    let text = leakwatch(&["analyze", arg(&rec)]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("growth was not judged: the input spans 1m59s"),
        "{text}"
    );
    assert!(!text.contains("no leak found"), "{text}");
}

#[test]
fn leaking_series_gives_a_growth_finding() {
    let d = dir("growth");
    let rec = d.join("rec.jsonl");
    record(&rec, 2 * HOUR, leaking);
    let found = findings(&[arg(&rec)]);
    let growth = about(&found, "growth", "live.presence.callbacks");
    assert_eq!(growth.len(), 1, "{found:#?}");
    let f = growth[0];
    let at = f["at"].as_f64().unwrap();
    // The leak starts at 30 min; the detector needs a few windows of evidence.
    assert!((1800.0..=1800.0 + 3600.0).contains(&at), "at = {at}");
    assert!(f["since"].as_f64().unwrap() <= at);
    assert_eq!(f["state"], "firing");
    assert!(f["slope_per_sec"].as_f64().unwrap() > 0.0);
    assert!(f["at_time"].as_str().unwrap().starts_with("2025-11-24T"));
    assert_eq!(found.len(), 1, "only the leaking series: {found:#?}");

    // The human report says the same, and --fail-on-findings turns it into exit status 3.
    let out = leakwatch(&["analyze", "--fail-on-findings", arg(&rec)]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("growth      live.presence.callbacks"),
        "{text}"
    );
    assert!(
        text.contains("still firing at the end of the input"),
        "{text}"
    );
}

#[test]
fn diverging_pair_gives_a_divergence_finding() {
    let d = dir("divergence");
    let rec = d.join("rec.jsonl");
    record(&rec, HOUR, leaking);
    let found = findings(&[
        arg(&rec),
        "--pair",
        "live.presence.callbacks=live.http.streams",
    ]);
    let div = about(&found, "divergence", "live.presence.callbacks");
    assert_eq!(div.len(), 1, "{found:#?}");
    assert_eq!(div[0]["other"], "live.http.streams");
    let at = div[0]["at"].as_f64().unwrap();
    // 5% of 400 is 20 leaked callbacks: 400 s after the leak starts, plus a minute's sustain.
    assert!((2100.0..=2700.0).contains(&at), "at = {at}");

    // A pair with a ratio that holds is quiet.
    let found = findings(&[
        arg(&rec),
        "--pair",
        "live.http.streams=live.presence.Watch*3.33",
        "--watch",
        "nothing.*",
    ]);
    assert!(
        about(&found, "divergence", "live.http.streams").is_empty(),
        "{found:#?}"
    );
}

#[test]
fn growth_that_follows_load_is_not_a_finding_with_load() {
    let d = dir("load");
    let rec = d.join("rec.jsonl");
    // Load doubles over two hours; callbacks follow it exactly (two per stream).
    record(&rec, 2 * HOUR, |s| {
        let t = f64::from(s);
        let streams = (200.0 + t / 36.0 + 3.0 * noise(s, 5)).round();
        vec![
            ("live.http.streams", streams),
            (
                "live.presence.callbacks",
                (2.0 * streams + 2.0 * noise(s, 6)).round(),
            ),
        ]
    });
    let plain = findings(&[arg(&rec)]);
    assert!(
        !about(&plain, "growth", "live.presence.callbacks").is_empty(),
        "without --load the growth is reported: {plain:#?}"
    );
    let relative = findings(&[arg(&rec), "--load", "live.http.streams"]);
    assert_eq!(relative, Vec::<Value>::new());
}

#[test]
fn malformed_line_names_file_and_line() {
    let d = dir("malformed");
    let rec = d.join("rec.jsonl");
    record(&rec, 10, healthy);
    let mut text = std::fs::read_to_string(&rec).unwrap();
    text.push_str("{\"t\": 11, \"values\": {\"live.x\": \"twelve\"}}\n");
    text.push_str("{\"t\": 12, \"values\": {\"live.x\": 12}}\n");
    std::fs::write(&rec, text).unwrap();
    for cmd in [vec!["analyze", "--json"], vec!["plot", "-o"]] {
        let svg = d.join("x.svg");
        let mut args = cmd.clone();
        if cmd[0] == "plot" {
            args.push(arg(&svg));
        }
        args.push(arg(&rec));
        let out = leakwatch(&args);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let want = format!("{}:12:", rec.display());
        assert!(stderr.contains(&want), "{cmd:?}: {stderr}");
        assert!(stderr.contains("must be a number"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        if cmd[0] == "analyze" {
            assert!(out.stdout.is_empty(), "nothing on stdout on error");
        }
    }

    // Not a recording at all, and a missing file.
    let junk = d.join("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = leakwatch(&["analyze", arg(&junk)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.txt:1:"));
    let out = leakwatch(&["analyze", arg(&d.join("missing.jsonl"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jsonl"));
    // Bad option values are usage errors.
    let out = leakwatch(&["analyze", arg(&rec), "--pair", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rotated_parts_read_in_order() {
    let d = dir("rotated");
    let whole = d.join("whole.jsonl");
    record(&whole, 2 * HOUR, leaking);
    let rec = d.join("rec.jsonl");
    let rotation = Rotation {
        max_bytes: 200_000,
        keep: 10,
    };
    record_with(&rec, 2 * HOUR, rotation, leaking);
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("rec.jsonl")
        })
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");
    // Shell glob order (rec.jsonl, rec.jsonl.1, ...) is newest-first after rotation.
    parts.sort();
    let mut args: Vec<&str> = parts.iter().map(|p| arg(p)).collect();
    let expected = findings(&[arg(&whole)]);
    assert!(!expected.is_empty());
    assert_eq!(findings(&args), expected);
    args.reverse();
    assert_eq!(findings(&args), expected);
}

#[test]
fn plot_writes_svg_and_png() {
    let d = dir("plot");
    let rec = d.join("rec.jsonl");
    let header = Header::new(1000, Some(STARTED_AT_MS));
    let mut w = RecordingWriter::create(&rec, header, Rotation::default()).unwrap();
    for s in 1..=HOUR {
        let v: BTreeMap<&str, f64> = leaking(s).into_iter().collect();
        w.tick(f64::from(s), &v).unwrap();
        if s == 3000 {
            let alert =
                json!({"rule": "growth", "series": "live.presence.callbacks", "state": "firing"});
            w.alert(f64::from(s), &alert).unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);

    let svg = d.join("leaks.svg");
    let out = leakwatch(&["plot", arg(&rec), "-o", arg(&svg), "--analyze"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..100]);
    assert!(text.trim_end().ends_with("</svg>"));
    for name in [
        "live.presence.callbacks",
        "live.http.streams",
        "memory.resident_bytes",
        "delivered.presence.callbacks",
        "count.http.status.409",
        "live.*",
        "count.http.status.* (per second)",
        "growth live.presence.callbacks",
    ] {
        assert!(text.contains(name), "{name} missing from the SVG");
    }

    // --series narrows the panels.
    let only = d.join("only.svg");
    let out = leakwatch(&["plot", arg(&rec), "-o", arg(&only), "--series", "memory.*"]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&only).unwrap();
    assert!(text.contains("memory.resident_bytes"));
    assert!(!text.contains("live.http.streams"));

    let png = d.join("leaks.png");
    let out = leakwatch(&[
        "plot",
        arg(&rec),
        "-o",
        arg(&png),
        "--width",
        "900",
        "--height",
        "700",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
    // IHDR: width and height as asked.
    assert_eq!(&bytes[16..24], &[0, 0, 3, 132, 0, 0, 2, 188]);

    // A file name the tool cannot write is a usage error (exit status 2, as README says),
    // refused before the input is read.
    let out = leakwatch(&["plot", arg(&rec), "-o", arg(&d.join("x.gif"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".svg or .png"));
}

/// `--graphite`: a one-shot stand-in for graphite-web's render API on a loopback port.
#[test]
fn graphite_fleet_history() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    const T0: u64 = STARTED_AT_MS / 1000;
    let series = |host: &str, leak: bool| {
        let points: Vec<Value> = (0..720u32)
            .map(|i| {
                let base = 400.0 + 4.0 * noise(i, u64::from(leak));
                let leaked = if leak {
                    f64::from(i.saturating_sub(180)) / 2.0
                } else {
                    0.0
                };
                // Graphite leaves holes: every 97th point is null.
                let v = if i % 97 == 5 {
                    Value::Null
                } else {
                    json!((base + leaked).round())
                };
                json!([v, T0 + 10 * u64::from(i)])
            })
            .collect();
        json!({"target": format!("stats.gauges.app.{host}.leakwatch.live.presence.callbacks"), "datapoints": points})
    };
    let body = json!([series("web1", true), series("web2", false)]).to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request_line = String::new();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        request_line
    });
    let url = format!("http://127.0.0.1:{port}");
    let found = findings(&[
        "--graphite",
        &url,
        "--target",
        "stats.gauges.app.*.leakwatch.live.*",
        "--from",
        "-2h",
    ]);
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /render?"), "{request}");
    assert!(request.contains("format=json"), "{request}");
    let leaking = "stats.gauges.app.web1.leakwatch.live.presence.callbacks";
    assert_eq!(about(&found, "growth", leaking).len(), 1, "{found:#?}");
    assert_eq!(found.len(), 1, "web2 is healthy: {found:#?}");
    // Graphite time is Unix time: `at` is a Unix second and `at_time` its UTC date.
    let at = found[0]["at"].as_f64().unwrap();
    assert!(
        at > T0 as f64 + 1800.0 && at < T0 as f64 + 7200.0,
        "at = {at}"
    );
    assert!(
        found[0]["at_time"]
            .as_str()
            .unwrap()
            .starts_with("2025-11-24T1")
    );
}

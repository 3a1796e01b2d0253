//! Misconfiguration is said, not silent: a webhook that can never deliver is refused at
//! start, rules that watch nothing are logged, alerts logged without a `tracing` subscriber
//! reach stderr, and alerts abandoned when a watchdog stops behind a slow hook are counted.
//!
//! Tests that read stderr re-run this test binary as a child process (`LEAKWATCH_CHILD`
//! names the scenario), so the output checked is exactly what a program would print, and no
//! other test's output mixes in.

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leakwatch::watchdog::{WatchdogError, WebhookHook};
use leakwatch::{Callbacks, DivergenceRule, Registry, Scope, Token, Watchdog};

#[test]
fn webhooks_that_can_never_deliver_are_refused_at_start() {
    let start = |url: &str| {
        Watchdog::builder()
            .registry(&Registry::new())
            .webhook(url)
            .start()
    };
    for (url, why) in [
        ("not a url", "not a URL"),
        ("https://alerts.example/hook", "TLS"),
        ("ftp://127.0.0.1/x", "ftp"),
        ("127.0.0.1:9000/alerts", "write http://host:port/path"),
    ] {
        match start(url) {
            Err(e @ WatchdogError::Webhook { .. }) => {
                let text = e.to_string();
                assert!(text.contains(url), "{text}");
                assert!(text.contains(why), "{url}: {text}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // A configured hook is checked too, and a good URL starts.
    let bad = Watchdog::builder()
        .registry(&Registry::new())
        .webhook_hook(WebhookHook::new("https://x/").retries(0))
        .start();
    assert!(matches!(bad, Err(WatchdogError::Webhook { .. })));
    start("http://127.0.0.1:9/alerts")
        .expect("a plain http URL starts")
        .stop();
}

/// Runs the scenario `name` in a child copy of this test binary; returns its stderr.
fn child_stderr(test: &str, name: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("LEAKWATCH_CHILD", name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {name} failed: {stderr}");
    stderr
}

/// Whether this process is the child running `name`.
fn child(name: &str) -> bool {
    std::env::var("LEAKWATCH_CHILD").is_ok_and(|v| v == name)
}

#[test]
fn log_alerts_without_a_subscriber_go_to_stderr() {
    if child("log") {
        let reg = Registry::new();
        let wd = Watchdog::builder()
            .registry(&reg)
            .interval(Duration::from_millis(5))
            .log_alerts()
            .start()
            .unwrap();
        let scope = Scope::builder("conn").registry(&reg).open();
        scope.close();
        let cbs = Callbacks::<u32>::new_in(&reg, "presence.callbacks");
        assert!(cbs.register_in(&scope, |_| {}).is_err());
        wd.stop();
        return;
    }
    let stderr = child_stderr("log_alerts_without_a_subscriber_go_to_stderr", "log");
    assert!(
        stderr.contains("leakwatch: firing late_registration presence.callbacks:"),
        "{stderr}"
    );
}

#[test]
fn rules_that_watch_nothing_are_logged_once_after_the_warmup() {
    if child("unmatched") {
        let reg = Registry::new();
        let _streams = Token::new_in(&reg, "http.streams");
        let (tx, rx) = mpsc::channel();
        let mut ticks = 0;
        let wd = Watchdog::builder()
            .registry(&reg)
            .interval(Duration::from_millis(1))
            .tick_seconds(1.0)
            .divergence(DivergenceRule::new(
                "live.presence.calbacks",
                "live.http.streams",
            ))
            .on_sample(move |_| {
                ticks += 1;
                if ticks == 150 {
                    let _ = tx.send(());
                }
            })
            .start()
            .unwrap();
        rx.recv_timeout(Duration::from_secs(120))
            .expect("150 ticks");
        wd.stop();
        return;
    }
    let stderr = child_stderr(
        "rules_that_watch_nothing_are_logged_once_after_the_warmup",
        "unmatched",
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("watch no series"))
        .collect();
    assert_eq!(lines.len(), 1, "once: {stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("leakwatch: after 60 s, 1 rule(s)"),
        "{line}"
    );
    assert!(
        line.contains("live.presence.calbacks never appeared"),
        "{line}"
    );
    assert!(line.contains("Series that exist: "), "{line}");
    assert!(line.contains("live.http.streams"), "{line}");
}

#[test]
fn alerts_abandoned_behind_a_slow_hook_at_stop_are_counted() {
    let reg = Registry::new();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (got_tx, got_rx) = mpsc::channel::<String>();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(5))
        .hook(move |a: &leakwatch::Alert| {
            let _ = got_tx.send(a.name.clone());
            // The first alert holds the hook until the test lets it go.
            let _ = release_rx.recv();
        })
        .start()
        .unwrap();
    // 200 late registrations on 200 scopes: 200 distinct one-shot alerts, queued at once.
    let cbs = Callbacks::<u32>::new_in(&reg, "presence.callbacks");
    for i in 0..200 {
        let scope = Scope::builder(&format!("conn{i}")).registry(&reg).open();
        scope.close();
        assert!(cbs.register_in(&scope, |_| {}).is_err());
    }
    let first = got_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the hook got an alert");
    assert_eq!(first, "conn0");
    wd.stop();
    let count = |name: &str| reg.snapshot().get(name).map_or(0, |s| s.created);
    // The one alert in the hook's hands is not abandoned; the 199 behind it are.
    assert_eq!(count("leakwatch.hook.dropped"), 199);
    release_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("leakwatch.hook.delivered") < 1 {
        assert!(Instant::now() < deadline, "the held alert completes");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Nothing was delivered after the stop besides the held alert: the hook thread ended.
    assert!(got_rx.recv_timeout(Duration::from_millis(200)).is_err());
    assert_eq!(count("leakwatch.hook.delivered"), 1);
    assert_eq!(count("leakwatch.hook.dropped"), 199);
}

/// StatsD pointed at a port where nothing listens: the refusals the socket reports are
/// counted (`count.statsd.refused`), and the lines of refused sends as dropped.
#[cfg(all(feature = "statsd", any(target_os = "linux", target_os = "android")))]
#[test]
fn statsd_refusals_from_a_port_without_a_daemon_are_counted() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = Registry::new();
    let _watch = Token::new_in(&reg, "presence.Watch");
    let exporter = leakwatch::statsd::StatsdExporter::builder(&format!("127.0.0.1:{port}"))
        .prefix("app")
        .instance("web-1")
        .registry(&reg)
        .build()
        .unwrap();
    let count = |name: &str| reg.snapshot().get(name).map_or(0, |s| s.created);
    // Each export sends at least one datagram; the ICMP answer to one makes a later send
    // fail. A deadline instead of a fixed number of rounds: the kernel answers at its pace.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("statsd.refused") == 0 {
        assert!(Instant::now() < deadline, "no refusal counted");
        let _new = Token::new_in(&reg, "jobs");
        exporter.export(&reg.snapshot());
        assert!(exporter.flush(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(count("statsd.dropped") > 0, "the refused lines are dropped");
}

/// A recording says which metrics are gauges and which counters: those that exist at start
/// in its header, later ones before their first value, so readers need not guess by name.
#[test]
fn recordings_declare_gauges_and_counters() {
    use leakwatch::MetricKind;
    use leakwatch::recording::RecordingReader;
    let path = std::env::temp_dir().join(format!("leakwatch-kinds-{}.jsonl", std::process::id()));
    let reg = Registry::new();
    let _streams = Token::new_in(&reg, "http.streams");
    let (tx, rx) = mpsc::channel();
    let mut ticks = 0;
    let r2 = reg.clone();
    let mut later = Vec::new();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .record(&path)
        .on_sample(move |_| {
            ticks += 1;
            if ticks == 3 {
                later.push(Token::new_in(&r2, "jobs"));
            }
            if ticks == 10 {
                let _ = tx.send(());
            }
        })
        .start()
        .unwrap();
    rx.recv_timeout(Duration::from_secs(60)).expect("10 ticks");
    wd.stop();
    let mut reader = RecordingReader::open(&path).unwrap();
    let header = reader.header().clone();
    assert_eq!(
        header.kinds.get("live.http.streams"),
        Some(&MetricKind::Gauge)
    );
    assert_eq!(
        header.kinds.get("created.http.streams"),
        Some(&MetricKind::Counter)
    );
    assert_eq!(
        header.kinds.get("live.jobs"),
        None,
        "created after the start"
    );
    let mut seen_jobs = false;
    // Not a `for` loop: the reader is asked for kinds between lines.
    #[allow(clippy::while_let_on_iterator)]
    while let Some(r) = reader.next() {
        if let leakwatch::recording::Record::Tick { values, .. } = r.unwrap()
            && values.contains_key("live.jobs")
            && !seen_jobs
        {
            seen_jobs = true;
            // Declared by the line that first carries a value.
            assert_eq!(reader.kind("live.jobs"), Some(MetricKind::Gauge));
            assert_eq!(reader.kind("dropped.jobs"), Some(MetricKind::Counter));
        }
    }
    assert!(seen_jobs);
    let _ = std::fs::remove_file(&path);
}

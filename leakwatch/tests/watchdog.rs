//! The watchdog fed with known series: what fires, what resolves, what never fires, and that
//! broken hooks cannot stop it.
//!
//! Workloads are driven from an `on_sample` consumer, which runs on the watchdog thread once
//! per tick, so each tick sees exactly the counts the scenario intends regardless of how the
//! machine schedules threads. `tick_seconds(1.0)` makes every 1 ms tick count as one second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use leakwatch::recording::{Record, RecordingReader};
use leakwatch::{Alert, AlertRule, AlertState, DivergenceRule, Registry, Scope, Token, Watchdog};

/// A tiny deterministic noise source (xorshift), so scenarios are reproducible.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1000) as f64 / 1000.0
    }
}

/// Keeps `n` tokens of `name` alive.
fn set_level(tokens: &mut Vec<Token>, reg: &Registry, name: &str, n: usize) {
    tokens.truncate(n);
    while tokens.len() < n {
        tokens.push(Token::new_in(reg, name));
    }
}

fn channel_hook() -> (impl FnMut(&Alert) + Send + 'static, mpsc::Receiver<Alert>) {
    let (tx, rx) = mpsc::channel();
    (move |a: &Alert| drop(tx.send(a.clone())), rx)
}

fn wait_for(rx: &mpsc::Receiver<Alert>, secs: u64, pred: impl Fn(&Alert) -> bool) -> Option<Alert> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(a) if pred(&a) => return Some(a),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn growth_fires_on_a_leak_and_not_on_a_steady_series() {
    let reg = Registry::new();
    let (hook, rx) = channel_hook();
    let (mut leaky, mut steady) = (Vec::new(), Vec::new());
    let mut noise = Noise(7);
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .hook(hook)
        .on_sample(move |_| {
            tick += 1;
            // Steady for 15 minutes (past the detector's warm-up), then a leak of 2% of the
            // baseline per minute on top of the noise.
            let leaked = tick.saturating_sub(900) as f64 * 4.0 / 60.0;
            let leak = 200.0 + leaked + 6.0 * noise.next();
            let flat = 200.0 + 6.0 * noise.next();
            set_level(&mut leaky, &r2, "leaky", leak as usize);
            set_level(&mut steady, &r2, "steady", flat as usize);
        })
        .start()
        .unwrap();
    let alert = wait_for(&rx, 60, |a| a.series == "live.leaky").expect("growth alert on the leak");
    assert_eq!(alert.rule, AlertRule::Growth);
    assert_eq!(alert.state, AlertState::Firing);
    assert!(alert.slope_per_sec.unwrap() > 0.0);
    assert!(
        alert.at > 900.0 && alert.at <= 900.0 + 600.0,
        "2%/min leak starting at t=900 should be found within 10 simulated minutes, was {}",
        alert.at
    );
    assert!(
        alert
            .hint
            .iter()
            .any(|s| s.location.contains("watchdog.rs")),
        "hint names the creation site: {:?}",
        alert.hint
    );
    assert!(wd.active_alerts().iter().any(|a| a.series == "live.leaky"));
    assert!(!wd.history("live.leaky").is_empty());
    wd.stop();
    assert!(
        rx.try_iter().all(|a| a.series != "live.steady"),
        "no alert on a steady series"
    );
}

#[test]
fn divergence_fires_then_resolves() {
    let reg = Registry::new();
    let (hook, rx) = channel_hook();
    let (mut callbacks, mut streams) = (Vec::new(), Vec::new());
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .default_growth(false)
        .growth(leakwatch::GrowthRule::new(leakwatch::Selector::none()))
        .divergence(
            DivergenceRule::new("live.presence.callbacks", "live.http.streams")
                .sustain(Duration::from_secs(30)),
        )
        .hook(hook)
        .on_sample(move |_| {
            tick += 1;
            let n = 100;
            // Callbacks leak from t=100 to t=300, then the leak is cleaned up.
            let extra = if (100..300).contains(&tick) { 50 } else { 0 };
            set_level(&mut streams, &r2, "http.streams", n);
            set_level(&mut callbacks, &r2, "presence.callbacks", n + extra);
        })
        .start()
        .unwrap();
    let fired = wait_for(&rx, 60, |a| a.rule == AlertRule::Divergence).expect("divergence fired");
    assert_eq!(fired.state, AlertState::Firing);
    assert_eq!(fired.series, "live.presence.callbacks");
    assert!(
        fired.at >= 130.0,
        "sustained 30 s before firing: {}",
        fired.at
    );
    let resolved = wait_for(&rx, 60, |a| a.rule == AlertRule::Divergence).expect("resolved");
    assert_eq!(resolved.state, AlertState::Resolved);
    assert!(resolved.at >= 300.0);
    wd.stop();
}

#[test]
fn panicking_and_hanging_hooks_do_not_stop_sampling() {
    let reg = Registry::new();
    let (hook, rx) = channel_hook();
    let scope = Scope::builder("conn").registry(&reg).open();
    scope.close();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(2))
        .cooldown(Duration::ZERO)
        .hook(|_: &Alert| panic!("a buggy hook"))
        .hook(|_: &Alert| std::thread::sleep(Duration::from_secs(3600)))
        .hook(hook)
        .start()
        .unwrap();
    for _ in 0..3 {
        assert!(scope.token("late").is_err());
    }
    for _ in 0..3 {
        wait_for(&rx, 10, |a| a.rule == AlertRule::LateRegistration)
            .expect("healthy hook still served");
    }
    // A deadline, not a fixed sleep: a loaded machine may not schedule the 2 ms tick soon.
    let before = wd.ticks();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wd.ticks() <= before {
        assert!(std::time::Instant::now() < deadline, "sampling continues");
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reg
        .snapshot()
        .get("leakwatch.hook.panics")
        .map_or(0, |s| s.created)
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "panics counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The hung hook's queue (256) fills up: further alerts to it are dropped and counted.
    for _ in 0..300 {
        assert!(scope.token("late").is_err());
    }
    let dropped = reg
        .snapshot()
        .get("leakwatch.hook.dropped")
        .map_or(0, |s| s.created);
    assert!(dropped >= 40, "drops to the hung hook counted: {dropped}");
    // Stopping does not wait for the hung hook forever (it gives hooks HOOK_DRAIN, 1 s): it
    // returns. The deadline, far above that, only turns a hang into a failure.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(wd);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("stopping a watchdog with a hung hook returns");
}

#[test]
fn scope_findings_become_alerts_at_once() {
    let reg = Registry::new();
    let (hook, rx) = channel_hook();
    // An hour between ticks: anything that arrives came without waiting for one.
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_secs(3600))
        .hook(hook)
        .start()
        .unwrap();
    let scope = Scope::builder("stream")
        .registry(&reg)
        .grace(Duration::from_millis(20))
        .open();
    let kept = scope.token("presence.relay").unwrap();
    scope.close();
    let _ = scope.token("presence.relay");
    let late = wait_for(&rx, 5, |a| a.rule == AlertRule::LateRegistration).expect("late alert");
    assert_eq!(late.series, "presence.relay");
    assert!(late.hint[0].location.contains("watchdog.rs"));
    let outlived = wait_for(&rx, 5, |a| a.rule == AlertRule::Outlived).expect("outlived alert");
    assert_eq!(outlived.name, "stream");
    assert_eq!(wd.ticks(), 0);
    drop(kept);
    wd.stop();
}

/// Accepts `n` HTTP requests on 127.0.0.1 and sends each JSON body down a channel.
fn http_sink(n: usize) -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .unwrap();
            tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
        }
    });
    (url, rx)
}

#[test]
fn webhook_posts_firing_and_resolved_alerts_as_json() {
    let (url, bodies) = http_sink(2);
    let reg = Registry::new();
    let mut tokens = Vec::new();
    let mut tick = 0usize;
    let r2 = reg.clone();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .growth(leakwatch::GrowthRule::new(leakwatch::Selector::none()))
        .ceiling(leakwatch::CeilingRule::absolute(
            leakwatch::Selector::exact("live.queue").unwrap(),
            50.0,
        ))
        .webhook(url)
        .on_sample(move |_| {
            tick += 1;
            let n = if (50..100).contains(&tick) { 80 } else { 10 };
            set_level(&mut tokens, &r2, "queue", n);
        })
        .start()
        .unwrap();
    let first = bodies.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first["rule"], "ceiling");
    assert_eq!(first["series"], "live.queue");
    assert_eq!(first["state"], "firing");
    let second = bodies.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(second["state"], "resolved");
    wd.stop();
}

#[test]
fn unreachable_webhook_is_counted_not_fatal() {
    // A port nobody listens on: connection refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = Registry::new();
    let scope = Scope::builder("s").registry(&reg).open();
    scope.close();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(5))
        .webhook_hook(
            leakwatch::watchdog::WebhookHook::new(format!("http://127.0.0.1:{port}/x"))
                .retries(1)
                .backoff(Duration::from_millis(1))
                .timeout(Duration::from_millis(200)),
        )
        .start()
        .unwrap();
    let _ = scope.token("late");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failed = reg
            .snapshot()
            .get("leakwatch.webhook.failed")
            .map_or(0, |s| s.created);
        if failed == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "failure counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The failed deliveries never held up sampling.
    while wd.ticks() < 3 {
        assert!(std::time::Instant::now() < deadline, "sampling continues");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn webhook_failures_count_in_a_registry_set_after_the_webhook() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = Registry::new();
    let scope = Scope::builder("s").registry(&reg).open();
    scope.close();
    let wd = Watchdog::builder()
        .webhook_hook(
            leakwatch::watchdog::WebhookHook::new(format!("http://127.0.0.1:{port}/x"))
                .retries(0)
                .timeout(Duration::from_millis(200)),
        )
        .registry(&reg)
        .interval(Duration::from_millis(5))
        .start()
        .unwrap();
    let _ = scope.token("late");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reg
        .snapshot()
        .get("leakwatch.webhook.failed")
        .map_or(0, |s| s.created)
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "failure counted in the watched registry"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wd.stop();
}

#[test]
fn recording_has_header_ticks_and_alerts() {
    let dir = std::env::temp_dir().join(format!("leakwatch-wd-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rec.jsonl");
    let reg = Registry::new();
    let _t = Token::new_in(&reg, "kept");
    let scope = Scope::builder("s").registry(&reg).open();
    scope.close();
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(2))
        .record(&path)
        .start()
        .unwrap();
    let _ = scope.token("late");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while wd.ticks() < 5 {
        assert!(std::time::Instant::now() < deadline, "ticks happen");
        std::thread::sleep(Duration::from_millis(2));
    }
    wd.stop();
    let reader = RecordingReader::open(&path).unwrap();
    assert_eq!(reader.header().version, 1);
    assert_eq!(reader.header().interval_ms, 2);
    let records: Vec<Record> = reader.map(Result::unwrap).collect();
    let ticks: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Tick { t, values } => Some((*t, values.clone())),
            _ => None,
        })
        .collect();
    assert!(ticks.len() >= 5);
    assert_eq!(ticks[0].1["live.kept"], 1.0);
    assert!(ticks.windows(2).all(|w| w[1].0 > w[0].0), "t increases");
    assert!(records.iter().any(|r| matches!(r,
        Record::Alert { alert, .. } if alert["rule"] == "late_registration" && alert["state"] == "firing")));
}

#[test]
fn simulated_time_counts_samples_even_when_ticks_overrun() {
    // Every tick takes 5 ms against a 1 ms interval (a loaded machine): the watchdog skips
    // the missed deadlines, but with `tick_seconds` each sample is still one simulated second,
    // so scenarios driven per sample see the time they expect.
    let dir = std::env::temp_dir().join(format!("leakwatch-wd-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rec.jsonl");
    let reg = Registry::new();
    let _t = Token::new_in(&reg, "kept");
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .tick_seconds(1.0)
        .on_sample(|_| std::thread::sleep(Duration::from_millis(5)))
        .record(&path)
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while wd.ticks() < 10 {
        assert!(std::time::Instant::now() < deadline, "ticks happen");
        std::thread::sleep(Duration::from_millis(5));
    }
    wd.stop();
    let ts: Vec<f64> = RecordingReader::open(&path)
        .unwrap()
        .filter_map(|r| match r.unwrap() {
            Record::Tick { t, .. } => Some(t),
            Record::Alert { .. } => None,
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ts.len() >= 10);
    let expected: Vec<f64> = (1..=ts.len()).map(|n| n as f64).collect();
    assert_eq!(ts, expected, "one simulated second per sample");
}

#[test]
fn tick_seconds_must_be_positive_and_finite() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = Watchdog::builder()
            .registry(&Registry::new())
            .tick_seconds(bad)
            .start()
            .expect_err("invalid tick_seconds refused");
        assert!(e.to_string().contains("tick_seconds"), "{e}");
    }
}

/// Sends on `tx` when dropped: tells a test that whatever owned it was dropped.
struct DropSignal(mpsc::Sender<&'static str>, &'static str);
impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

#[test]
fn a_sample_consumer_may_drop_the_watchdog() {
    let reg = Registry::new();
    let slot: std::sync::Arc<std::sync::Mutex<Option<Watchdog>>> = Default::default();
    let (tx, rx) = mpsc::channel();
    let (slot2, consumer_gone) = (slot.clone(), DropSignal(tx.clone(), "consumer"));
    let hook_gone = DropSignal(tx, "hook");
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(1))
        .hook(move |_: &Alert| {
            let _ = &hook_gone;
        })
        .on_sample(move |_| {
            let _ = &consumer_gone;
            // Runs on the watchdog thread: dropping the watchdog here must not join itself.
            let taken = slot2.lock().unwrap().take();
            drop(taken);
        })
        .start()
        .unwrap();
    *slot.lock().unwrap() = Some(wd);
    // The consumer is dropped with the sampler at the end of the thread, the hook when its
    // queue is closed: both happen only if the thread really ended.
    let mut gone = Vec::new();
    while gone.len() < 2 {
        gone.push(
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the watchdog thread ended and its hooks were shut down"),
        );
    }
    gone.sort_unstable();
    assert_eq!(gone, ["consumer", "hook"]);
    let panics = reg
        .snapshot()
        .get("leakwatch.sample_consumer.panics")
        .map_or(0, |s| s.created);
    assert_eq!(
        panics, 0,
        "dropping the watchdog from its own thread panicked"
    );
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn the_interval_must_be_at_most_a_day() {
    let start = |interval| {
        Watchdog::builder()
            .registry(&Registry::new())
            .interval(interval)
            .start()
    };
    for bad in [
        Duration::MAX,
        leakwatch::watchdog::MAX_INTERVAL + Duration::from_nanos(1),
    ] {
        let e = start(bad).expect_err("a huge interval is refused, not a panic later");
        assert!(e.to_string().contains("at most one day"), "{e}");
    }
    assert!(start(Duration::ZERO).is_err());
    // The longest accepted interval runs and stops at once.
    start(leakwatch::watchdog::MAX_INTERVAL).unwrap().stop();
}

#[test]
fn consumers_see_a_last_snapshot_when_the_watchdog_stops() {
    let reg = Registry::new();
    let (tx, rx) = mpsc::channel();
    // No tick within the test: whatever the consumer sees comes from the stop.
    let wd = Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_secs(3600))
        .on_sample(move |s| {
            let _ = tx.send(s.get("late").map_or(0, |s| s.live));
        })
        .start()
        .unwrap();
    let t = Token::new_in(&reg, "late");
    wd.stop();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
    drop(t);
}

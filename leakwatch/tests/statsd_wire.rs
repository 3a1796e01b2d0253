//! The StatsD exporter's wire format and behaviour, against an in-process UDP receiver on
//! 127.0.0.1: exact lines for gauges, counters (deltas), tags, sanitised names, alerts and
//! the program's own `metrics`; shutdown flush; a daemon that is down; a full queue.
#![cfg(feature = "statsd")]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use leakwatch::statsd::{AlertState, StatsdExporter, StatsdExporterBuilder};
use leakwatch::{EventCounter, Registry, Token};

/// A StatsD daemon stand-in: collects every line it receives.
struct Receiver {
    sock: UdpSocket,
}

impl Receiver {
    fn new() -> Receiver {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // As large a receive buffer as the kernel allows (it caps the request at
        // net.core.rmem_max): on a loaded machine the reading thread can be off the CPU long
        // enough for the default one to overflow, and a lost datagram fails exact sums.
        let want: libc::c_int = 8 << 20;
        // SAFETY: a valid socket and a c_int option of the size passed.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Receiver { sock }
    }

    fn addr(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// Every line received until nothing arrived for `quiet`; fails if lines keep coming for
    /// a minute (a sender that never stops would otherwise hang the test).
    fn lines(&self, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            assert!(
                Instant::now() < deadline,
                "lines still arriving after 60 s: {} so far",
                out.len()
            );
            if let Ok(n) = self.sock.recv(&mut buf) {
                let text = std::str::from_utf8(&buf[..n]).unwrap();
                out.extend(text.split('\n').filter(|l| !l.is_empty()).map(String::from));
                last = Instant::now();
            }
        }
        out
    }
}

const QUIET: Duration = Duration::from_millis(300);

/// The exporter every test here uses, before `build` (for tests that change a setting).
fn builder(rx: &Receiver, reg: &Registry) -> StatsdExporterBuilder {
    StatsdExporter::builder(&rx.addr())
        .prefix("app")
        .instance("web-1")
        .registry(reg)
}

fn exporter(rx: &Receiver, reg: &Registry) -> StatsdExporter {
    builder(rx, reg).build().unwrap()
}

#[test]
fn gauges_are_set_and_counters_are_deltas() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let a = Token::new_in(&reg, "presence.Watch");
    let b = Token::new_in(&reg, "presence.Watch");
    let _odd = Token::new_in(&reg, "weird name<T>");
    let conflicts = EventCounter::new_in(&reg, "http.status.409");
    conflicts.add(3);

    exp.export(&reg.snapshot());
    assert!(exp.flush(Duration::from_secs(2)));
    let first = rx.lines(QUIET);
    let p = "app.web-1.leakwatch";
    let expect_first: Vec<String> = [
        "count.http.status.409:3|c",
        "live.presence.Watch:2|g",
        "peak.presence.Watch:2|g",
        "created.presence.Watch:2|c",
        "dropped.presence.Watch:0|c",
        "count.statsd.dropped:0|c",
        "live.weird_name_T_:1|g",
        "peak.weird_name_T_:1|g",
        "created.weird_name_T_:1|c",
        "dropped.weird_name_T_:0|c",
    ]
    .iter()
    .map(|l| format!("{p}.{l}"))
    .collect();
    assert_eq!(first, expect_first);

    // Second export: only what changed, counters as deltas, the live gauge set (never -1).
    drop(a);
    conflicts.incr();
    exp.export(&reg.snapshot());
    exp.flush(Duration::from_secs(2));
    let second = rx.lines(QUIET);
    assert_eq!(
        second,
        vec![
            format!("{p}.count.http.status.409:1|c"),
            format!("{p}.live.presence.Watch:1|g"),
            format!("{p}.dropped.presence.Watch:1|c"),
        ]
    );

    // Nothing changed: nothing sent.
    exp.export(&reg.snapshot());
    exp.flush(Duration::from_secs(2));
    assert_eq!(rx.lines(QUIET), Vec::<String>::new());
    drop(b);
    assert_eq!(exp.key_for("live.a b"), "app.web-1.leakwatch.live.a_b");
    assert_eq!(exp.leakwatch_prefix(), "app.web-1.leakwatch");
}

#[test]
fn tags_alerts_and_events() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = StatsdExporter::builder(&rx.addr())
        .prefix("my app.eu")
        .instance("host.example.com")
        .tag("env", "dev")
        .tag("bad key", "a|b,c")
        .events(true)
        .registry(&reg)
        .build()
        .unwrap();
    let _t = Token::new_in(&reg, "jobs");
    exp.export(&reg.snapshot());
    exp.alert(
        "growth",
        "jobs",
        AlertState::Firing,
        "live grew 10/min\nfor 5 min",
    );
    exp.alert("growth", "jobs", AlertState::Resolved, "back to normal");
    exp.flush(Duration::from_secs(2));
    let lines = rx.lines(QUIET);
    let p = "my_app.eu.host_example_com.leakwatch";
    let tags = "|#env:dev,bad_key:a_b_c";
    assert_eq!(
        lines,
        vec![
            format!("{p}.live.jobs:1|g{tags}"),
            format!("{p}.peak.jobs:1|g{tags}"),
            format!("{p}.created.jobs:1|c{tags}"),
            format!("{p}.dropped.jobs:0|c{tags}"),
            format!("{p}.count.statsd.dropped:0|c{tags}"),
            format!("{p}.alerts.growth:1|c{tags}"),
            format!(
                "_e{{29,27}}:leakwatch growth firing: jobs|live grew 10/min\\nfor 5 min|t:error|s:leakwatch{tags},rule:growth,series:jobs"
            ),
            format!(
                "_e{{31,14}}:leakwatch growth resolved: jobs|back to normal|t:success|s:leakwatch{tags},rule:growth,series:jobs"
            ),
        ]
    );
}

#[test]
fn the_programs_own_metrics_share_the_pipeline() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let tagged = exp.metrics_recorder();
    let named = exp.metrics_recorder().labels_in_name();
    metrics::with_local_recorder(&tagged, || {
        metrics::counter!("messages.delivered").increment(2);
        metrics::counter!("messages.delivered").increment(3);
        metrics::counter!("http.status", "code" => "409").increment(1);
        let g = metrics::gauge!("queue.depth");
        g.set(5.0);
        g.increment(2.0); // dropped by metrics-exporter-statsd; kept here
        g.decrement(1.0);
        metrics::gauge!("balance").set(-4.5);
        metrics::histogram!("latency").record(0.025);
        metrics::describe_histogram!("size", metrics::Unit::Bytes, "payload");
        metrics::histogram!("size").record(512.0);
    });
    metrics::with_local_recorder(&named, || {
        metrics::counter!("http.status", "code" => "200").absolute(7);
    });
    // Lines go out on tick (or flush), not per update.
    exp.flush(Duration::from_secs(2));
    let mut lines = rx.lines(QUIET);
    lines.sort();
    let mut expect = vec![
        "app.web-1.messages.delivered:5|c",
        "app.web-1.http.status:1|c|#code:409",
        "app.web-1.http.status.200:7|c",
        "app.web-1.queue.depth:6|g",
        "app.web-1.balance:0|g",
        "app.web-1.balance:-4.5|g",
        "app.web-1.latency:25|ms",
        "app.web-1.size:512|ms",
    ];
    expect.sort();
    assert_eq!(lines, expect);
    // The negative gauge is set through 0 first: the order matters.
    // A tick sends the leakwatch series and only the changed user values.
    metrics::with_local_recorder(&tagged, || {
        metrics::counter!("messages.delivered").increment(1);
    });
    exp.tick();
    exp.flush(Duration::from_secs(2));
    let lines = rx.lines(QUIET);
    assert!(
        lines.contains(&"app.web-1.messages.delivered:1|c".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"app.web-1.leakwatch.count.statsd.dropped:0|c".to_string()));
    assert!(
        !lines.iter().any(|l| l.contains("http.status")),
        "{lines:?}"
    );
}

#[test]
fn dropping_the_exporter_flushes_everything() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let tokens: Vec<Token> = (0..300)
        .map(|i| Token::new_in(&reg, &format!("kind{i}")))
        .collect();
    {
        // A short-lived program: export once, exit without an explicit flush.
        let exp = exporter(&rx, &reg);
        let stats = exp.export(&reg.snapshot());
        assert_eq!(stats.queued, 300 * 4 + 1);
    }
    let lines = rx.lines(QUIET);
    assert_eq!(lines.len(), 300 * 4 + 1);
    assert!(lines.contains(&"app.web-1.leakwatch.live.kind299:1|g".to_string()));
    drop(tokens);
}

#[test]
fn spawned_export_runs_and_flushes_on_stop() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let handle = exp.spawn(Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(100));
    let t = Token::new_in(&reg, "late");
    // Stop right away: the last tick must still carry `late`.
    assert!(handle.stop(Duration::from_secs(2)));
    let lines = rx.lines(QUIET);
    assert!(
        lines.contains(&"app.web-1.leakwatch.live.late:1|g".to_string()),
        "{lines:?}"
    );
    drop(t);
}

#[test]
fn a_daemon_that_is_down_costs_nothing_and_drops_are_counted() {
    // A port nobody listens on.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let reg = Registry::new();
    let _tokens: Vec<Token> = (0..500)
        .map(|i| Token::new_in(&reg, &format!("s{i}")))
        .collect();
    let exp = StatsdExporter::builder(&closed.to_string())
        .instance("x")
        .registry(&reg)
        .queue_capacity(16)
        .datagram_size(64) // ~2 lines per queue entry
        .max_lines_per_second(1000) // a slow sender, so the small queue fills
        .build()
        .unwrap();
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let snap = reg.snapshot();
        let t0 = Instant::now();
        let stats = exp.export(&snap);
        slowest = slowest.max(t0.elapsed());
        refused += stats.refused as u64;
    }
    assert!(refused > 1000, "refused {refused}");
    // Besides the queue's refusals, sends the socket refused (the kernel heard "port
    // unreachable", Linux) drop their lines too, and are counted as `statsd.refused`.
    let socket_refusals = reg
        .snapshot()
        .get("statsd.refused")
        .map_or(0, |s| s.created);
    assert!(exp.dropped() >= refused);
    assert_eq!(exp.dropped() > refused, socket_refusals > 0);
    assert_eq!(
        reg.snapshot().get("statsd.dropped").unwrap().created,
        exp.dropped()
    );
    // Refusing instead of waiting is what `refused` shows; how fast is the statsd bench's
    // ("slowest export call"), not asserted here.
    println!("slowest export {slowest:?}");
    // Alerts from any thread never block either.
    let e2 = exp.clone();
    std::thread::spawn(move || e2.alert("growth", "s1", AlertState::Firing, ""))
        .join()
        .unwrap();
    // Flush gives up after its timeout instead of hanging: it returns (a deadline far above
    // the 50 ms asked for only turns a hang into a failure; no speed is asserted).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(exp.flush(Duration::from_millis(50))));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("flush with a timeout returns");
}

#[test]
fn bad_addresses_are_reported() {
    let e = StatsdExporter::builder("no-port-here").build().unwrap_err();
    assert!(e.to_string().contains("host:port"), "{e}");
    let e = StatsdExporter::builder("127.0.0.1:8125")
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("queue_capacity"), "{e}");
}

#[test]
fn the_watchdog_drives_the_export_and_sends_its_alerts() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let _kept = Token::new_in(&reg, "jobs");
    let scope = leakwatch::Scope::builder("stream").registry(&reg).open();
    scope.close();
    let watchdog = leakwatch::Watchdog::builder()
        .registry(&reg)
        .interval(Duration::from_millis(20))
        .on_sample(exp.sampler())
        .hook(exp.clone())
        .start()
        .unwrap();
    let _ = scope.token("presence.relay"); // refused: a late_registration alert
    let deadline = Instant::now() + Duration::from_secs(30);
    while watchdog.ticks() < 3 {
        assert!(Instant::now() < deadline, "the watchdog ticks");
        std::thread::sleep(Duration::from_millis(5));
    }
    watchdog.stop();
    assert!(exp.flush(Duration::from_secs(2)));
    let lines = rx.lines(QUIET);
    let p = "app.web-1.leakwatch";
    assert!(
        lines.iter().any(|l| l == &format!("{p}.live.jobs:1|g")),
        "gauge exported on the watchdog's tick: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("{p}.alerts.late_registration:1|c")),
        "alert counted: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == &format!("{p}.late.stream:1|c")),
        "late registration counted on the scope series: {lines:?}"
    );
}

/// An exporter fed by a watchdog (which lends it the snapshot's interning) and by its own
/// reads, in turn, still sends each counter's total exactly once and ends on the true
/// level: what was sent is carried over when the ids it follows change.
#[test]
fn switching_between_the_watchdogs_snapshots_and_its_own_sends_totals_once() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let events = EventCounter::new_in(&reg, "jobs.done");
    let mut jobs: Vec<Token> = (0..3).map(|_| Token::new_in(&reg, "jobs")).collect();
    events.add(2);
    exp.tick(); // its own interning
    for round in 0..2 {
        let watchdog = leakwatch::Watchdog::builder()
            .registry(&reg)
            .interval(Duration::from_millis(10))
            .on_sample(exp.sampler())
            .start()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen < 4 {
            assert!(Instant::now() < deadline, "the watchdog ticks");
            if watchdog.ticks() > seen {
                seen = watchdog.ticks();
                jobs.push(Token::new_in(&reg, "jobs"));
                events.incr();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        watchdog.stop();
        jobs.truncate(jobs.len() - 1 - round); // some end between the two kinds of reading
        events.add(5);
        exp.tick(); // back to its own
    }
    assert!(exp.flush(Duration::from_secs(5)));
    let lines = rx.lines(QUIET);
    let p = "app.web-1.leakwatch";
    let sum = |name: &str| -> u64 {
        let prefix = format!("{p}.{name}:");
        lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix(&prefix)?
                    .strip_suffix("|c")?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let snap = reg.snapshot();
    let s = snap.get("jobs").unwrap();
    assert_eq!(sum("created.jobs"), s.created, "{lines:?}");
    assert_eq!(sum("dropped.jobs"), s.dropped, "{lines:?}");
    assert_eq!(sum("count.jobs.done"), events.get(), "{lines:?}");
    let last_live = lines
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix(&format!("{p}.live.jobs:"))?
                .strip_suffix("|g")
        })
        .unwrap();
    assert_eq!(last_live, jobs.len().to_string());
}

/// Two threads flushing at once (the watchdog's tick and an explicit flush) must not both
/// send a counter's delta. The overlap is up to the scheduler, so without serialised
/// flushes this fails most runs rather than every run.
#[test]
fn concurrent_flushes_send_each_counter_delta_once() {
    let rx = Receiver::new();
    let reg = Registry::new();
    // The flushers can queue chunks faster than the paced sender drains them; a full queue
    // would refuse (and count as dropped) what this test must see arrive. Room for every
    // chunk they can make (at most one per increment): nothing is refused.
    let exp = builder(&rx, &reg).queue_capacity(1 << 20).build().unwrap();
    let recorder = exp.metrics_recorder();
    // Many counters make each flush long enough for two of them to overlap often.
    const COUNTERS: usize = 100;
    const ROUNDS: u64 = 5_000;
    let counters: Vec<metrics::Counter> = metrics::with_local_recorder(&recorder, || {
        (0..COUNTERS)
            .map(|i| metrics::counter!(format!("jobs{i}")))
            .collect()
    });
    // Collect on a thread of its own so the socket buffer never overflows.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            loop {
                let batch = rx.lines(Duration::from_millis(100));
                if batch.is_empty() && done.load(std::sync::atomic::Ordering::Acquire) {
                    return lines;
                }
                lines.extend(batch);
            }
        })
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let flushers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        exp.flush(Duration::ZERO);
                    }
                })
            })
            .collect();
        for _ in 0..ROUNDS {
            for c in &counters {
                c.increment(1);
            }
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        for f in flushers {
            f.join().unwrap();
        }
    });
    // Paced at 100 000 lines/s, a backlog of up to 500 000 lines takes 5 s to go out: the
    // deadline only turns a hang into a failure.
    assert!(exp.flush(Duration::from_secs(60)));
    done.store(true, std::sync::atomic::Ordering::Release);
    let lines = collector.join().unwrap();
    // As f64: a delta computed from a `sent` that moved backwards wraps to ~1.8e19.
    let sent: f64 = lines
        .iter()
        .filter_map(|l| l.strip_prefix("app.web-1.jobs"))
        .map(|l| {
            let v = l.split_once(':').unwrap().1;
            v.strip_suffix("|c").unwrap().parse::<f64>().unwrap()
        })
        .sum();
    assert_eq!(exp.dropped(), 0);
    assert_eq!(
        sent,
        (COUNTERS as u64 * ROUNDS) as f64,
        "each increment reaches StatsD exactly once"
    );
}

#[test]
fn dropping_the_exporter_sends_a_paced_backlog_at_full_speed() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let tokens: Vec<Token> = (0..300)
        .map(|i| Token::new_in(&reg, &format!("kind{i}")))
        .collect();
    {
        // Paced at 100 lines/s the 1201 lines need 12 s, far past the 1 s shutdown flush:
        // pacing stays on only while the program runs on.
        let exp = builder(&rx, &reg)
            .max_lines_per_second(100)
            .build()
            .unwrap();
        assert_eq!(exp.export(&reg.snapshot()).queued, 300 * 4 + 1);
    }
    assert_eq!(rx.lines(QUIET).len(), 300 * 4 + 1);
    let dropped = reg
        .snapshot()
        .get("statsd.dropped")
        .map_or(0, |s| s.created);
    assert_eq!(dropped, 0);
    drop(tokens);
}

#[test]
fn out_of_range_settings_are_refused() {
    let rx = Receiver::new();
    let build = |b: leakwatch::statsd::StatsdExporterBuilder| b.build().map(drop);
    let e = build(StatsdExporter::builder(&rx.addr()).max_lines_per_second(0)).unwrap_err();
    assert!(e.to_string().contains("max_lines_per_second"), "{e}");
    let e = build(StatsdExporter::builder(&rx.addr()).datagram_size(65_508)).unwrap_err();
    assert!(e.to_string().contains("65507"), "{e}");
    let e = build(StatsdExporter::builder(&rx.addr()).datagram_size(63)).unwrap_err();
    assert!(e.to_string().contains("datagram_size"), "{e}");
    build(StatsdExporter::builder(&rx.addr()).datagram_size(leakwatch::statsd::MAX_DATAGRAM_SIZE))
        .unwrap();
    build(StatsdExporter::builder(&rx.addr()).max_lines_per_second(u64::MAX)).unwrap();
}

#[test]
fn a_huge_spawn_interval_is_clamped_not_a_panic() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let exp = exporter(&rx, &reg);
    let _t = Token::new_in(&reg, "kept");
    let handle = exp.spawn(Duration::MAX);
    // The thread's first tick arrives without waiting for the stop's own last export.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while !lines.contains(&"app.web-1.leakwatch.live.kept:1|g".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the export thread ticked: {lines:?}"
        );
        // Pushes out the datagram the thread's tick left in the UDP buffer; it adds no
        // leakwatch lines of its own.
        exp.flush(Duration::from_secs(1));
        lines.extend(rx.lines(Duration::from_millis(50)));
    }
    assert!(handle.stop(Duration::from_secs(2)));
}

#[test]
fn failed_sends_are_counted_per_line() {
    // Port 0 makes every send fail (EINVAL) without any network: each failed datagram's lines
    // are counted in statsd.dropped, not one per chunk.
    let reg = Registry::new();
    let _live: Vec<Token> = (0..50)
        .map(|i| Token::new_in(&reg, &format!("s{i}")))
        .collect();
    let exp = StatsdExporter::builder("127.0.0.1:0")
        .prefix("app")
        .instance("i")
        .registry(&reg)
        .datagram_size(128) // several datagrams
        .build()
        .unwrap();
    let stats = exp.export(&reg.snapshot());
    assert!(stats.queued >= 100, "{stats:?}");
    exp.flush(Duration::from_secs(5));
    let dropped = reg
        .snapshot()
        .get("statsd.dropped")
        .map(|s| s.created)
        .unwrap_or(0);
    assert_eq!(
        dropped, stats.queued as u64,
        "every line of every failed datagram"
    );
}

#[test]
fn flush_takes_any_timeout() {
    let rx = Receiver::new();
    let reg = Registry::new();
    let _t = Token::new_in(&reg, "x");
    let exp = exporter(&rx, &reg);
    exp.export(&reg.snapshot());
    // Duration::MAX is "as long as it takes", not an Instant overflow panic.
    assert!(exp.flush(Duration::MAX));
    assert!(!rx.lines(QUIET).is_empty());
}

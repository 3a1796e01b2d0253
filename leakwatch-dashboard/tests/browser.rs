//! The dashboard in a real browser: headless Chromium, driven through chromedriver by
//! fantoccini, loads the page from a tiny axum server in front of a watchdog over a workload
//! this test drives, and must show charts with data that change while traffic flows, show
//! the watchdog's divergence alert (listed and marked on every chart), request nothing from
//! outside the service, and draw series in their colour.
//!
//! Needs `chromium` and `chromedriver` (`bash scripts/install-test-deps.sh`; or set
//! `LEAKWATCH_CHROMIUM` / `LEAKWATCH_CHROMEDRIVER`). Without them it prints why and passes,
//! except under `CI`, where it fails. Set `LEAKWATCH_DASHBOARD_SCREENSHOT=file.png` to keep a
//! screenshot of the whole page.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use leakwatch::{
    Callbacks, DivergenceRule, EventCounter, GrowthRule, Selector, Subscription, Token, Watchdog,
    detect::Direction,
};
use leakwatch_dashboard::{Dashboard, Group};
use serde_json::{Value, json};

/// The whole test, browser start to screenshot; past it the test fails instead of hanging.
const BUDGET: Duration = Duration::from_secs(60);
/// One condition on the page.
const WAIT: Duration = Duration::from_secs(15);
/// The first series colour of every chart (`PALETTE[0]` in `assets/dashboard.js`).
const SERIES_COLOUR: [u8; 3] = [0x1f, 0x77, 0xb4];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let (Some(chromium), Some(chromedriver)) = (
        program(
            "LEAKWATCH_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        ),
        program("LEAKWATCH_CHROMEDRIVER", &["chromedriver"]),
    ) else {
        let why = "chromium and chromedriver not found on PATH (install them with \
                   `bash scripts/install-test-deps.sh`, or set LEAKWATCH_CHROMIUM and \
                   LEAKWATCH_CHROMEDRIVER)";
        if std::env::var_os("CI").is_some() {
            panic!("{why}; under CI the browser test must run");
        }
        // Straight to stderr: libtest hides what `eprintln!` prints in a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "skipping the dashboard browser test: {why}"
        );
        return;
    };
    let driver = Driver::start(&chromedriver);
    let outcome = tokio::time::timeout(BUDGET, run(&chromium, &driver)).await;
    drop(driver); // kills chromedriver and Chromium before reporting
    outcome.unwrap_or_else(|_| panic!("browser test took longer than {BUDGET:?}"));
}

async fn run(chromium: &Path, driver: &Driver) {
    let workload = Workload::start();
    let watchdog = Arc::new(
        Watchdog::builder()
            .interval(Duration::from_millis(100))
            .growth(GrowthRule::new(Selector::none()))
            .divergence(
                DivergenceRule::new("live.dash.callbacks", "live.dash.streams")
                    .direction(Direction::Above)
                    .sustain(Duration::from_secs(1)),
            )
            .start()
            .expect("watchdog starts"),
    );
    let wd = watchdog.clone();
    wait_plain(|| !wd.history("count.http.status.200").is_empty()).await;

    // The mount README shows, plus the pair chart the reference server adds.
    let ui = Dashboard::builder(watchdog.clone())
        .refresh(Duration::from_millis(250))
        .group(Group::exact(
            "Callbacks vs streams",
            ["live.dash.callbacks", "live.dash.streams"],
        ))
        .build()
        .expect("valid layout");
    let data = ui.clone();
    let app = axum::Router::new()
        .route(
            "/debug/leakwatch/ui",
            axum::routing::get(move || async move { ui.page() }),
        )
        .route(
            "/debug/leakwatch/ui/data",
            axum::routing::get(move |uri: axum::http::Uri| async move { data.data(uri.query()) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = driver.connect(chromium).await;
    client
        .goto(&format!("{origin}/debug/leakwatch/ui"))
        .await
        .expect("page loads");

    // After some traffic every chart shows data.
    let charts = wait_for(&client, "every chart to draw data", CHARTS, |c| {
        let c = c.as_array()?;
        (c.len() == 5 && c.iter().all(|c| c["points"].as_u64() > Some(1))).then_some(c.clone())
    })
    .await;
    let titles = eval(
        &client,
        "return Array.from(document.querySelectorAll('.chart h2')).map(h => h.textContent)",
    )
    .await;
    assert_eq!(
        titles,
        json!([
            "Memory",
            "Delivery volume",
            "HTTP status codes",
            "Live counts",
            "Callbacks vs streams"
        ])
    );
    let legends = eval(
        &client,
        "return document.querySelector('.chart[data-group=\"2\"] .legend').textContent",
    )
    .await;
    assert!(
        legends.as_str().unwrap().contains("count.http.status.200"),
        "status chart draws the status counter: {legends}"
    );

    // The charts change while traffic flows.
    let before = eval(&client, PIXELS).await;
    let delivered_before = charts[1]["points"].as_u64().unwrap();
    wait_for(&client, "every chart to change", PIXELS, |now| {
        let now = now.as_array()?;
        let changed = now.iter().zip(before.as_array()?).all(|(a, b)| a != b);
        changed.then_some(())
    })
    .await;
    let after = wait_for(&client, "more delivery points", CHARTS, |c| {
        (c[1]["points"].as_u64()? > delivered_before).then_some(c.clone())
    })
    .await;
    assert!(
        after[1]["series"].as_u64() >= Some(1),
        "delivery volume drawn"
    );

    // A leak starts: callbacks outlive their streams, the watchdog's divergence rule fires,
    // and the page lists the alert with its text and hint and marks it on every chart.
    workload.leak.store(true, Ordering::Relaxed);
    let alert = wait_for(&client, "the divergence alert on the page", ALERTS, |a| {
        let text = a.as_str()?;
        (text.contains("divergence") && text.contains("live.dash.callbacks"))
            .then(|| text.to_owned())
    })
    .await;
    assert!(
        alert.starts_with("FIRING divergence"),
        "listed as firing (badge styled in capitals): {alert}"
    );
    assert!(
        alert.contains("created at") && alert.contains("browser.rs"),
        "with the hint of where the leaked callbacks were registered: {alert}"
    );
    wait_for(&client, "the alert marked on every chart", CHARTS, |c| {
        c.as_array()?
            .iter()
            .all(|c| c["alerts"].as_u64() >= Some(1))
            .then_some(())
    })
    .await;

    // A chart's series can be chosen by pattern: the live counts chart, narrowed to streams.
    let live = client
        .find(Locator::Css(r#".chart[data-group="3"]"#))
        .await
        .expect("live counts chart");
    let find = |css| live.find(Locator::Css(css));
    find("button.choose").await.unwrap().click().await.unwrap();
    let pattern = find("input[type=text]").await.unwrap();
    pattern.clear().await.unwrap();
    pattern.send_keys("live.dash.s*").await.unwrap();
    find("button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Opening the chooser searched for the chart's own patterns first; the list must answer
    // the typed pattern (the page drops a search that a newer one overtook, so once it does,
    // no late answer rebuilds it under the clicks below).
    const CHOICES: &str = r#"let ul = document.querySelector('.chart[data-group="3"] .chooser ul'); return [ul.dataset.pattern || '', Array.from(ul.querySelectorAll('li')).map(li => li.textContent)]"#;
    wait_for(&client, "the chooser to list the match", CHOICES, |c| {
        (c[0] == "live.dash.s*"
            && c[1]
                .as_array()?
                .iter()
                .any(|t| t.as_str().unwrap_or("").contains("live.dash.streams")))
        .then_some(())
    })
    .await;
    // The list keeps the chart's current series (checked) above the matches: leave only
    // live.dash.streams checked.
    for b in live
        .find_all(Locator::Css(".chooser input[type=checkbox]"))
        .await
        .unwrap()
    {
        let streams = b.attr("value").await.unwrap().as_deref() == Some("live.dash.streams");
        if b.is_selected().await.unwrap() != streams {
            b.click().await.unwrap();
        }
    }
    find("button.apply").await.unwrap().click().await.unwrap();
    const LIVE: &str = r#"let c = document.querySelector('.chart[data-group="3"]'); return [c.querySelector('canvas').dataset.series, c.querySelector('.legend').textContent, c.querySelector('.shown').textContent]"#;
    wait_for(&client, "the chosen series alone on the chart", LIVE, |v| {
        let legend = v[1].as_str()?;
        (v[0] == "1" && legend.contains("live.dash.streams") && !legend.contains("callbacks"))
            .then_some(())
    })
    .await;

    // Nothing was requested from outside the service, and the page's own polls were.
    let urls = eval(
        &client,
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name)",
    )
    .await;
    let urls: Vec<&str> = urls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        urls.iter().any(|u| u.contains("/debug/leakwatch/ui/data?")),
        "{urls:?}"
    );
    let foreign: Vec<&&str> = urls
        .iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")))
        .collect();
    assert!(foreign.is_empty(), "requests outside {origin}: {foreign:?}");
    let stats = eval(&client, "return window.leakwatchDashboard").await;
    assert_eq!(stats["errors"], 0, "the page had no failed poll: {stats}");

    // The memory chart's screenshot has its first series' colour (not just text and grid).
    let canvas = client
        .find(Locator::Css("section.chart canvas"))
        .await
        .expect("memory chart");
    let coloured = count_colour(
        &canvas.screenshot().await.expect("element screenshot"),
        SERIES_COLOUR,
    );
    assert!(
        coloured > 100,
        "the memory chart's screenshot has {coloured} pixels of its series colour"
    );
    if let Some(path) = std::env::var_os("LEAKWATCH_DASHBOARD_SCREENSHOT") {
        std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
        eprintln!(
            "page screenshot written to {}",
            PathBuf::from(path).display()
        );
    }

    client.close().await.expect("session closes");
    server.abort();
    workload.stop();
}

/// Per chart: points, series and alert markers drawn (the canvas's data attributes).
const CHARTS: &str = "return Array.from(document.querySelectorAll('section.chart canvas')).map(c => \
     ({points: +(c.dataset.points || 0), series: +(c.dataset.series || 0), alerts: +(c.dataset.alerts || 0)}))";
/// Per chart: its pixels.
const PIXELS: &str =
    "return Array.from(document.querySelectorAll('section.chart canvas')).map(c => c.toDataURL())";
/// The alerts list's text.
const ALERTS: &str = "return document.getElementById('alerts').innerText";

async fn eval(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect(script)
}

/// Runs `script` on the page until `done` accepts what it returns (at most [`WAIT`]).
async fn wait_for<T>(
    client: &Client,
    what: &str,
    script: &str,
    mut done: impl FnMut(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = eval(client, script).await;
        if let Some(out) = done(&v) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}; last saw {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_plain(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the watchdog did not sample in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pixels of a PNG within 8 per channel of `rgb` (line edges are blended with white).
fn count_colour(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("decodes");
    let channels = info.color_type.samples();
    assert!(
        channels >= 3 && info.bit_depth == png::BitDepth::Eight,
        "{info:?}"
    );
    buf[..info.buffer_size()]
        .chunks_exact(channels)
        .filter(|px| px.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 8))
        .count()
}

/// Traffic in the global registry: streams open and close, each with a presence callback;
/// events are delivered to every callback; requests count status codes. Once `leak` is set,
/// a closing stream's callback is kept (the seed's second bug).
struct Workload {
    leak: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workload {
    fn start() -> Workload {
        let leak = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (leak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let presence = Callbacks::<u64>::new("dash.callbacks");
            let ok = EventCounter::new("http.status.200");
            let conflict = EventCounter::new("http.status.409");
            let mut streams: Vec<(Token, Subscription)> = Vec::new();
            let mut leaked = Vec::new();
            let mut i: u64 = 0;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                // Between 20 and 40 open streams, moving so the charts have shape.
                let target = 30 + ((i / 10) % 21) as usize - 10;
                while streams.len() < target {
                    streams.push((Token::new("dash.streams"), presence.register(|_| {})));
                    ok.incr();
                }
                while streams.len() > target {
                    let (stream, sub) = streams.remove(0);
                    drop(stream);
                    if l.load(Ordering::Relaxed) {
                        leaked.push(sub);
                        conflict.incr();
                    }
                }
                presence.emit(&i);
                ok.add(1 + i % 3);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Workload {
            leak,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(self) {
        drop(self);
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A program from an environment variable or the PATH.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver in its own process group; dropping it kills the group, so Chromium (its
/// child) goes too even when a test panics, and removes the browser profile.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start(chromedriver: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the port, then keeps draining so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "Starting ChromeDriver ... on port 0" comes first; the real port follows.
                if !line.contains("started successfully") {
                    continue;
                }
                if let Some(rest) = line.split("on port ").nth(1) {
                    let _ = tx.send(rest.trim().trim_end_matches('.').parse::<u16>().ok());
                }
            }
        });
        let profile = std::env::temp_dir().join(format!(
            "leakwatch-dashboard-chromium-{}-{}",
            std::process::id(),
            child.id()
        ));
        let mut driver = Driver {
            child,
            port: 0,
            profile,
        };
        driver.port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(port)) => port,
            other => panic!("chromedriver did not say its port within 10 s: {other:?}"),
        };
        driver
    }

    async fn connect(&self, chromium: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1200",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for
        // chromedriver (pgid = its pid); it touches no memory.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

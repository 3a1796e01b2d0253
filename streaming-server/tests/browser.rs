//! The reference client page in a real browser: headless Chromium, driven through chromedriver
//! by fantoccini, opens `/client?filter=…&access_token=…` (an `EventSource` with the token in
//! the query, as browsers cannot set headers). Messages posted over HTTP arrive in the page;
//! when the server cuts the stream (`POST /debug/streams/close`), the browser resumes by
//! itself with `Last-Event-ID` and gets every message exactly once, in order, including those
//! posted while it was away (replayed by the server).
//!
//! Needs `chromium` and `chromedriver` (`bash scripts/install-test-deps.sh`; or set
//! `LEAKWATCH_CHROMIUM` / `LEAKWATCH_CHROMEDRIVER`). Without them it prints why and passes,
//! except under `CI`, where it fails.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{post, request, start_with};
use fantoccini::{Client, ClientBuilder};
use leakwatch::Registry;
use serde_json::{Value, json};
use streaming_server::fixture::Fixture;

/// The whole test, browser start to the last check; past it the test fails instead of hanging.
const BUDGET: Duration = Duration::from_secs(60);
/// One condition on the page.
const WAIT: Duration = Duration::from_secs(15);
/// ann follows acme/main in the built-in fixture; bob, a member too, posts there.
const ANN: &str = "demo-token-ann";
const BOB: &str = "demo-token-bob";
const FLOW: &str = "acme/main";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_receives_and_resumes_after_a_server_cut() {
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
            "skipping the streaming-server browser test: {why}"
        );
        return;
    };
    let driver = Driver::start(&chromedriver);
    let outcome = tokio::time::timeout(BUDGET, run(&chromium, &driver)).await;
    drop(driver); // kills chromedriver and Chromium before reporting
    outcome.unwrap_or_else(|_| panic!("browser test took longer than {BUDGET:?}"));
}

async fn run(chromium: &Path, driver: &Driver) {
    let reg = Registry::new();
    let srv = start_with(Fixture::builtin(), &reg, |_| {}).await;
    let addr = srv.addr;
    let client = driver.connect(chromium).await;
    client
        .goto(&format!(
            "http://{addr}/client?filter={FLOW}&access_token={ANN}"
        ))
        .await
        .expect("page loads");
    wait_for(&client, "the stream to open", OPENS, |v| {
        (v.as_u64()? == 1).then_some(())
    })
    .await;

    // Live delivery.
    let mut posted = Vec::new();
    for i in 1..=3 {
        posted.push(post_one(addr, &format!("live-{i}")).await);
    }
    wait_for(&client, "the first messages in the page", MESSAGES, |v| {
        (v.as_array()?.len() >= posted.len()).then_some(())
    })
    .await;

    // The server cuts every stream; while the browser waits its retry delay (1 s, sent by
    // the server), more messages are posted.
    let (status, body) = request(addr, "POST", "/debug/streams/close", &[], b"").await;
    assert_eq!((status, &body["closed"]), (200, &json!(1)), "{body}");
    assert!(
        common::eventually(WAIT, || reg.snapshot().live("http.streams") == 0).await,
        "the cut stream ends on the server"
    );
    // Posted at once rather than one after another, so that all three are in before the
    // browser's 1 s retry even on a loaded machine; the server's ids give their order.
    let (a, b, c) = tokio::join!(
        post_one(addr, "cut-1"),
        post_one(addr, "cut-2"),
        post_one(addr, "cut-3")
    );
    let mut while_cut = [a, b, c];
    while_cut.sort_by_key(|(id, _)| *id);
    let still_away = reg.snapshot().live("http.streams") == 0;
    posted.extend(while_cut.iter().cloned());

    // The browser comes back by itself, with Last-Event-ID: the server replays what it missed.
    wait_for(&client, "the browser to reopen its stream", OPENS, |v| {
        (v.as_u64()? >= 2).then_some(())
    })
    .await;
    posted.push(post_one(addr, "after-resume").await);
    let messages = wait_for(&client, "every message in the page", MESSAGES, |v| {
        (v.as_array()?.len() >= posted.len()).then(|| v.clone())
    })
    .await;

    let want: Vec<Value> = posted
        .iter()
        .map(|(id, content)| json!({"id": id.to_string(), "content": content, "flow": FLOW}))
        .collect();
    let got: Vec<Value> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!({"id": m["id"], "content": m["data"]["content"], "flow": m["data"]["flow"]}))
        .collect();
    assert_eq!(
        got, want,
        "every message exactly once, in order, with its id"
    );
    // Data ids agree with the SSE ids (what EventSource resumes from).
    for m in messages.as_array().unwrap() {
        assert_eq!(m["id"].as_str(), Some(m["data"]["id"].to_string().as_str()));
    }
    // Give a duplicate a moment to show, then check nothing more came and the page opened
    // exactly twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        eval(&client, MESSAGES).await,
        messages,
        "no late duplicates"
    );
    assert_eq!(eval(&client, OPENS).await, json!(2), "one cut, one resume");

    let snap = reg.snapshot();
    assert_eq!(snap.live("streams.closed.cut"), 1);
    assert_eq!(snap.live("http.streams"), 1, "the resumed stream is open");
    assert!(
        still_away,
        "the messages of the cut were posted while the browser was away (its retry delay is \
         1 s; posting took longer on this machine)"
    );
    assert_eq!(
        snap.live("events.replayed"),
        while_cut.len() as u64,
        "what was posted during the cut came by replay after Last-Event-ID"
    );

    client.close().await.expect("session closes");
    let stopped = srv.shutdown(Duration::from_secs(4)).await;
    assert_eq!(stopped.streams_left, 0);
}

/// Posts `content` as bob; returns its id and content.
async fn post_one(addr: std::net::SocketAddr, content: &str) -> (u64, String) {
    let (status, id) = post(addr, BOB, FLOW, content).await;
    assert_eq!(status, 201, "post {content:?}");
    (id.expect("an id"), content.to_owned())
}

/// How often the page's EventSource opened.
const OPENS: &str = "return window.opens";
/// The page's message events.
const MESSAGES: &str = "return window.received.filter(e => e.type === 'message')";

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
        tokio::time::sleep(Duration::from_millis(50)).await;
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
            "streaming-server-chromium-{}-{}",
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
                    "--disable-sync", "--window-size=800,600",
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

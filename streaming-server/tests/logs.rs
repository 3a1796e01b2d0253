//! The real binary, logging everything (`RUST_LOG=trace`), never writes a token: requests
//! carry valid and invalid tokens in the `Authorization` header and in `access_token` query
//! parameters (streams, posts, presence, debug routes, 401s, 403s, 400s, 409s, 404s, 431s),
//! and afterwards no token string appears anywhere in stdout or stderr. SIGTERM with a stream
//! still open ends the process within 5 s with status 0.
//!
//! A fixture file is used, so `serve` prints no token listing (it does for its built-in one).

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sse, request};
use streaming_server::fixture::Fixture;
use tokio::io::AsyncWriteExt;

/// SIGTERM to exit: the service's promise.
const EXIT_LIMIT: Duration = Duration::from_secs(5);
const S: Duration = Duration::from_secs(5);
/// Given on the command line and presented to the debug routes.
const DEBUG_TOKEN: &str = "debug-secret-5f1c9e";

/// The server process; killed on drop if still running (a failed assertion must not leave it).
struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `from` into `to` until EOF; sends the address once stdout says `listening on`.
fn pump(
    mut from: impl Read + Send + 'static,
    to: Arc<Mutex<Vec<u8>>>,
    addr: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        let mut sent = false;
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut buf = to.lock().unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let (Some(tx), false) = (&addr, sent) {
                        let text = String::from_utf8_lossy(&buf);
                        if let Some(a) = text
                            .lines()
                            .find_map(|l| l.strip_prefix("listening on http://"))
                            .and_then(|a| a.trim().parse().ok())
                        {
                            sent = true;
                            let _ = tx.send(a);
                        }
                    }
                }
            }
        }
    })
}

fn start(fixture: &Fixture) -> (Proc, SocketAddr) {
    // One test in this binary: the pid makes the directory unique.
    let dir = std::env::temp_dir().join(format!("streaming-server-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fixture.json");
    std::fs::write(&file, serde_json::to_vec(fixture).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streaming-server"))
        .args(["serve", "--addr", "127.0.0.1:0", "--fixture"])
        .arg(&file)
        .args([
            "--one-to-one-latency-ms",
            "20",
            "--sample-interval",
            "100ms",
            "--debug-token",
            DEBUG_TOKEN,
        ])
        .env("RUST_LOG", "trace")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the streaming-server binary starts");
    let (stdout, stderr) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let readers = vec![
        pump(child.stdout.take().unwrap(), stdout.clone(), Some(tx)),
        pump(child.stderr.take().unwrap(), stderr.clone(), None),
    ];
    let proc = Proc {
        child,
        stdout,
        stderr,
        readers,
        dir,
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| {
            panic!(
                "no `listening on` line within 15 s; stderr: {}",
                String::from_utf8_lossy(&proc.stderr.lock().unwrap())
            )
        });
    (proc, addr)
}

/// Raw bytes in, the status line's code out (for requests `request` cannot make).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(S, sock.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_logs_and_sigterm_exits_cleanly() {
    let fixture = Fixture::generate(12, 3, 42);
    // Tokens that look real but belong to nobody.
    let invalid: Vec<String> = Fixture::generate(3, 1, 4242)
        .users
        .into_iter()
        .map(|u| u.token)
        .chain(["wrong-token-Qx7v".to_owned()])
        .collect();
    let member = |flow: usize| {
        let f = &fixture.flows[flow];
        let u = fixture.users.iter().find(|u| f.members.contains(&u.id));
        (u.unwrap().token.clone(), f.path())
    };
    let outsider = |flow: usize| {
        let f = &fixture.flows[flow];
        let u = fixture.users.iter().find(|u| !f.members.contains(&u.id));
        u.map(|u| u.token.clone())
    };
    let (tok, flow) = member(0);
    let (tok2, flow2) = member(1);
    let stranger = outsider(0).expect("someone outside the first flow");
    let (proc, a) = start(&fixture);

    // Streams: valid token by parameter and by header; invalid ones; not a member; 409; 400.
    let mut s1 = Sse::connect(a, &tok, &flow).await;
    assert_eq!(s1.status, 200);
    let s2 = Sse::open(
        a,
        &format!("filter={flow2}"),
        &[("Authorization", &bearer(&tok2))],
    )
    .await;
    assert_eq!(s2.status, 200);
    for bad in &invalid {
        assert_eq!(Sse::connect(a, bad, &flow).await.status, 401);
        let s = Sse::open(
            a,
            &format!("filter={flow}"),
            &[("Authorization", &bearer(bad))],
        )
        .await;
        assert_eq!(s.status, 401);
    }
    assert_eq!(Sse::connect(a, &stranger, &flow).await.status, 403);
    let s = Sse::open(
        a,
        &format!("filter={flow}&access_token={tok}"),
        &[("Last-Event-ID", "1")],
    )
    .await;
    assert_eq!(s.status, 409);
    let s = Sse::open(
        a,
        &format!("filter={flow}&access_token={tok}&last-event-id=soon"),
        &[],
    )
    .await;
    assert_eq!(s.status, 400);
    assert_eq!(
        Sse::connect(a, &tok, "nowhere/none").await.status,
        404,
        "unknown flow"
    );
    // A stream aborted with a reset.
    Sse::connect(a, &tok2, &flow2).await.abort();

    // Posts: header, parameter, invalid, not a member, malformed.
    let body = br#"{"event":"message","content":"hello"}"#;
    let path = format!("/flows/{flow}/messages");
    let h = bearer(&tok);
    assert_eq!(
        request(a, "POST", &path, &[("Authorization", &h)], body)
            .await
            .0,
        201
    );
    assert_eq!(
        request(a, "POST", &format!("{path}?access_token={tok}"), &[], body)
            .await
            .0,
        201
    );
    let got = s1.next(S).await.expect("the post reaches the stream");
    assert_eq!(got.data["content"], "hello");
    for bad in &invalid {
        let hb = bearer(bad);
        assert_eq!(
            request(a, "POST", &path, &[("Authorization", &hb)], body)
                .await
                .0,
            401
        );
        assert_eq!(
            request(a, "POST", &format!("{path}?access_token={bad}"), &[], body)
                .await
                .0,
            401
        );
    }
    assert_eq!(
        request(
            a,
            "POST",
            &path,
            &[("Authorization", &bearer(&stranger))],
            body
        )
        .await
        .0,
        403
    );
    assert_eq!(
        request(a, "POST", &path, &[("Authorization", &h)], b"{not json")
            .await
            .0,
        400
    );

    // Presence: header, parameter, invalid.
    let idle = br#"{"state":"idle"}"#;
    assert_eq!(
        request(a, "POST", "/presence", &[("Authorization", &h)], idle)
            .await
            .0,
        200
    );
    assert_eq!(
        request(
            a,
            "POST",
            &format!("/presence?access_token={tok}"),
            &[],
            idle
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(
            a,
            "POST",
            &format!("/presence?access_token={}", invalid[0]),
            &[],
            idle
        )
        .await
        .0,
        401
    );

    // Debug routes and others, with tokens along (loopback, so they answer).
    assert_eq!(
        request(
            a,
            "GET",
            &format!("/debug/leakwatch?access_token={tok}"),
            &[],
            b""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(
            a,
            "GET",
            &format!("/debug/leakwatch/ui?debug_token={DEBUG_TOKEN}"),
            &[],
            b""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(
            a,
            "GET",
            "/debug/leakwatch/ui/data",
            &[("Authorization", &bearer(DEBUG_TOKEN))],
            b""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(
            a,
            "GET",
            &format!("/client?filter={flow}&access_token={tok}"),
            &[],
            b""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        request(a, "GET", &format!("/nope?access_token={tok}"), &[], b"")
            .await
            .0,
        404
    );
    assert_eq!(
        request(a, "GET", &format!("/healthz?access_token={tok}"), &[], b"")
            .await
            .0,
        200
    );
    // Malformed requests carrying tokens: a bad escape, a bad header, an oversized head.
    let bad_escape =
        format!("GET /flows?filter=%ZZ&access_token={tok} HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(raw(a, bad_escape.as_bytes()).await, 400);
    let bad_scheme = format!(
        "GET /flows?filter={flow} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {tok}\r\n\r\n"
    );
    assert_eq!(raw(a, bad_scheme.as_bytes()).await, 400);
    let huge = format!(
        "GET /flows?filter={flow}&access_token={tok} HTTP/1.1\r\nAuthorization: Bearer {tok}\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(raw(a, huge.as_bytes()).await, 431);
    let not_http = format!("{tok} {tok}\r\n\r\n");
    assert_eq!(raw(a, not_http.as_bytes()).await, 400);

    // The cut ends the open streams (s1 sees its end); s2 stays unread and is reopened to be
    // open at shutdown.
    assert_eq!(
        request(
            a,
            "POST",
            "/debug/streams/close",
            &[("Authorization", &h)],
            b""
        )
        .await
        .0,
        200
    );
    assert!(s1.closed_within(S).await, "the cut ends the stream");
    drop(s2);
    let mut open = Sse::connect(a, &tok2, &flow2).await;
    assert_eq!(open.status, 200);

    // SIGTERM with a stream open: exit 0 within 5 s, and the stream sees its end.
    let mut proc = proc;
    let pid = proc.child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < EXIT_LIMIT,
            "still running {EXIT_LIMIT:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("exited {:?} after SIGTERM: {status}", sent.elapsed());
    assert!(status.success(), "exit status {status}");
    assert!(open.closed_within(S).await, "the open stream was ended");
    for r in std::mem::take(&mut proc.readers) {
        r.join().unwrap();
    }

    let stdout = String::from_utf8(proc.stdout.lock().unwrap().clone()).unwrap();
    let stderr = String::from_utf8(proc.stderr.lock().unwrap().clone()).unwrap();
    // The logs were on (debug lines included) and captured: without them the search below
    // would prove nothing.
    for needle in [
        "listening",
        "DEBUG",
        "stream open",
        "shutting down",
        "stopped",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr has a {needle:?} log line:\n{stderr}"
        );
    }
    let mut secrets: Vec<&str> = fixture.users.iter().map(|u| u.token.as_str()).collect();
    secrets.extend(invalid.iter().map(String::as_str));
    secrets.push(DEBUG_TOKEN);
    let leaks: Vec<String> = secrets
        .iter()
        .flat_map(|t| {
            [("stdout", &stdout), ("stderr", &stderr)]
                .into_iter()
                .flat_map(move |(name, text)| {
                    text.lines()
                        .filter(move |l| l.contains(t))
                        .map(move |l| format!("{name}: {t} in {l:?}"))
                })
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "tokens in the output:\n{}",
        leaks.join("\n")
    );
    eprintln!(
        "{} tokens absent from {} stdout and {} stderr lines",
        secrets.len(),
        stdout.lines().count(),
        stderr.lines().count()
    );
}

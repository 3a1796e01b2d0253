//! The load generator: EventSource-like clients on raw sockets (one task each) and the poster.
//!
//! Every message's content carries the time it was posted (`bench-T<ns>-`, nanoseconds since
//! the bench started, one clock for poster and clients since both run here), so a client
//! measures each delivery's latency from the frame alone, whatever the server's framing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const MARK: &[u8] = b"bench-T";
/// Longest marker: `bench-T` + 20 digits + `-`.
const MARK_MAX: usize = 28;
/// Latency buckets of 10 µs, the last one catching everything from ~10.5 s up.
const BUCKETS: usize = 1 << 20;
const BUCKET_NS: u64 = 10_000;

/// One fan-out round's deliveries: count, latency histogram, newest receipt.
pub struct Round {
    delivered: AtomicU64,
    hist: Vec<AtomicU32>,
    last_rx_ns: AtomicU64,
}

impl Round {
    /// An empty round.
    pub fn new() -> Arc<Round> {
        Arc::new(Round {
            delivered: AtomicU64::new(0),
            hist: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            last_rx_ns: AtomicU64::new(0),
        })
    }

    /// Deliveries so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// When the newest delivery arrived (ns since the bench's start).
    pub fn last_rx_ns(&self) -> u64 {
        self.last_rx_ns.load(Ordering::Relaxed)
    }

    /// The histogram's non-empty buckets as `(bucket, count)`.
    pub fn buckets(&self) -> Vec<(usize, u64)> {
        self.hist
            .iter()
            .enumerate()
            .map(|(i, b)| (i, u64::from(b.load(Ordering::Relaxed))))
            .filter(|&(_, c)| c > 0)
            .collect()
    }
}

/// An empty histogram for [`Round::add_to`].
pub fn histogram() -> Vec<u64> {
    vec![0; BUCKETS]
}

/// The `q` quantile (0..1) of a histogram, in milliseconds (bucket upper bound).
pub fn quantile_ms(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            return ((i as u64 + 1) * BUCKET_NS) as f64 / 1e6;
        }
    }
    f64::NAN
}

/// The clients of one server.
pub struct Clients {
    t0: Instant,
    opened: AtomicUsize,
    failed: AtomicUsize,
    live: AtomicUsize,
    round: RwLock<Option<Arc<Round>>>,
}

impl Clients {
    /// No clients yet; `t0` is the bench's clock.
    pub fn new(t0: Instant) -> Arc<Clients> {
        Arc::new(Clients {
            t0,
            opened: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            round: RwLock::new(None),
        })
    }

    /// Streams that answered 200.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Streams that failed to open.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Client tasks still running.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Where deliveries count from now on.
    pub fn set_round(&self, round: Option<Arc<Round>>) {
        *self.round.write() = round;
    }

    /// Opens one stream per `(path, token)`, at most `parallel` handshakes at a time, and
    /// returns once every one has answered (200 or not) or `timeout` passed.
    pub async fn open_all(
        self: &Arc<Self>,
        addr: SocketAddr,
        streams: &[(String, String)],
        parallel: usize,
        timeout: Duration,
    ) {
        let gate = Arc::new(Semaphore::new(parallel));
        for (path, token) in streams {
            let req = format!(
                "GET /flows?filter={path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                 Authorization: Bearer {token}\r\n\r\n"
            );
            let permit = gate.clone().acquire_owned().await.expect("semaphore");
            self.live.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(self.clone().client(addr, req, permit));
        }
        let start = Instant::now();
        while self.opened() + self.failed() < streams.len() && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(
        self: Arc<Self>,
        addr: SocketAddr,
        req: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let ok = self.run(addr, req, permit).await;
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Returns false if the stream did not open.
    async fn run(
        &self,
        addr: SocketAddr,
        req: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> bool {
        let Ok(mut sock) = TcpStream::connect(addr).await else {
            return false;
        };
        let _ = sock.set_nodelay(true);
        if sock.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        drop(req);
        let mut acc: Vec<u8> = Vec::with_capacity(1024);
        let head_end = loop {
            if let Some(i) = find(&acc, b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read_buf(&mut acc).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        };
        if !acc.starts_with(b"HTTP/1.1 200") {
            return false;
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        drop(permit);
        acc.drain(..head_end);
        loop {
            self.scan(&mut acc);
            if acc.capacity() - acc.len() < 512 {
                acc.reserve(1024);
            }
            match sock.read_buf(&mut acc).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        true
    }

    /// Counts the complete markers in `acc` and keeps only what may hold an incomplete one.
    fn scan(&self, acc: &mut Vec<u8>) {
        let mut done = 0;
        let mut pos = 0;
        let mut found = Vec::new();
        while let Some(i) = find(&acc[pos..], MARK) {
            let start = pos + i;
            let digits = start + MARK.len();
            let Some(len) = acc[digits..].iter().position(|&b| !b.is_ascii_digit()) else {
                break; // the marker continues in the next read
            };
            if acc[digits + len] == b'-' {
                let sent = std::str::from_utf8(&acc[digits..digits + len])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(sent) = sent {
                    found.push(sent);
                }
            }
            pos = digits + len;
            done = pos;
        }
        if !found.is_empty() {
            let now = self.t0.elapsed().as_nanos() as u64;
            if let Some(round) = self.round.read().as_ref() {
                for &sent in &found {
                    let b = (now.saturating_sub(sent) / BUCKET_NS).min(BUCKETS as u64 - 1);
                    round.hist[b as usize].fetch_add(1, Ordering::Relaxed);
                }
                round
                    .delivered
                    .fetch_add(found.len() as u64, Ordering::Relaxed);
                round.last_rx_ns.fetch_max(now, Ordering::Relaxed);
            }
        }
        let keep_from = done.max(acc.len().saturating_sub(MARK_MAX));
        acc.drain(..keep_from);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Posts one message per `(path, token)` with `parallel` posts in flight, each on its own
/// connection (the reference server closes after every non-stream response). Returns how many
/// were not answered 201.
pub async fn post_all(
    addr: SocketAddr,
    messages: Arc<Vec<(String, String)>>,
    parallel: usize,
    t0: Instant,
) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let next = next.clone();
        let messages = messages.clone();
        workers.push(tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, token)) = messages.get(i) else {
                    break;
                };
                let sent = t0.elapsed().as_nanos() as u64;
                if !post_one(addr, path, token, sent).await {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap_or(0);
    }
    failed
}

async fn post_one(addr: SocketAddr, path: &str, token: &str, sent: u64) -> bool {
    let body = format!(r#"{{"event":"message","content":"bench-T{sent}-"}}"#);
    let req = format!(
        "POST /flows/{path}/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        return false;
    };
    let _ = sock.set_nodelay(true);
    if sock.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut resp = Vec::with_capacity(256);
    let _ = sock.read_to_end(&mut resp).await;
    resp.starts_with(b"HTTP/1.1 201")
}

/// The `load` role: the clients of one server in their own process (each process may hold
/// only so many sockets). Opens every stream of the workload against `SERVE_BENCH_ADDR`,
/// prints `opened N FAILED SECONDS`, then answers each line on stdin until it closes:
/// `warm` posts one message; `round` posts the workload's messages, waits for their
/// deliveries and prints `round DELIVERED EXPECTED FAILED_POSTS SECONDS`, the latency
/// histogram's non-empty buckets as `BUCKET COUNT` lines, and `end`.
pub fn generator_main() {
    use std::io::{BufRead, Write};
    let addr: SocketAddr = std::env::var("SERVE_BENCH_ADDR")
        .expect("SERVE_BENCH_ADDR")
        .parse()
        .expect("SERVE_BENCH_ADDR is HOST:PORT");
    let w = crate::workload();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let clients = Clients::new(t0);
    let messages = Arc::new(w.messages);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.as_str() {
            "open" => {
                let started = Instant::now();
                rt.block_on(clients.open_all(
                    addr,
                    &w.streams,
                    crate::OPEN_PARALLEL,
                    Duration::from_secs(90),
                ));
                let _ = writeln!(
                    out,
                    "opened {} {} {:.3}",
                    clients.opened(),
                    clients.failed(),
                    started.elapsed().as_secs_f64()
                );
            }
            "warm" => {
                let one = Arc::new(vec![messages[0].clone()]);
                let failed = rt.block_on(post_all(addr, one, 1, t0));
                let _ = writeln!(out, "warm {failed}");
            }
            "round" => {
                let round = Round::new();
                clients.set_round(Some(round.clone()));
                let start_ns = t0.elapsed().as_nanos() as u64;
                let failed =
                    rt.block_on(post_all(addr, messages.clone(), crate::POST_PARALLEL, t0));
                // Bounded: a stall is reported, not waited out.
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut last = (round.delivered(), Instant::now());
                while round.delivered() < w.expected && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                    let d = round.delivered();
                    if d != last.0 {
                        last = (d, Instant::now());
                    } else if last.1.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                }
                clients.set_round(None);
                let secs = round.last_rx_ns().saturating_sub(start_ns) as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "round {} {} {failed} {secs:.6}",
                    round.delivered(),
                    w.expected
                );
                for (b, c) in round.buckets() {
                    let _ = writeln!(out, "{b} {c}");
                }
                let _ = writeln!(out, "end");
            }
            _ => {}
        }
        let _ = out.flush();
    }
    // Closed stdin: the driver is done with this server. Wait for the streams to end (the
    // server has been stopped) so the process exits with its sockets closed.
    let start = Instant::now();
    while clients.live() > 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

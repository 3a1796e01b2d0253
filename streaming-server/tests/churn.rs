//! Churn: thousands of streams opened, aborted with a reset, closed cleanly, resumed with
//! Last-Event-ID (and refused with 409), with posts and presence changes in between, from
//! several clients at once. Afterwards every leakwatch count (the live items of every series
//! that is not a counter: tracked types, callbacks, connections, scopes, gauges), tokio's alive
//! tasks and the process's socket count must be exactly where they were after warm-up.
//!
//! Its own test binary with one test: `#[tracked]` types count only in the global registry,
//! and another test's server in the same process would move the counts.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Sse, post, request, start_with};
use leakwatch::SeriesKind;
use streaming_server::fixture::Fixture;
use tokio::io::AsyncWriteExt;

/// Stream requests made during the churn (opens, resumes, stale resumes, aborts before the
/// response).
const STREAMS: usize = 3_000;
/// Concurrent clients; each holds up to [`HELD`] streams at once.
const WORKERS: usize = 8;
const HELD: usize = 4;
/// Past this the churn fails instead of hanging.
const CHURN_LIMIT: Duration = Duration::from_secs(60);
/// How long streams may take to drain after the last client left (a 1-to-1 lookup, ~20 ms
/// here, may still hold its stream's state right after the stream ends).
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// Every series' live count, for kinds whose `live` counts items that should go away, by
/// (name, kind). Includes `tokio.alive_tasks` and `process.sockets` (gauges).
type Counts = BTreeMap<(String, SeriesKind), u64>;

fn live_counts() -> Counts {
    leakwatch::snapshot()
        .series
        .into_iter()
        .filter(|s| s.kind.has_live_items())
        .map(|s| ((s.name.into(), s.kind), s.live))
        .collect()
}

/// Series whose live count differs from `base` (a series absent on one side counts as 0).
fn differences(base: &Counts, now: &Counts) -> Vec<String> {
    let keys: std::collections::BTreeSet<_> = base.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (b, n) = (
                base.get(k).copied().unwrap_or(0),
                now.get(k).copied().unwrap_or(0),
            );
            (b != n).then(|| format!("{} ({}): baseline {b}, now {n}", k.0, k.1.as_str()))
        })
        .collect()
}

/// Waits (bounded) until the counts equal `base`; returns the differences left.
async fn settle_to(base: &Counts, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let diff = differences(base, &live_counts());
        if diff.is_empty() || Instant::now() >= deadline {
            return diff;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until two reads 200 ms apart agree, no stream is open and no 1-to-1
/// lookup runs: the warmed-up baseline. (What a bug leaked during warm-up is part of it; the
/// churn then leaks more, which the exact comparison catches.)
async fn quiet_counts() -> Counts {
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut last = live_counts();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = live_counts();
        let open = |c: &Counts, name: &str| {
            c.iter()
                .filter(|((n, _), _)| n == name)
                .map(|(_, v)| *v)
                .sum::<u64>()
        };
        if now == last && open(&now, "http.streams") == 0 && open(&now, "conversations.Lookup") == 0
        {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the warm-up did not settle in {DRAIN_LIMIT:?}: {} streams open, {} lookups in \
             flight, changing: {:?}",
            open(&now, "http.streams"),
            open(&now, "conversations.Lookup"),
            differences(&last, &now)
        );
        last = now;
    }
}

struct User {
    id: u64,
    token: String,
    flows: Vec<String>,
}

/// A stream a client holds, with the newest id it read.
struct Held {
    sse: Sse,
    user: usize,
    filter: String,
    last: Option<u64>,
}

impl Held {
    /// Reads what has arrived (without waiting for more); ids must rise strictly.
    async fn drain(&mut self) {
        for e in self.sse.collect(Duration::from_millis(2), 10_000).await {
            if let Some(last) = self.last {
                assert!(e.id > last, "ids rise on a stream: {} after {last}", e.id);
            }
            self.last = Some(e.id);
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Stream requests made (shared by all clients, to stop at [`STREAMS`]).
    requests: AtomicUsize,
    opened: AtomicU64,
    aborted: AtomicU64,
    closed: AtomicU64,
    resumed: AtomicU64,
    resume_refused: AtomicU64,
    stale: AtomicU64,
    aborted_early: AtomicU64,
    posts: AtomicU64,
    presence: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a client does next.
enum Step {
    /// Opens a stream (a stream request).
    Open,
    /// Sends a stream request and resets the connection before the answer.
    AbortEarly,
    /// Resumes from an id older than the server: 409 (a stream request).
    Stale,
    /// Ends a held stream: abort, clean close, or close and resume (a stream request).
    End,
    Post,
    Presence,
}

fn choose(rng: &mut fastrand::Rng, held: usize) -> Step {
    match rng.u32(..100) {
        _ if held == 0 => Step::Open,
        0..35 if held < HELD => Step::Open,
        0..35 => Step::End,
        35..40 => Step::AbortEarly,
        40..43 => Step::Stale,
        43..50 => Step::Post,
        50..55 => Step::Presence,
        _ => Step::End,
    }
}

/// One client: picks among its users and holds up to [`HELD`] streams, until `limit` stream
/// requests were made by all clients together; then ends what it holds.
async fn client(
    addr: SocketAddr,
    users: Arc<Vec<User>>,
    mine: Vec<usize>,
    seed: u64,
    tally: Arc<Tally>,
    limit: usize,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut held: Vec<Held> = Vec::new();
    let pick = |rng: &mut fastrand::Rng| &users[mine[rng.usize(..mine.len())]];
    let more = || tally.requests.fetch_add(1, Ordering::Relaxed) < limit;
    loop {
        match choose(&mut rng, held.len()) {
            Step::Open => {
                if !more() {
                    break;
                }
                let u = mine[rng.usize(..mine.len())];
                held.push(open(addr, &users, u, &mut rng, &tally).await);
            }
            Step::AbortEarly => {
                if !more() {
                    break;
                }
                let u = pick(&mut rng);
                abort_early(addr, &u.token, &u.flows[0]).await;
                bump(&tally.aborted_early);
            }
            Step::Stale => {
                if !more() {
                    break;
                }
                // An id from before this server started: 409, and the stream's state is
                // released while its 1-to-1 lookup still runs.
                let u = pick(&mut rng);
                let s = Sse::open(
                    addr,
                    &format!("filter={}&access_token={}", u.flows[0], u.token),
                    &[("Last-Event-ID", "1")],
                )
                .await;
                assert_eq!(s.status, 409, "{:?}", s.json());
                bump(&tally.stale);
            }
            Step::Post => {
                let u = pick(&mut rng);
                let flow = &u.flows[rng.usize(..u.flows.len())];
                let (status, _) = post(addr, &u.token, flow, "churn").await;
                assert_eq!(status, 201);
                bump(&tally.posts);
            }
            Step::Presence => {
                let u = pick(&mut rng);
                let state = if rng.bool() { "active" } else { "idle" };
                let (status, _) = request(
                    addr,
                    "POST",
                    "/presence",
                    &[("Authorization", &format!("Bearer {}", u.token))],
                    format!(r#"{{"state":"{state}"}}"#).as_bytes(),
                )
                .await;
                assert_eq!(status, 200);
                bump(&tally.presence);
            }
            Step::End => {
                let mut h = held.swap_remove(rng.usize(..held.len()));
                h.drain().await;
                match rng.u32(..3) {
                    0 => {
                        h.sse.abort();
                        bump(&tally.aborted);
                    }
                    1 => {
                        close(h).await;
                        bump(&tally.closed);
                    }
                    _ if more() => {
                        if let Some(h) = resume(addr, &users, h, &mut rng, &tally).await {
                            held.push(h);
                        }
                    }
                    _ => {
                        close(h).await;
                        bump(&tally.closed);
                        break;
                    }
                }
            }
        }
    }
    for (i, h) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            h.sse.abort();
            bump(&tally.aborted);
        } else {
            close(h).await;
            bump(&tally.closed);
        }
    }
}

async fn open(
    addr: SocketAddr,
    users: &[User],
    u: usize,
    rng: &mut fastrand::Rng,
    tally: &Tally,
) -> Held {
    let user = &users[u];
    let n = rng.usize(1..=user.flows.len().min(2));
    let start = rng.usize(..user.flows.len());
    let filter: Vec<&str> = (0..n)
        .map(|i| user.flows[(start + i) % user.flows.len()].as_str())
        .collect();
    let filter = filter.join(",");
    let active = if rng.u32(..4) == 0 {
        "&active=idle"
    } else {
        ""
    };
    let sse = Sse::open(
        addr,
        &format!("filter={filter}&access_token={}{active}", user.token),
        &[],
    )
    .await;
    assert_eq!(
        sse.status,
        200,
        "user {} {filter}: {:?}",
        user.id,
        sse.json()
    );
    bump(&tally.opened);
    Held {
        sse,
        user: u,
        filter,
        last: None,
    }
}

/// Closes the stream as the client: what arrived is read first, then FIN.
async fn close(mut h: Held) {
    h.drain().await;
    let _ = h.sse.sock.shutdown().await;
}

/// Ends the stream and reopens it with Last-Event-ID (header or parameter); what is replayed
/// must come after that id. A stream that read nothing yet starts over without an id.
async fn resume(
    addr: SocketAddr,
    users: &[User],
    h: Held,
    rng: &mut fastrand::Rng,
    tally: &Tally,
) -> Option<Held> {
    let Held {
        sse,
        user,
        filter,
        last,
    } = h;
    if rng.bool() {
        sse.abort();
    } else {
        drop(sse);
    }
    let token = &users[user].token;
    let base = format!("filter={filter}&access_token={token}");
    let id = last.map(|l| l.to_string());
    let sse = match (&id, rng.bool()) {
        (Some(id), true) => Sse::open(addr, &base, &[("Last-Event-ID", id)]).await,
        (Some(id), false) => Sse::open(addr, &format!("{base}&last-event-id={id}"), &[]).await,
        (None, _) => Sse::open(addr, &base, &[]).await,
    };
    match sse.status {
        200 => {
            bump(&tally.resumed);
            let mut h = Held {
                sse,
                user,
                filter,
                last,
            };
            h.drain().await;
            Some(h)
        }
        // History moved past the id (presence changes fill it too): resync, as a client would.
        409 if last.is_some() => {
            bump(&tally.resume_refused);
            None
        }
        s => panic!("resume of {filter} answered {s}: {:?}", sse.json()),
    }
}

/// Connects, sends a stream request and resets the connection without reading the answer.
async fn abort_early(addr: SocketAddr, token: &str, flow: &str) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET /flows?filter={flow}&access_token={token} HTTP/1.1\r\nHost: test\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    socket2::SockRef::from(&sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Runs `workers` clients until `limit` stream requests were made.
async fn run_clients(
    addr: SocketAddr,
    users: &Arc<Vec<User>>,
    workers: usize,
    limit: usize,
    seed: u64,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let mine: Vec<usize> = (0..users.len()).filter(|i| i % workers == w).collect();
            tokio::spawn(client(
                addr,
                users.clone(),
                mine,
                seed + w as u64,
                tally.clone(),
                limit,
            ))
        })
        .collect();
    for h in handles {
        h.await.expect("a client panicked");
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_count_returns_exactly_to_its_baseline_after_churn() {
    let fixture = Fixture::generate(64, 8, 5);
    let users: Arc<Vec<User>> = Arc::new(
        fixture
            .users
            .iter()
            .map(|u| User {
                id: u.id,
                token: u.token.clone(),
                flows: fixture
                    .flows
                    .iter()
                    .filter(|f| f.members.contains(&u.id))
                    .map(|f| f.path())
                    .collect(),
            })
            .collect(),
    );
    let srv = start_with(fixture.clone(), leakwatch::Registry::global(), |_| {}).await;
    let addr = srv.addr;

    // Warm-up: every path once or more, so lazily made series, thread-locals and pools exist.
    run_clients(addr, &users, 2, 60, 1_000).await;
    let base = quiet_counts().await;
    let before = leakwatch::snapshot();
    for name in [
        "tokio.alive_tasks",
        "process.sockets",
        "http.streams",
        "stream",
        "presence.callbacks",
        "stream.Shared",
        "conversations.Lookup",
    ] {
        assert!(
            before.get(name).is_some(),
            "series {name} exists after warm-up"
        );
    }

    let start = Instant::now();
    let tally = tokio::time::timeout(CHURN_LIMIT, run_clients(addr, &users, WORKERS, STREAMS, 1))
        .await
        .unwrap_or_else(|_| panic!("the churn took longer than {CHURN_LIMIT:?}"));
    let churned = start.elapsed();

    let left = settle_to(&base, DRAIN_LIMIT).await;
    let drained = start.elapsed() - churned;
    assert!(
        left.is_empty(),
        "counts not back to the warmed-up baseline within {DRAIN_LIMIT:?}:\n  {}",
        left.join("\n  ")
    );
    // And they stay there: nothing registers late once every lookup has had time to finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = differences(&base, &live_counts());
    assert!(
        left.is_empty(),
        "counts moved after settling:\n  {}",
        left.join("\n  ")
    );

    let after = leakwatch::snapshot();
    let delta = |name: &str| {
        after.get(name).map_or(0, |s| s.created) - before.get(name).map_or(0, |s| s.created)
    };
    let opened = tally.opened.load(Ordering::Relaxed) + tally.resumed.load(Ordering::Relaxed);
    assert!(
        opened > 0
            && tally.aborted.load(Ordering::Relaxed) > 0
            && tally.closed.load(Ordering::Relaxed) > 0
    );
    assert!(
        delta("http.streams") >= opened + tally.stale.load(Ordering::Relaxed),
        "every stream served was a counted connection: {} < {opened}",
        delta("http.streams")
    );
    // The correct code never registers in a closed scope.
    let late = |s: &leakwatch::Snapshot| {
        s.get_kind("stream", SeriesKind::Scope)
            .map_or(0, |s| s.extra("late"))
    };
    assert_eq!(late(&after), late(&before), "late registrations");

    let closes: Vec<String> = after
        .series
        .iter()
        .filter(|s| s.name.starts_with("streams.closed."))
        .map(|s| {
            format!(
                "{} {}",
                s.name.trim_start_matches("streams.closed."),
                s.live - before.live(&s.name)
            )
        })
        .collect();
    eprintln!(
        "baseline: {base:?}\nchurn: {} stream requests in {churned:?} ({} opened, {} resumed, {} resume 409s, {} stale 409s, {} aborted before the answer; {} aborted, {} closed; {} posts, {} presence changes); drained in {drained:?}; closes: {}; {} live counts back to baseline (tokio.alive_tasks {}, process.sockets {})",
        STREAMS,
        tally.opened.load(Ordering::Relaxed),
        tally.resumed.load(Ordering::Relaxed),
        tally.resume_refused.load(Ordering::Relaxed),
        tally.stale.load(Ordering::Relaxed),
        tally.aborted_early.load(Ordering::Relaxed),
        tally.aborted.load(Ordering::Relaxed),
        tally.closed.load(Ordering::Relaxed),
        tally.posts.load(Ordering::Relaxed),
        tally.presence.load(Ordering::Relaxed),
        closes.join(", "),
        base.len(),
        after.live("tokio.alive_tasks"),
        after.live("process.sockets"),
    );
    srv.shutdown(Duration::from_secs(4)).await;
}

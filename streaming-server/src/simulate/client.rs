//! One simulated EventSource client: it picks a user and a filter, opens a stream on a raw
//! socket, reads and checks events until its planned lifetime is over, ends the stream with a
//! reset or a clean close, and reconnects with `Last-Event-ID`, with a stale id (409, then a
//! resync), or leaves, as its plan says.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use super::checks::{ConnRecord, StreamCheck, ViolationKind};
use super::http::{self, Head, HttpError};
use super::schedule::{ClientPlan, ConnPlan, Next};
use super::sse::{SseItem, SseParser};
use super::{Phase, Shared, UserClaim};
use crate::fixture::{FlowIx, UserId};

/// Connect, send and head timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean close waits for the server's own close (the server promises 1 s).
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The longest SSE line accepted (a 64 KiB post, JSON-escaped, fits).
const MAX_LINE: usize = 1 << 20;
/// The `Last-Event-ID` sent as a stale id: older than any id of any server run (ids start at
/// the server's start time in microseconds), so the API requires a 409.
pub const STALE_ID: u64 = 1;
/// Attempts in a row that may fail (connect error, 429, 503) before a client gives up.
const MAX_FAILURES: u32 = 3;

/// What the next request sends as `Last-Event-ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    Fresh,
    From(u64),
    Stale,
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Its planned lifetime was over.
    Lifetime,
    /// The server closed it.
    ServerClosed,
    /// Nothing arrived for `--stall-timeout`.
    Stalled,
    /// A read error, or bytes that are not SSE.
    Failed,
    /// The run is over.
    Closing,
}

enum Outcome {
    Streamed {
        last_id: Option<u64>,
        end: End,
        retry_ms: Option<u64>,
    },
    Conflict,
    Retry,
    GiveUp,
}

struct Client<'a> {
    sh: &'a Arc<Shared>,
    index: u64,
    user: UserId,
    flows: &'a [FlowIx],
    token: &'a str,
}

/// Keeps `active_clients` right however the client's task ends.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_clients.fetch_sub(1, Relaxed);
    }
}

/// Keeps `open_streams` right however a stream ends.
struct Open<'a>(&'a Shared);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.stats.open_streams.dec();
    }
}

/// Runs client number `index` until it leaves or the run ends. The caller has already
/// counted it in `active_clients`.
pub async fn run_client(sh: Arc<Shared>, index: u64) {
    let _active = Active(sh.clone());
    sh.stats.clients_started.inc();
    let mut plan = ClientPlan::new(sh.seed, index, &sh.args);
    let first = plan.pick(sh.eligible.len());
    let Some(claim) = UserClaim::take(&sh, first) else {
        sh.stats.clients_without_user.inc();
        return;
    };
    let flows = plan.filter(sh.dir.memberships(claim.user));
    let Some(token) = sh.dir.user(claim.user).map(|u| u.token.clone()) else {
        return;
    };
    let client = Client {
        sh: &sh,
        index,
        user: claim.user,
        flows: &flows,
        token: &token,
    };
    let mut resume = Resume::Fresh;
    let mut last_id = None;
    let mut attempt = 0u32;
    let mut failures = 0u32;
    let mut retry_ms = 1000u64;
    while sh.phase() == Phase::Running {
        let cp = plan.next_connection();
        let outcome = client.connection(attempt, &cp, resume).await;
        attempt += 1;
        let delay = match outcome {
            Outcome::Streamed {
                last_id: last,
                end,
                retry_ms: retry,
            } => {
                failures = 0;
                if let Some(r) = retry {
                    retry_ms = r.clamp(10, 10_000);
                }
                // EventSource keeps its last id across a connection that received nothing.
                last_id = last.or(last_id);
                let resume_last = last_id.map_or(Resume::Fresh, Resume::From);
                match end {
                    End::Lifetime => match cp.next {
                        Next::Resume => resume = resume_last,
                        Next::Stale => resume = Resume::Stale,
                        Next::Leave => break,
                    },
                    // The server or the network ended it: EventSource reconnects on its own.
                    End::ServerClosed | End::Stalled | End::Failed => resume = resume_last,
                    End::Closing => break,
                }
                Duration::from_millis(retry_ms).mul_f64(cp.jitter)
            }
            Outcome::Conflict => {
                // The client resyncs (fetches state afresh) and reconnects without an id.
                sh.stats.resyncs.inc();
                resume = Resume::Fresh;
                last_id = None;
                Duration::from_millis(100).mul_f64(cp.jitter)
            }
            Outcome::Retry => {
                failures += 1;
                if failures > MAX_FAILURES {
                    break;
                }
                Duration::from_secs(u64::from(failures)).mul_f64(cp.jitter)
            }
            Outcome::GiveUp => break,
        };
        // The load went down (ramp, end of a spike): leave instead of reconnecting.
        if sh.active_clients.load(Relaxed) > sh.target_clients.load(Relaxed) {
            break;
        }
        if !sh.sleep_while_running(delay).await {
            break;
        }
    }
    drop(claim);
}

impl Client<'_> {
    fn request(&self, cp: &ConnPlan, resume: Resume) -> Vec<u8> {
        let flows = self.sh.dir.flows();
        let filter: Vec<String> = self.flows.iter().map(|&f| flows[f].path()).collect();
        let mut target = format!(
            "/flows?filter={}&active={}",
            filter.join(","),
            if cp.active { "true" } else { "idle" }
        );
        let id = match resume {
            Resume::Fresh => None,
            Resume::From(id) => Some(id),
            Resume::Stale => Some(STALE_ID),
        };
        let mut head = format!(
            "Host: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
            self.sh.addr
        );
        if cp.query_auth {
            // A browser's EventSource cannot set headers: token (and a polyfill's id) go in
            // the query.
            target.push_str("&access_token=");
            target.push_str(&http::query_value(self.token));
            if let Some(id) = id {
                target.push_str(&format!("&last-event-id={id}"));
            }
        } else {
            head.push_str(&format!("Authorization: Bearer {}\r\n", self.token));
            if let Some(id) = id {
                head.push_str(&format!("Last-Event-ID: {id}\r\n"));
            }
        }
        format!("GET {target} HTTP/1.1\r\n{head}\r\n").into_bytes()
    }

    fn label(&self, attempt: u32) -> String {
        format!("stream {}.{} of user {}", self.index, attempt, self.user)
    }

    async fn connection(&self, attempt: u32, cp: &ConnPlan, resume: Resume) -> Outcome {
        let sh = self.sh;
        let Some(permit) = sh.connection_permit().await else {
            return Outcome::GiveUp;
        };
        let stats = &sh.stats;
        stats.connections.inc();
        match resume {
            Resume::From(_) => stats.resumes.inc(),
            Resume::Stale => stats.stale_attempts.inc(),
            Resume::Fresh => {}
        }
        let started = Instant::now();
        let mut buf = Vec::with_capacity(4096);
        let opened = async {
            let mut stream = http::connect(sh.addr, REQUEST_TIMEOUT).await?;
            http::write_request(&mut stream, &self.request(cp, resume), REQUEST_TIMEOUT).await?;
            let (head, len) = http::read_head(&mut stream, &mut buf, REQUEST_TIMEOUT).await?;
            Ok::<_, HttpError>((stream, head, len))
        }
        .await;
        let (stream, head, len) = match opened {
            Ok(x) => x,
            Err(e) => {
                stats.errors.add(format!("stream {}", e.label()), 1);
                if matches!(e, HttpError::BadHead(_) | HttpError::HeadTooLarge) {
                    sh.violation(ViolationKind::Protocol, || {
                        format!("{}: {e}", self.label(attempt))
                    });
                    return Outcome::GiveUp;
                }
                return Outcome::Retry;
            }
        };
        let rest = buf.split_off(len);
        stats.stream_status.add(head.status, 1);
        match head.status {
            200 => {}
            409 => return self.conflict(attempt, stream, rest, &head, resume).await,
            // The per-user limit (a stream of ours the server has not yet seen closing) or a
            // shutting-down server: try again later.
            429 | 503 => return Outcome::Retry,
            status => {
                let body = http::read_body(&mut { stream }, rest, &head, 4096, CLOSE_WAIT)
                    .await
                    .unwrap_or_default();
                let code = error_code(&body);
                sh.violation(ViolationKind::UnexpectedStatus, || {
                    format!(
                        "{}: stream request for {} flow(s) answered {status} {code}",
                        self.label(attempt),
                        self.flows.len()
                    )
                });
                return Outcome::GiveUp;
            }
        }
        stats.head_latency.push(started.elapsed());
        let resume_from = match resume {
            Resume::From(id) => Some(id),
            Resume::Fresh => None,
            Resume::Stale => {
                sh.violation(ViolationKind::StaleIdAccepted, || {
                    format!(
                        "{}: Last-Event-ID {STALE_ID} (older than any history) answered 200, not 409",
                        self.label(attempt)
                    )
                });
                None
            }
        };
        if !head
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            sh.violation(ViolationKind::Protocol, || {
                format!(
                    "{}: 200 with Content-Type {:?}, not text/event-stream",
                    self.label(attempt),
                    head.content_type
                )
            });
            http::abort(stream);
            return Outcome::GiveUp;
        }
        let out = self
            .stream(attempt, cp, stream, rest, resume_from, started)
            .await;
        drop(permit);
        out
    }

    async fn conflict(
        &self,
        attempt: u32,
        mut stream: TcpStream,
        rest: Vec<u8>,
        head: &Head,
        resume: Resume,
    ) -> Outcome {
        let sh = self.sh;
        sh.stats.conflicts.inc();
        let body = http::read_body(&mut stream, rest, head, 64 * 1024, REQUEST_TIMEOUT)
            .await
            .unwrap_or_default();
        if resume == Resume::Fresh {
            sh.violation(ViolationKind::UnexpectedStatus, || {
                format!(
                    "{}: 409 to a request without Last-Event-ID",
                    self.label(attempt)
                )
            });
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let says_resync = json.as_ref().is_some_and(|j| {
            j["error"] == "resync" && j["reconnect_without_last_event_id"] == true
        });
        if !says_resync {
            sh.violation(ViolationKind::BadConflictResponse, || {
                format!(
                    "{}: 409 body does not say resync: {}",
                    self.label(attempt),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                )
            });
        }
        Outcome::Conflict
    }

    async fn stream(
        &self,
        attempt: u32,
        cp: &ConnPlan,
        mut stream: TcpStream,
        rest: Vec<u8>,
        resume_from: Option<u64>,
        started: Instant,
    ) -> Outcome {
        let sh = self.sh;
        let stats = &sh.stats;
        stats.stream_opened();
        let _open = Open(sh);
        let opened_at = sh.now();
        // When the request went out (`started`), on the run's clock.
        let requested_at = opened_at.saturating_sub(started.elapsed());
        let record = sh.recorded_messages.load(Relaxed) < super::MAX_RECORDED_MESSAGES;
        let mut check = StreamCheck::new(
            self.user,
            self.flows.to_vec(),
            resume_from,
            &sh.tag,
            self.label(attempt),
            record,
        );
        let mut parser = SseParser::new(MAX_LINE);
        let mut items = Vec::new();
        let mut retry_ms = None;
        let mut heartbeats = 0u64;
        let mut events = 0u64;
        let mut handle = |chunk: &[u8], check: &mut StreamCheck| -> bool {
            items.clear();
            let parsed = parser.feed(chunk, &mut items);
            for item in items.drain(..) {
                match item {
                    SseItem::Retry(ms) => retry_ms = Some(ms),
                    SseItem::Comment(c) if c.starts_with("heartbeat") => heartbeats += 1,
                    SseItem::Comment(_) => {}
                    SseItem::Event(ev) => {
                        events += 1;
                        check.on_event(&sh.dir, &ev);
                    }
                }
            }
            if let Err(e) = parsed {
                sh.violation(ViolationKind::Protocol, || {
                    format!("{}: {e}", self.label(attempt))
                });
                return false;
            }
            true
        };
        let lifetime_end = started + cp.lifetime;
        let mut phase = sh.phase_rx.clone();
        let mut read_buf = vec![0u8; 8192];
        let mut last_activity = Instant::now();
        let end = if !handle(&rest, &mut check) {
            End::Failed
        } else {
            loop {
                let lifetime_on = *phase.borrow() == Phase::Running;
                tokio::select! {
                    r = stream.read(&mut read_buf) => match r {
                        Ok(0) => break End::ServerClosed,
                        Ok(n) => {
                            last_activity = Instant::now();
                            if !handle(&read_buf[..n], &mut check) {
                                break End::Failed;
                            }
                        }
                        Err(e) => {
                            stats.errors.add(format!("stream read: {}", e.kind()), 1);
                            break End::Failed;
                        }
                    },
                    _ = sleep_until(lifetime_end), if lifetime_on => break End::Lifetime,
                    _ = sleep_until(last_activity + sh.args.stall_timeout) => break End::Stalled,
                    r = phase.changed() => {
                        if r.is_err() || *phase.borrow() == Phase::Closing {
                            break End::Closing;
                        }
                    }
                }
            }
        };
        let closed_at = sh.now();
        match end {
            End::Lifetime if cp.abort => {
                stats.aborts.inc();
                http::abort(stream);
            }
            End::Lifetime | End::Closing => {
                stats.clean_closes.inc();
                if !http::close_cleanly(stream, CLOSE_WAIT).await {
                    stats.clean_closes_unanswered.inc();
                }
            }
            End::ServerClosed => stats.server_closes.inc(),
            End::Stalled => {
                stats.stalls.inc();
                http::abort(stream);
            }
            End::Failed => http::abort(stream),
        }
        stats
            .stream_lifetime
            .push(closed_at.saturating_sub(opened_at));
        stats.heartbeats.add(heartbeats);
        stats.events.add(events);
        let last_id = check.last_id();
        let StreamCheck {
            messages,
            by_type,
            foreign,
            violations,
            ..
        } = check;
        for (t, n) in by_type {
            stats.events_by_type.add(t, n);
        }
        stats.foreign_messages.add(foreign);
        sh.merge_violations(violations);
        if !record {
            // Its messages were not kept: judging its deliveries would report them missing.
            stats.unchecked_streams.inc();
            return Outcome::Streamed {
                last_id,
                end,
                retry_ms,
            };
        }
        sh.recorded_messages
            .fetch_add(messages.len() as u64, Relaxed);
        sh.push_record(ConnRecord {
            chain: self.index,
            attempt,
            user: self.user,
            flows: self.flows.to_vec(),
            resume_from,
            requested_at,
            opened_at,
            closed_at,
            open_at_end: end == End::Closing,
            last_id,
            messages,
        });
        Outcome::Streamed {
            last_id,
            end,
            retry_ms,
        }
    }
}

/// The `error` code of a JSON error body, or a placeholder.
pub fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no JSON error code)".to_owned())
}

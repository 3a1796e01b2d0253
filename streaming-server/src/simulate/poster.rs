//! The writers of a run: messages posted to flows (Poisson arrivals at `--post-rate` scaled
//! by the profile) and presence toggles (`POST /presence`, at `--toggle-rate`). Each post is
//! numbered, recorded with its send time and acknowledged id, and carries its number in its
//! content, so the checks can match every delivery to its post.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::Shared;
use super::checks::{PostRecord, ViolationKind, message_content};
use super::client::error_code;
use super::http;
use super::schedule::{POSTER_STREAM, TOGGLER_STREAM, mix, poisson_gap};
use crate::fixture::{FlowIx, UserId};

/// Connect, send and answer timeout of one post.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a writer re-reads the load when its rate is zero.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Posts messages until the traffic phase ends, then waits for the posts in flight (each
/// bounded by its timeout), so every acknowledgement is in before the final check.
pub async fn run_posts(sh: Arc<Shared>) {
    let mut rng = fastrand::Rng::with_seed(mix(sh.seed, POSTER_STREAM));
    let mut in_flight = JoinSet::new();
    loop {
        let rate = sh.args.post_rate * sh.level();
        let gap = poisson_gap(&mut rng, rate);
        if !sh.sleep_while_running(gap.unwrap_or(IDLE_POLL)).await {
            break;
        }
        if gap.is_none() {
            continue;
        }
        let user = sh.eligible[rng.usize(..sh.eligible.len())];
        let memberships = sh.dir.memberships(user);
        let flow = memberships[rng.usize(..memberships.len())];
        let Ok(permit) = sh.conn_limit.clone().try_acquire_owned() else {
            sh.stats.posts_skipped.inc();
            continue;
        };
        let seq = sh.start_post(flow);
        in_flight.spawn(post(sh.clone(), seq, user, flow, permit));
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

fn request(addr: SocketAddr, method_path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "{method_path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn post(
    sh: Arc<Shared>,
    seq: u32,
    user: UserId,
    flow: FlowIx,
    _permit: OwnedSemaphorePermit,
) {
    let Some(token) = sh.dir.user(user).map(|u| u.token.as_str()) else {
        return;
    };
    let f = &sh.dir.flows()[flow];
    let body = serde_json::json!({"event": "message", "content": message_content(&sh.tag, seq)})
        .to_string();
    let req = request(
        sh.addr,
        &format!("POST /flows/{}/{}/messages", f.org, f.name),
        token,
        &body,
    );
    let started = tokio::time::Instant::now();
    sh.stats.posts_sent.inc();
    let (head, body) = match http::one_shot(sh.addr, &req, 64 * 1024, POST_TIMEOUT).await {
        Ok(x) => x,
        Err(e) => {
            sh.stats.errors.add(format!("post {}", e.label()), 1);
            return;
        }
    };
    sh.stats.post_status.add(head.status, 1);
    match head.status {
        201 => {
            let id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|j| j["id"].as_u64());
            match id {
                Some(id) => {
                    sh.stats.posts_acked.inc();
                    sh.stats.post_latency.push(started.elapsed());
                    sh.ack_post(seq, id);
                }
                None => sh.violation(ViolationKind::Protocol, || {
                    format!("post #{seq} to {}: 201 without a numeric \"id\"", f.path())
                }),
            }
        }
        // Shutting down: not the post's fault.
        503 => {}
        status => sh.violation(ViolationKind::PostRejected, || {
            format!(
                "post #{seq} by member {user} to {}: {status} {}",
                f.path(),
                error_code(&body)
            )
        }),
    }
}

/// Toggles users with an open stream between active and idle until the traffic phase ends.
pub async fn run_toggles(sh: Arc<Shared>) {
    let mut rng = fastrand::Rng::with_seed(mix(sh.seed, TOGGLER_STREAM));
    let mut in_flight = JoinSet::new();
    loop {
        let rate = sh.args.toggle_rate * sh.level();
        let gap = poisson_gap(&mut rng, rate);
        if !sh.sleep_while_running(gap.unwrap_or(IDLE_POLL)).await {
            break;
        }
        if gap.is_none() {
            continue;
        }
        let pick = rng.usize(..);
        let active = rng.bool();
        // Only users who are streaming: presence applies to open streams.
        let Some(user) = sh.streaming_user(pick) else {
            continue;
        };
        let Ok(permit) = sh.conn_limit.clone().try_acquire_owned() else {
            continue;
        };
        in_flight.spawn(toggle(sh.clone(), user, active, permit));
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

async fn toggle(sh: Arc<Shared>, user: UserId, active: bool, _permit: OwnedSemaphorePermit) {
    let Some(token) = sh.dir.user(user).map(|u| u.token.as_str()) else {
        return;
    };
    let state = if active { "active" } else { "idle" };
    let body = format!(r#"{{"state":"{state}"}}"#);
    let req = request(sh.addr, "POST /presence", token, &body);
    sh.stats.toggles_sent.inc();
    match http::one_shot(sh.addr, &req, 64 * 1024, POST_TIMEOUT).await {
        Ok((head, body)) => {
            sh.stats.presence_status.add(head.status, 1);
            match head.status {
                200 => sh.stats.toggles_ok.inc(),
                // The user's last stream may have closed since it was picked; the API leaves
                // the answer to that race open, so only the histogram shows it.
                404 | 409 | 503 => {}
                status => sh.violation(ViolationKind::PostRejected, || {
                    format!(
                        "presence {state} for user {user}: {status} {}",
                        error_code(&body)
                    )
                }),
            }
        }
        Err(e) => sh.stats.errors.add(format!("presence {}", e.label()), 1),
    }
}

/// A post record for a post about to be sent.
pub fn new_post(flow: FlowIx, sent_at: Duration) -> PostRecord {
    PostRecord {
        flow,
        sent_at,
        acked_at: None,
        id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_complete_http() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let r = request(addr, "POST /presence", "tok", r#"{"state":"idle"}"#);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /presence HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(text.contains("Content-Length: 16\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"state\":\"idle\"}"));
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(text.as_bytes()).unwrap().is_complete());
    }
}

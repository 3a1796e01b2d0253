//! The HTTP API over real sockets on 127.0.0.1: auth, streams, replay, 409/400, posting,
//! presence, slow consumers, cleanup, shutdown.

mod common;

use std::time::Duration;

use common::{Sse, eventually, post, request, start_with};
use leakwatch::Registry;
use streaming_server::fixture::Fixture;

const ANN: &str = "demo-token-ann"; // 1: acme/main, acme/ops; 1-to-1 with eve (5)
const BOB: &str = "demo-token-bob"; // 2: acme/main; 1-to-1 with fay (6)
const CAT: &str = "demo-token-cat"; // 3: acme/main
const DAN: &str = "demo-token-dan"; // 4: acme/ops
const EVE: &str = "demo-token-eve"; // 5: globex/lobby; 1-to-1 with ann
const S: Duration = Duration::from_secs(5);

async fn server(
    reg: &Registry,
    tweak: impl FnOnce(&mut streaming_server::config::ServeArgs),
) -> streaming_server::server::Server {
    start_with(Fixture::builtin(), reg, tweak).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_membership_checked() {
    let reg = Registry::new();
    let srv = server(&reg, |_| {}).await;
    let a = srv.addr;
    let s = Sse::open(a, "filter=acme/main", &[]).await;
    assert_eq!(s.status, 401);
    assert_eq!(s.json()["error"], "unauthorized");
    assert_eq!(Sse::connect(a, "nope", "acme/main").await.status, 401);
    let s = Sse::connect(a, DAN, "acme/main").await;
    assert_eq!(
        (s.status, s.json()["error"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(Sse::connect(a, DAN, "acme/nowhere").await.status, 404);
    // The header works as well as the parameter.
    let s = Sse::open(
        a,
        "filter=acme/ops",
        &[("Authorization", &format!("Bearer {DAN}"))],
    )
    .await;
    assert_eq!(s.status, 200);
    assert_eq!(post(a, "bad", "acme/main", "x").await.0, 401);
    assert_eq!(post(a, DAN, "acme/main", "x").await.0, 403);
    assert_eq!(post(a, DAN, "acme/none", "x").await.0, 404);
    let snap = reg.snapshot();
    assert_eq!(snap.live("http.status.401"), 3);
    assert_eq!(snap.live("http.rejected.unauthorized"), 3);
    assert_eq!(snap.live("http.status.403"), 2);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_every_stream_of_the_flow_once_with_its_id() {
    let reg = Registry::new();
    let srv = server(&reg, |_| {}).await;
    let a = srv.addr;
    let mut ann = Sse::connect(a, ANN, "acme/main,acme/ops").await;
    let mut cat = Sse::connect(a, CAT, "acme/main").await;
    let mut dan = Sse::connect(a, DAN, "acme/ops").await;
    assert_eq!((ann.status, cat.status, dan.status), (200, 200, 200));
    // Let the presence changes of the three opens pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in [&mut ann, &mut cat, &mut dan] {
        s.collect(Duration::from_millis(100), 100).await;
    }
    let (status, id) = post(a, BOB, "acme/main", "hello").await;
    assert_eq!(status, 201);
    let id = id.unwrap();
    for s in [&mut ann, &mut cat] {
        let e = s.next(S).await.expect("message arrives");
        assert_eq!((e.id, e.kind.as_str()), (id, "message"));
        assert_eq!(e.data["content"], "hello");
        assert_eq!(e.data["flow"], "acme/main");
        assert_eq!(e.data["user"], 2);
    }
    // dan follows acme/ops only, and ann got it once though she follows two flows.
    assert!(
        dan.collect(Duration::from_millis(300), 10)
            .await
            .iter()
            .all(|e| e.kind != "message")
    );
    assert!(
        ann.collect(Duration::from_millis(300), 10)
            .await
            .iter()
            .all(|e| e.kind != "message")
    );
    // Malformed and oversized bodies.
    let auth = format!("Bearer {BOB}");
    let h = [("Authorization", auth.as_str())];
    assert_eq!(
        request(a, "POST", "/flows/acme/main/messages", &h, b"{nope")
            .await
            .0,
        400
    );
    assert_eq!(
        request(
            a,
            "POST",
            "/flows/acme/main/messages",
            &h,
            br#"{"event":"shout","content":"x"}"#
        )
        .await
        .0,
        400
    );
    let big = format!(
        r#"{{"event":"message","content":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    assert_eq!(
        request(a, "POST", "/flows/acme/main/messages", &h, big.as_bytes())
            .await
            .0,
        413
    );
    let snap = reg.snapshot();
    assert_eq!(snap.live("http.rejected.too_large"), 1);
    assert_eq!(snap.live("http.rejected.bad_json"), 1);
    assert_eq!(snap.live("http.rejected.bad_event_type"), 1);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_after_the_id_by_header_and_by_parameter() {
    let reg = Registry::new();
    let srv = server(&reg, |_| {}).await;
    let a = srv.addr;
    let mut ids = Vec::new();
    for i in 0..5 {
        let flow = if i % 2 == 0 { "acme/main" } else { "acme/ops" };
        ids.push(post(a, ANN, flow, &format!("m{i}")).await.1.unwrap());
    }
    // Header: everything after ids[1] of both flows, in order.
    let mut s = Sse::open(
        a,
        &format!("filter=acme/main,acme/ops&access_token={ANN}"),
        &[("Last-Event-ID", &ids[1].to_string())],
    )
    .await;
    assert_eq!(s.status, 200);
    let got: Vec<u64> = s
        .collect(Duration::from_millis(500), 3)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, ids[2..].to_vec());
    // Parameter, one flow: only that flow's events.
    let mut s = Sse::open(
        a,
        &format!(
            "filter=acme/ops&access_token={ANN}&last-event-id={}",
            ids[0]
        ),
        &[],
    )
    .await;
    let got: Vec<u64> = s
        .collect(Duration::from_millis(500), 2)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, vec![ids[1], ids[3]]);
    assert_eq!(reg.snapshot().live("events.replayed"), 5);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_during_live_publishing_has_no_gap_and_no_duplicate() {
    let reg = Registry::new();
    let srv = server(&reg, |a| a.history = 100_000).await;
    let a = srv.addr;
    let publisher = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..300 {
            ids.push(post(a, BOB, "acme/main", &format!("p{i}")).await.1.unwrap());
        }
        ids
    });
    // A client that reconnects every few events, resuming from the last id it saw, until the
    // publisher is done and a resume brings nothing new.
    let mut seen: Vec<u64> = Vec::new();
    let mut last: Option<u64> = None;
    for _ in 0..2000 {
        let done = publisher.is_finished();
        let mut s = match last {
            Some(l) => {
                Sse::open(
                    a,
                    &format!("filter=acme/main&access_token={CAT}"),
                    &[("Last-Event-ID", &l.to_string())],
                )
                .await
            }
            None => Sse::connect(a, CAT, "acme/main").await,
        };
        assert_eq!(s.status, 200);
        let batch: Vec<_> = s.collect(Duration::from_millis(200), 7).await;
        let before = seen.len();
        for e in batch.into_iter().filter(|e| e.kind == "message") {
            seen.push(e.id);
            last = Some(e.id);
        }
        if done && seen.len() == before {
            break;
        }
    }
    let posted = publisher.await.unwrap();
    // The first connection started before or during the first posts: compare from there.
    let first = posted
        .iter()
        .position(|id| *id == seen[0])
        .expect("a posted id");
    assert_eq!(
        seen,
        posted[first..].to_vec(),
        "gaps or duplicates across resumes"
    );
    assert!(first < 50, "the client missed the start: {first}");
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_past_history_or_from_before_a_restart_get_409_and_malformed_ids_400() {
    let reg = Registry::new();
    let srv = server(&reg, |a| a.history = 3).await;
    let a = srv.addr;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(post(a, ANN, "acme/main", &format!("m{i}")).await.1.unwrap());
    }
    let q = format!("filter=acme/main&access_token={ANN}");
    let s = Sse::open(a, &q, &[("Last-Event-ID", &ids[0].to_string())]).await;
    assert_eq!(s.status, 409);
    assert_eq!(s.json()["error"], "resync");
    assert_eq!(s.json()["reason"], "expired");
    assert_eq!(s.json()["reconnect_without_last_event_id"], true);
    // The oldest id still fully covered resumes.
    let mut s = Sse::open(a, &q, &[("Last-Event-ID", &ids[2].to_string())]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.collect(Duration::from_millis(300), 3).await.len(), 3);
    let s = Sse::open(a, &q, &[("Last-Event-ID", "12ab")]).await;
    assert_eq!(
        (s.status, s.json()["error"].as_str()),
        (400, Some("bad_request"))
    );
    let s = Sse::open(a, &q, &[("Last-Event-ID", &(ids[5] + 1000).to_string())]).await;
    assert_eq!(
        (s.status, s.json()["reason"].as_str()),
        (409, Some("unknown"))
    );
    srv.shutdown(S).await;

    // A restarted server never takes an old id for one of its own.
    let reg2 = Registry::new();
    let srv = server(&reg2, |_| {}).await;
    let a = srv.addr;
    let new_id = post(a, ANN, "acme/main", "after restart").await.1.unwrap();
    assert!(new_id > ids[5], "ids are never reused across restarts");
    let q = format!("filter=acme/main&access_token={ANN}");
    let s = Sse::open(a, &q, &[("Last-Event-ID", &ids[5].to_string())]).await;
    assert_eq!(
        (s.status, s.json()["reason"].as_str()),
        (409, Some("before_start"))
    );
    assert_eq!(reg2.snapshot().live("http.resync.before_start"), 1);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_only_to_those_who_can_see_and_only_changes() {
    let reg = Registry::new();
    let srv = server(&reg, |_| {}).await;
    let a = srv.addr;
    // bob shares acme/main with ann; dan shares acme/ops with ann; eve has a 1-to-1 with ann;
    // fay (6) shares nothing with ann and has no 1-to-1 with her.
    let mut bob = Sse::connect(a, BOB, "acme/main").await;
    let mut dan = Sse::connect(a, DAN, "acme/ops").await;
    let mut eve = Sse::connect(a, EVE, "globex/lobby").await;
    let mut fay = Sse::connect(a, "demo-token-fay", "globex/lobby").await;
    // eve's 1-to-1 lookup takes ~20 ms; wait for it and for the opens' own presence events.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in [&mut bob, &mut dan, &mut eve, &mut fay] {
        s.collect(Duration::from_millis(100), 100).await;
    }
    let ann = Sse::connect(a, ANN, "acme/main&active=idle").await;
    assert_eq!(ann.status, 200);
    for (name, s) in [("bob", &mut bob), ("dan", &mut dan), ("eve", &mut eve)] {
        let e = s
            .next(S)
            .await
            .unwrap_or_else(|| panic!("{name} sees ann come online"));
        assert_eq!(
            (e.kind.as_str(), e.data["user"].as_u64()),
            ("presence", Some(1)),
            "{name}"
        );
        assert_eq!(e.data["state"], "idle");
    }
    let fay_saw: Vec<_> = fay.collect(Duration::from_millis(300), 10).await;
    assert!(
        fay_saw.iter().all(|e| e.data["user"] != 1),
        "fay must not see ann: {fay_saw:?}"
    );
    // A second (idle) stream of an online user relays nothing.
    let ann2 = Sse::connect(a, ANN, "acme/ops&active=idle").await;
    assert_eq!(ann2.status, 200);
    assert!(bob.collect(Duration::from_millis(300), 10).await.is_empty());
    assert_eq!(srv.app.presence.state(1).as_str(), "idle");
    // POST /presence is a change too; posting the same state again is not.
    let auth = format!("Bearer {ANN}");
    let h = [("Authorization", auth.as_str())];
    let (st, body) = request(a, "POST", "/presence", &h, br#"{"state":"active"}"#).await;
    assert_eq!((st, body["state"].as_str()), (200, Some("active")));
    let e = dan.collect(Duration::from_millis(500), 10).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].data["user"].as_u64(), e[0].data["state"].as_str()),
        (Some(1), Some("active"))
    );
    let (st, _) = request(a, "POST", "/presence", &h, br#"{"state":"active"}"#).await;
    assert_eq!(st, 200);
    assert!(
        dan.collect(Duration::from_millis(300), 10).await.is_empty(),
        "no change, no event"
    );
    // Both streams close: one offline event for those who can see.
    drop(ann);
    drop(ann2);
    let e = eve.collect(Duration::from_secs(2), 10).await;
    let offline: Vec<_> = e
        .iter()
        .filter(|e| e.data["user"] == 1 && e.data["state"] == "offline")
        .collect();
    assert_eq!(offline.len(), 1, "{e:?}");
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_and_counted() {
    let reg = Registry::new();
    let srv = server(&reg, |a| a.queue = 8).await;
    let a = srv.addr;
    let s = Sse::connect_small_buffer(a, CAT, "acme/main").await; // never reads
    assert_eq!(s.status, 200);
    let content = "y".repeat(60_000);
    for _ in 0..200 {
        post(a, BOB, "acme/main", &content).await;
    }
    assert!(
        eventually(Duration::from_secs(20), || reg
            .snapshot()
            .live("streams.closed.slow_consumer")
            == 1)
        .await,
        "the stream that does not read is closed as a slow consumer"
    );
    assert!(eventually(S, || reg.snapshot().live("http.streams") == 0).await);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_is_cleaned_up_without_traffic_and_counts_return_to_zero() {
    let reg = Registry::new();
    let srv = server(&reg, |a| a.heartbeat = Duration::from_secs(60)).await;
    let a = srv.addr;
    let mut streams = Vec::new();
    for (t, f) in [
        (ANN, "acme/main,acme/ops"),
        (BOB, "acme/main"),
        (EVE, "globex/lobby"),
    ] {
        streams.push(Sse::connect(a, t, f).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let snap = reg.snapshot();
    assert_eq!(snap.live("http.streams"), 3);
    assert_eq!(snap.live("stream"), 3);
    assert!(snap.live("presence.callbacks") >= 4);
    assert_eq!(
        snap.live("presence.callbacks"),
        snap.live("presence.expected_callbacks")
    );
    // Read what arrived (presence of the others), so closing sends a FIN, not a reset.
    for s in &mut streams {
        s.collect(Duration::from_millis(100), 100).await;
    }
    let start = std::time::Instant::now();
    drop(streams); // FIN, no further traffic: heartbeats are a minute apart
    assert!(
        eventually(S, || {
            let s = reg.snapshot();
            s.live("http.streams") == 0
                && s.live("stream") == 0
                && s.live("presence.callbacks") == 0
        })
        .await
    );
    eprintln!("clean close cleaned up in {:?}", start.elapsed());
    let snap = reg.snapshot();
    assert_eq!(snap.live("presence.expected_callbacks"), 0);
    // The first close relays "offline" to the others; a client closing with that unread
    // resets instead of closing cleanly. Both are client closes the server noticed at once.
    assert_eq!(
        snap.live("streams.closed.client_closed") + snap.live("streams.closed.aborted"),
        3
    );
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_streams_and_drains_counts() {
    let reg = Registry::new();
    let fixture = Fixture::generate(300, 5, 3);
    let srv = start_with(fixture.clone(), &reg, |_| {}).await;
    let a = srv.addr;
    let mut open = Vec::new();
    for u in fixture.users.iter().take(200) {
        let flow = fixture
            .flows
            .iter()
            .find(|f| f.members.contains(&u.id))
            .unwrap();
        open.push(Sse::connect(a, &u.token, &flow.path()).await);
    }
    assert!(open.iter().all(|s| s.status == 200));
    assert!(eventually(S, || reg.snapshot().live("http.streams") == 200).await);
    let stopped = srv.shutdown(Duration::from_secs(4)).await;
    assert_eq!(stopped.streams_left, 0);
    let snap = reg.snapshot();
    assert_eq!(snap.live("streams.closed.shutdown"), 200);
    assert_eq!(snap.live("stream"), 0);
    assert_eq!(snap.live("presence.callbacks"), 0);
    for mut s in open {
        assert!(s.closed_within(S).await, "every client sees its stream end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_get_a_4xx_and_the_server_lives_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reg = Registry::new();
    let srv = server(&reg, |_| {}).await;
    let a = srv.addr;
    let mut rng = fastrand::Rng::with_seed(11);
    let long = format!(
        "GET /flows?filter=acme/main HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let mut inputs: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02garbage\r\n\r\n".to_vec(),
        b"GET /flows?filter=%ZZ HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /flows?filter=acme/main&active=perhaps HTTP/1.1\r\n\r\n".to_vec(),
        long.into_bytes(),
        b"POST /presence HTTP/1.1\r\nContent-Length: 3\r\nAuthorization: Bearer demo-token-ann\r\n\r\n{{{".to_vec(),
    ];
    for _ in 0..40 {
        let mut v = b"GET /flows?".to_vec();
        v.extend((0..rng.usize(0..60)).map(|_| rng.u8(32..127)));
        v.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        inputs.push(v);
    }
    for input in inputs {
        let mut sock = tokio::net::TcpStream::connect(a).await.unwrap();
        sock.write_all(&input).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(500), sock.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            (400..500).contains(&status) || status == 200,
            "input {:?} got {:?}",
            String::from_utf8_lossy(&input),
            text.lines().next()
        );
    }
    assert_eq!(request(a, "GET", "/healthz", &[], b"").await.0, 200);
    srv.shutdown(S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_taking_data_is_closed_as_dead_within_two_heartbeats() {
    let reg = Registry::new();
    // A large queue, so only the stalled write can end the stream.
    let srv = server(&reg, |a| {
        a.heartbeat = Duration::from_millis(200);
        a.queue = 100_000;
    })
    .await;
    let a = srv.addr;
    let s = Sse::connect_small_buffer(a, CAT, "acme/main").await; // never reads
    assert_eq!(s.status, 200);
    let content = "z".repeat(60_000);
    for _ in 0..40 {
        post(a, BOB, "acme/main", &content).await;
    }
    assert!(
        eventually(Duration::from_secs(20), || reg
            .snapshot()
            .live("streams.closed.dead")
            == 1)
        .await,
        "a write that cannot finish within two heartbeats closes the stream as dead"
    );
    let s2 = reg.snapshot();
    assert_eq!(s2.get("http.streams").unwrap().extra("closed_dead"), 1);
    assert_eq!(s2.live("streams.closed.slow_consumer"), 0);
    drop(s);
    srv.shutdown(S).await;
}

//! The simulator against the real server, in process on an ephemeral loopback port: churned
//! streams (aborts, clean closes, `Last-Event-ID` resumes, stale ids) with posts and presence
//! toggles, and every check of the simulator passing.

use std::time::Duration;

use streaming_server::config::ServeArgs;
use streaming_server::fixture::Fixture;
use streaming_server::server::{Server, Watching};
use streaming_server::simulate::{Profile, Progress, SimArgs, Simulation, ViolationKind};

async fn server(fixture: &Fixture, history: usize) -> Server {
    let args = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        one_to_one_latency_ms: 20,
        history,
        ..ServeArgs::default()
    };
    Server::start(
        args.config().unwrap(),
        fixture.clone(),
        leakwatch::Registry::global(),
        Watching::default(),
    )
    .await
    .expect("server starts")
}

fn churn(seed: u64) -> SimArgs {
    SimArgs {
        clients: 60,
        connect_rate: 200.0,
        lifetime: Duration::from_millis(800),
        abort_fraction: 0.3,
        resume_fraction: 0.5,
        stale_fraction: 0.1,
        post_rate: 60.0,
        toggle_rate: 10.0,
        duration: Duration::from_secs(6),
        settle: Duration::from_secs(1),
        seed: Some(seed),
        ..SimArgs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churned_traffic_passes_every_check() {
    let fixture = Fixture::generate(40, 5, 3);
    let server = server(&fixture, 1000).await;
    let report = Simulation::run(&churn(7), &fixture, server.addr, Progress::Hidden)
        .await
        .expect("simulation runs");
    server.shutdown(Duration::from_secs(4)).await;
    println!("{report}");
    assert_eq!(report.violations(), 0, "{report}");
    let c = &report.connections;
    // The traffic did what it was asked to: every kind of end and reconnect happened.
    assert!(c.aborts > 0 && c.clean_closes > 0, "{report}");
    assert!(c.resumes > 0 && c.stale_attempts > 0, "{report}");
    assert_eq!(c.conflicts, c.stale_attempts, "{report}");
    assert_eq!(c.resyncs, c.conflicts, "{report}");
    let d = &report.posts.deliveries;
    assert!(d.expected > 0 && d.delivered == d.expected, "{report}");
    assert!(report.events.replayed > 0, "{report}");
    assert!(
        report.events.by_type.get("presence").copied().unwrap_or(0) > 0,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_shape_the_load() {
    let fixture = Fixture::generate(40, 5, 4);
    let server = server(&fixture, 1000).await;
    let args = SimArgs {
        profile: Profile::Spike,
        lifetime: Duration::from_secs(30),
        ..churn(9)
    };
    let report = Simulation::run(&args, &fixture, server.addr, Progress::Hidden)
        .await
        .expect("simulation runs");
    server.shutdown(Duration::from_secs(4)).await;
    assert_eq!(report.violations(), 0, "{report}");
    // Spike: 30% of 60 clients, 100% for a tenth of the run; long lifetimes keep the peak.
    let peak = report.connections.peak_open;
    assert!((40..=60).contains(&peak), "peak {peak}: {report}");
}

/// A deliberately wrong server speaking the same API, so the tests can show that the
/// simulator's checks catch what they claim to catch over real sockets.
mod wrong {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use streaming_server::fixture::{Directory, Fixture};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// What it gets wrong.
    #[derive(Clone, Copy, Default)]
    pub struct Faults {
        /// Ignores `Last-Event-ID`: a resumed stream gets no replay.
        pub no_replay: bool,
        /// Tells each new stream that its own user is active.
        pub self_presence: bool,
    }

    #[derive(Default)]
    struct Hub {
        next_id: u64,
        history: Vec<(u64, usize, Arc<str>)>,
        subs: Vec<(Vec<usize>, mpsc::UnboundedSender<Arc<str>>)>,
    }

    pub async fn start(fixture: &Fixture, faults: Faults) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = Arc::new(Directory::new(fixture.clone()));
        let hub = Arc::new(Mutex::new(Hub {
            next_id: 1_000_000,
            ..Hub::default()
        }));
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, dir.clone(), hub.clone(), faults));
            }
        });
        addr
    }

    async fn serve(mut sock: TcpStream, dir: Arc<Directory>, hub: Arc<Mutex<Hub>>, faults: Faults) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (method, path, token, last_id, head_len, content_length) = loop {
            let Ok(n) = sock.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let token = header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
                let last = header("last-event-id");
                let cl = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                break (
                    req.method.unwrap().to_owned(),
                    req.path.unwrap().to_owned(),
                    token,
                    last,
                    len,
                    cl,
                );
            }
        };
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        let mut token = token;
        let mut last_id = last_id;
        let mut filter = String::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "access_token" => token = Some(v.into_owned()),
                "last-event-id" => last_id = Some(v.into_owned()),
                "filter" => filter = v.into_owned(),
                _ => {}
            }
        }
        let reply = |status: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        if route == "/healthz" {
            let _ = sock.write_all(reply("200 OK", "ok").as_bytes()).await;
            return;
        }
        let Some(user) = token.and_then(|t| dir.user_by_token(&t).map(|u| u.id)) else {
            let _ = sock
                .write_all(reply("401 Unauthorized", "{}").as_bytes())
                .await;
            return;
        };
        if method == "POST" {
            while buf.len() < head_len + content_length {
                let Ok(n) = sock.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body: serde_json::Value =
                serde_json::from_slice(&buf[head_len..head_len + content_length]).unwrap();
            if route == "/presence" {
                let _ = sock
                    .write_all(reply("200 OK", &body.to_string()).as_bytes())
                    .await;
                return;
            }
            let flow_path = route
                .trim_start_matches("/flows/")
                .trim_end_matches("/messages")
                .to_owned();
            let flow = dir.flow_by_path(&flow_path).unwrap();
            let id = {
                let mut h = hub.lock().unwrap();
                h.next_id += 1;
                let id = h.next_id;
                let data = serde_json::json!({"id": id, "flow": flow_path, "user": user,
                    "event": "message", "content": body["content"]});
                let frame: Arc<str> = format!("id: {id}\nevent: message\ndata: {data}\n\n").into();
                h.history.push((id, flow, frame.clone()));
                h.subs
                    .retain(|(flows, tx)| !flows.contains(&flow) || tx.send(frame.clone()).is_ok());
                id
            };
            let _ = sock
                .write_all(reply("201 Created", &format!("{{\"id\":{id}}}")).as_bytes())
                .await;
            return;
        }
        let flows: Vec<usize> = filter
            .split(',')
            .filter_map(|p| dir.flow_by_path(p))
            .collect();
        let resume: Option<u64> = last_id.and_then(|s| s.parse().ok());
        if resume == Some(1) {
            let body = r#"{"error":"resync","message":"too old","last_event_id":1,"reconnect_without_last_event_id":true}"#;
            let _ = sock.write_all(reply("409 Conflict", body).as_bytes()).await;
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out = String::from(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 1000\n\n",
        );
        {
            let mut h = hub.lock().unwrap();
            if let (Some(from), false) = (resume, faults.no_replay) {
                for (id, flow, frame) in &h.history {
                    if *id > from && flows.contains(flow) {
                        out.push_str(frame);
                    }
                }
            }
            if faults.self_presence {
                h.next_id += 1;
                let id = h.next_id;
                out.push_str(&format!(
                    "id: {id}\nevent: presence\ndata: {{\"id\":{id},\"user\":{user},\"state\":\"active\"}}\n\n"
                ));
            }
            h.subs.push((flows, tx));
        }
        if sock.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(f) => if sock.write_all(f.as_bytes()).await.is_err() { return },
                    None => return,
                },
                r = sock.read(&mut chunk) => if !matches!(r, Ok(n) if n > 0) { return },
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_replay_is_caught_missing_deliveries() {
    let fixture = Fixture::generate(30, 3, 5);
    let good = wrong::start(&fixture, wrong::Faults::default()).await;
    let report = Simulation::run(&churn(11), &fixture, good, Progress::Hidden)
        .await
        .unwrap();
    assert_eq!(report.violations(), 0, "the correct fake passes: {report}");
    assert!(report.events.replayed > 0, "{report}");

    let lossy = wrong::start(
        &fixture,
        wrong::Faults {
            no_replay: true,
            ..Default::default()
        },
    )
    .await;
    let report = Simulation::run(&churn(11), &fixture, lossy, Progress::Hidden)
        .await
        .unwrap();
    let v = &report.violations;
    assert!(v.count(ViolationKind::MissingDelivery) > 0, "{report}");
    assert_eq!(v.total, v.count(ViolationKind::MissingDelivery), "{report}");
    assert_eq!(report.events.replayed, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_about_oneself_is_caught_on_every_stream() {
    let fixture = Fixture::generate(30, 3, 6);
    let addr = wrong::start(
        &fixture,
        wrong::Faults {
            self_presence: true,
            ..Default::default()
        },
    )
    .await;
    let report = Simulation::run(&churn(12), &fixture, addr, Progress::Hidden)
        .await
        .unwrap();
    let v = &report.violations;
    assert_eq!(
        v.count(ViolationKind::SelfPresence),
        report.connections.opened,
        "{report}"
    );
    assert_eq!(v.total, v.count(ViolationKind::SelfPresence), "{report}");
}

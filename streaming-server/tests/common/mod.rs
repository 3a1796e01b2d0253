//! Test support: an in-process server and a minimal HTTP/SSE client on raw sockets (so a
//! test can abort a stream with a reset, or stop reading, as real clients do).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use streaming_server::config::ServeArgs;
use streaming_server::faults::Fault;
use streaming_server::fixture::Fixture;
use streaming_server::server::{Server, Watching};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on an ephemeral loopback port with the built-in fixture (unless given).
pub async fn start(tweak: impl FnOnce(&mut ServeArgs)) -> Server {
    start_with(Fixture::builtin(), leakwatch::Registry::global(), tweak).await
}

/// A server with `fixture`, counting in `registry`.
pub async fn start_with(
    fixture: Fixture,
    registry: &leakwatch::Registry,
    tweak: impl FnOnce(&mut ServeArgs),
) -> Server {
    let mut args = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        one_to_one_latency_ms: 20,
        heartbeat: Duration::from_secs(5),
        ..ServeArgs::default()
    };
    tweak(&mut args);
    Server::start(
        args.config().unwrap(),
        fixture,
        registry,
        Watching::default(),
    )
    .await
    .expect("server starts")
}

/// Injects a fault.
pub fn inject(args: &mut ServeArgs, fault: Fault) {
    args.inject.push(fault);
}

/// A response head and whatever body arrived with it.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_head(sock: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the response head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&buf).unwrap() {
            return Ok(Head {
                status: resp.code.unwrap(),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                rest: buf[len..].to_vec(),
            });
        }
    }
}

/// Sends one request and reads the whole response (the server closes after it).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut sock))
        .await
        .expect("response head within 10 s")
        .unwrap();
    let mut body = head.rest.clone();
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut body)).await;
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (head.status, json)
}

/// Posts a message as `token`; returns the status and the id.
pub async fn post(addr: SocketAddr, token: &str, flow: &str, content: &str) -> (u16, Option<u64>) {
    let body = serde_json::json!({"event": "message", "content": content}).to_string();
    let (status, json) = request(
        addr,
        "POST",
        &format!("/flows/{flow}/messages"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    (status, json["id"].as_u64())
}

/// One event read from a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: u64,
    pub kind: String,
    pub data: serde_json::Value,
}

/// An open event stream.
pub struct Sse {
    pub sock: TcpStream,
    pub status: u16,
    buf: Vec<u8>,
    pub body: Vec<u8>,
}

impl Sse {
    /// Opens `GET /flows?{query}` with extra headers.
    pub async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::open_on(TcpStream::connect(addr).await.unwrap(), query, headers).await
    }

    async fn open_on(mut sock: TcpStream, query: &str, headers: &[(&str, &str)]) -> Sse {
        let mut req =
            format!("GET /flows?{query} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut sock))
            .await
            .expect("response head within 10 s")
            .unwrap();
        let mut sse = Sse {
            sock,
            status: head.status,
            buf: head.rest.clone(),
            body: Vec::new(),
        };
        if head.status != 200 {
            let mut body = head.rest;
            let _ =
                tokio::time::timeout(Duration::from_secs(5), sse.sock.read_to_end(&mut body)).await;
            sse.body = body;
        }
        sse
    }

    /// Opens a stream whose socket has a tiny receive buffer (a client that reads slowly
    /// fills it at once).
    pub async fn connect_small_buffer(addr: SocketAddr, token: &str, filter: &str) -> Sse {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let stream = sock.connect(addr).await.unwrap();
        Sse::open_on(
            stream,
            &format!("filter={filter}&access_token={token}"),
            &[],
        )
        .await
    }

    /// Opens a stream for `token` on `filter`.
    pub async fn connect(addr: SocketAddr, token: &str, filter: &str) -> Sse {
        Sse::open(addr, &format!("filter={filter}&access_token={token}"), &[]).await
    }

    /// The error body of a refused stream.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The next event, skipping comments and `retry:`; `None` on close or after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = find(&self.buf, b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                if let Some(ev) = parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(left, self.sock.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Every event arriving within `wait` (stops early after `max`).
    pub async fn collect(&mut self, wait: Duration, max: usize) -> Vec<Event> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    /// Whether the server closed the stream within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 8192];
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match tokio::time::timeout(left, self.sock.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Drops the socket with a reset (SO_LINGER 0), as a client that dies mid-stream.
    pub fn abort(self) {
        let s = socket2::SockRef::from(&self.sock);
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(self);
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn parse_block(block: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(block).ok()?;
    let (mut id, mut kind, mut data) = (None, None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = serde_json::from_str(v).ok();
        }
    }
    Some(Event {
        id: id?,
        kind: kind?,
        data: data?,
    })
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

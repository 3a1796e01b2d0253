//! The one accept loop: read a request head, then either keep the socket for a stream (the
//! stream path owns it from here, with no framework buffers) or hand it, with the bytes
//! already read, to hyper and the axum routes.
//!
//! Connections handed to hyper serve one request and close (`Connection: close`): a stream
//! request that arrived on a kept-alive connection would otherwise land in hyper, and the
//! stream path is where streams belong. Requests other than streams are rare next to the
//! events they cause, so one TCP handshake each is a fair price.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::app::App;
use crate::raw;
use crate::request::{BadRequest, parse_stream_request};
use crate::stream::{self, OpenStream};

/// Accepts connections until shutdown.
pub async fn accept_loop(app: Arc<App>, listener: TcpListener, router: axum::Router) {
    let mut shutdown = app.shutdown.clone();
    if *shutdown.borrow_and_update() {
        return;
    }
    loop {
        let (sock, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a moment
                    // rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tune_socket(&sock, app.config.heartbeat);
        tokio::spawn(connection(app.clone(), sock, peer, router.clone()));
    }
}

/// Keepalive and `TCP_USER_TIMEOUT`: a peer that vanished without a FIN or RST is noticed by
/// the kernel within about two heartbeats of unacknowledged data.
fn tune_socket(sock: &TcpStream, heartbeat: Duration) {
    let _ = sock.set_nodelay(true);
    let s = socket2::SockRef::from(sock);
    let ka = socket2::TcpKeepalive::new()
        .with_time(heartbeat * 2)
        .with_interval(heartbeat);
    let _ = s.set_tcp_keepalive(&ka);
    #[cfg(target_os = "linux")]
    let _ = s.set_tcp_user_timeout(Some(heartbeat * 2));
}

enum Head {
    Stream(OpenStream),
    /// Another route: hyper serves it from the bytes read so far.
    Other,
    /// Answered already (an error), or the client went away.
    Done,
}

async fn connection(app: Arc<App>, mut sock: TcpStream, peer: SocketAddr, router: axum::Router) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let head = match tokio::time::timeout(
        app.config.head_timeout,
        read_head(&app, &mut sock, &mut buf, peer),
    )
    .await
    {
        Ok(h) => h,
        Err(_) => {
            app.metrics.rejected("timeout");
            Head::Done
        }
    };
    match head {
        Head::Stream(open) => {
            // A task of its own, sized for the stream alone: this connection task's state
            // (the head buffer, httparse's header array, the hyper branch) would otherwise
            // stay allocated for the stream's whole life.
            drop(buf);
            tokio::spawn(stream::run(app, sock, open));
        }
        Head::Other => {
            let svc = router.map_request(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                },
            );
            let io = TokioIo::new(Prefixed {
                prefix: buf,
                pos: 0,
                inner: sock,
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(app.config.max_head_bytes.max(8192) + app.config.max_body_bytes)
                .serve_connection(io, TowerToHyperService::new(svc));
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        }
        Head::Done => {}
    }
}

/// Reads until the request head is complete, then decides where it goes.
async fn read_head(
    app: &Arc<App>,
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
) -> Head {
    let max = app.config.max_head_bytes;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                let is_stream = req.method == Some("GET")
                    && req
                        .path
                        .is_some_and(|p| p == "/flows" || p.starts_with("/flows?"));
                if !is_stream {
                    return Head::Other;
                }
                return stream_head(app, sock, &req, peer).await;
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                reject(
                    app,
                    sock,
                    431,
                    "headers_too_large",
                    "too many request headers",
                )
                .await;
                return Head::Done;
            }
            Err(_) => {
                reject(
                    app,
                    sock,
                    400,
                    "malformed",
                    "the request is not valid HTTP/1.1",
                )
                .await;
                return Head::Done;
            }
        }
        if buf.len() >= max {
            reject(
                app,
                sock,
                431,
                "headers_too_large",
                "the request head is larger than 8 KiB",
            )
            .await;
            return Head::Done;
        }
        let start = buf.len();
        buf.resize((start + 1024).min(max), 0);
        match sock.read(&mut buf[start..]).await {
            Ok(0) | Err(_) => return Head::Done,
            Ok(n) => buf.truncate(start + n),
        }
    }
}

async fn stream_head(
    app: &Arc<App>,
    sock: &mut TcpStream,
    req: &httparse::Request<'_, '_>,
    peer: SocketAddr,
) -> Head {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let path = req.path.unwrap_or("/flows");
    let query = path.split_once('?').map(|(_, q)| q);
    if *app.shutdown.borrow() {
        reject(
            app,
            sock,
            503,
            "shutting_down",
            "the server is shutting down",
        )
        .await;
        return Head::Done;
    }
    let parsed = match parse_stream_request(query, header("authorization"), header("last-event-id"))
    {
        Ok(p) => p,
        Err(bad) => {
            reject_bad(app, sock, bad).await;
            return Head::Done;
        }
    };
    let Some(user) = parsed
        .token
        .as_deref()
        .and_then(|t| app.dir.user_by_token(t))
    else {
        reject(
            app,
            sock,
            401,
            "unauthorized",
            "a valid bearer token is required (Authorization header or access_token parameter)",
        )
        .await;
        return Head::Done;
    };
    let user = user.id;
    let mut flows = Vec::with_capacity(parsed.filter.len());
    for path in &parsed.filter {
        let Some(f) = app.dir.flow_by_path(path) else {
            reject(
                app,
                sock,
                404,
                "unknown_flow",
                "a flow in the filter does not exist",
            )
            .await;
            return Head::Done;
        };
        if !app.dir.is_member(user, f) {
            reject(
                app,
                sock,
                403,
                "forbidden",
                "you are not a member of a flow in the filter",
            )
            .await;
            return Head::Done;
        }
        flows.push(f);
    }
    let Some(slot) = app.presence.reserve(user) else {
        reject(
            app,
            sock,
            429,
            "too_many_streams",
            "too many open streams for this user; close one first",
        )
        .await;
        return Head::Done;
    };
    Head::Stream(OpenStream {
        user,
        flows,
        active: parsed.active,
        resume: parsed.last_event_id,
        slot,
        peer,
    })
}

async fn reject_bad(app: &App, sock: &mut TcpStream, bad: BadRequest) {
    app.metrics.rejected(bad.label());
    respond(app, sock, 400, "bad_request", &bad.to_string()).await;
}

async fn reject(app: &App, sock: &mut TcpStream, status: u16, label: &str, message: &str) {
    app.metrics.rejected(label);
    let code = match status {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        429 => "too_many_streams",
        431 => "headers_too_large",
        503 => "shutting_down",
        _ => "bad_request",
    };
    respond(app, sock, status, code, message).await;
}

async fn respond(app: &App, sock: &mut TcpStream, status: u16, code: &str, message: &str) {
    app.metrics.status(status);
    let bytes = raw::json_response(status, &raw::error_body(code, message));
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = sock.write_all(&bytes).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

/// A socket whose first bytes were already read: hyper reads those first.
struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(out.remaining());
            let start = self.pos;
            out.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

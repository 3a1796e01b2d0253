//! Just enough HTTP/1.1 on a raw `TcpStream` for the simulator: write a request, read the
//! response head with `httparse`, read a bounded body, and end a connection the two ways a
//! browser does (a clean close, or a vanished peer whose socket resets).
//!
//! A raw socket rather than an HTTP client library, because the simulator must control
//! exactly how a connection ends (a reset with `SO_LINGER 0` is the seed's first bug) and
//! must read an endless, close-delimited event stream incrementally.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Why a request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(io::ErrorKind),
    /// A phase took longer than its timeout.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(io::ErrorKind),
    /// The server closed before a complete head.
    #[error("connection closed before the response head")]
    ClosedEarly,
    /// The head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    BadHead(String),
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
}

impl HttpError {
    /// A short stable label, for the report's error histogram.
    pub fn label(&self) -> String {
        match self {
            HttpError::Connect(k) => format!("connect: {k}"),
            HttpError::Timeout(phase) => format!("timeout: {phase}"),
            HttpError::Io(k) => format!("io: {k}"),
            HttpError::ClosedEarly => "closed before head".into(),
            HttpError::BadHead(_) => "malformed head".into(),
            HttpError::HeadTooLarge => "head too large".into(),
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `Content-Length`, if any and valid.
    pub content_length: Option<usize>,
}

/// Connects with a timeout and `TCP_NODELAY` (requests are small and latency matters).
pub async fn connect(addr: SocketAddr, limit: Duration) -> Result<TcpStream, HttpError> {
    let stream = timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError::Timeout("connecting"))?
        .map_err(|e| HttpError::Connect(e.kind()))?;
    // Not fatal: only latency depends on it.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Writes a whole request.
pub async fn write_request(
    stream: &mut TcpStream,
    request: &[u8],
    limit: Duration,
) -> Result<(), HttpError> {
    timeout(limit, stream.write_all(request))
        .await
        .map_err(|_| HttpError::Timeout("sending the request"))?
        .map_err(|e| HttpError::Io(e.kind()))
}

/// Reads until a complete response head is in `buf`; returns it and the head's length (the
/// bytes after it, already read, stay in `buf`).
pub async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(Head, usize), HttpError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(parsed) = parse_head(buf)? {
            return Ok(parsed);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| HttpError::Timeout("waiting for the response head"))?
            .map_err(|e| HttpError::Io(e.kind()))?;
        if n == 0 {
            return Err(HttpError::ClosedEarly);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a head from the start of `buf`, `None` while incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::BadHead(e.to_string())),
    };
    let status = response
        .code
        .ok_or_else(|| HttpError::BadHead("no status code".into()))?;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_owned())
    };
    Ok(Some((
        Head {
            status,
            content_type: header("content-type"),
            content_length: header("content-length").and_then(|v| v.parse().ok()),
        },
        len,
    )))
}

/// Reads the body after a head: `Content-Length` bytes, or until the server closes (every
/// non-stream response of the server closes its connection). At most `cap` bytes are kept.
/// `buf` holds what was read past the head.
pub async fn read_body(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    head: &Head,
    cap: usize,
    limit: Duration,
) -> Result<Vec<u8>, HttpError> {
    let want = head.content_length.unwrap_or(usize::MAX).min(cap);
    let deadline = tokio::time::Instant::now() + limit;
    while buf.len() < want {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| HttpError::Timeout("reading the response body"))?
            .map_err(|e| HttpError::Io(e.kind()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.truncate(want);
    Ok(buf)
}

/// One request on its own connection (the server closes after each non-stream response):
/// returns the head and the body (at most `cap` bytes).
pub async fn one_shot(
    addr: SocketAddr,
    request: &[u8],
    cap: usize,
    limit: Duration,
) -> Result<(Head, Vec<u8>), HttpError> {
    let mut stream = connect(addr, limit).await?;
    write_request(&mut stream, request, limit).await?;
    let mut buf = Vec::with_capacity(1024);
    let (head, len) = read_head(&mut stream, &mut buf, limit).await?;
    let rest = buf.split_off(len);
    let body = read_body(&mut stream, rest, &head, cap, limit).await?;
    Ok((head, body))
}

/// Ends a connection the way a vanished client does: `SO_LINGER 0` makes the close send a
/// TCP reset instead of a FIN, so the server sees an aborted peer, not a clean close.
pub fn abort(stream: TcpStream) {
    // If setting the option fails the drop is still a close, only a clean one; the caller
    // counted an abort either way, and the server must handle both.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Ends a connection the way `EventSource.close()` does: a FIN, then reading until the
/// server closes too. Returns whether the server closed within `wait`. Unread data at close
/// would make the kernel send a reset, which is why it drains first.
pub async fn close_cleanly(mut stream: TcpStream, wait: Duration) -> bool {
    if stream.shutdown().await.is_err() {
        return false;
    }
    let mut sink = [0u8; 4096];
    let drained = timeout(wait, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await;
    matches!(drained, Ok(true))
}

/// Encodes a query parameter value as a form would (tokens may hold `&`, `+`, `#`, ...).
pub fn query_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_incrementally() {
        let raw = b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\ncontent-length: 12\r\n\r\n{\"a\":true}xx";
        for cut in 0..raw.len() {
            let r = parse_head(&raw[..cut]).unwrap();
            let complete = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert_eq!(r.is_some(), cut >= complete, "cut {cut}");
        }
        let (head, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 409);
        assert_eq!(head.content_type.as_deref(), Some("application/json"));
        assert_eq!(head.content_length, Some(12));
        assert_eq!(&raw[len..], b"{\"a\":true}xx");
        assert!(matches!(
            parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(HttpError::BadHead(_))
        ));
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_value("a&b=c d+#"), "a%26b%3Dc+d%2B%23");
        assert_eq!(query_value("abc123"), "abc123");
    }
}

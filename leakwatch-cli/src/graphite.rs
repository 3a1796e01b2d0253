//! Reading series back from graphite-web's render API, so the detectors can run over a whole
//! fleet's history in Graphite
//! (`leakwatch analyze --graphite URL --target 'stats.gauges.app.*.leakwatch.live.*'`).
//!
//! ```no_run
//! let series = leakwatch_cli::graphite::fetch(
//!     "http://127.0.0.1:8080",
//!     &["stats.gauges.app.*.leakwatch.live.presence.Watch"],
//!     "-2h",
//!     None,
//! )?;
//! for s in &series {
//!     let last = s.points.iter().rev().find_map(|(_, v)| *v);
//!     println!("{}: {} points, last {:?}", s.name, s.points.len(), last);
//! }
//! # Ok::<(), leakwatch_cli::graphite::GraphiteError>(())
//! ```
//!
//! Plain HTTP only (graphite-web usually sits on a private network or loopback); `ureq`
//! without TLS keeps the build small.

use std::time::Duration;

use serde::Deserialize;

/// How long one render request may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read (a week of 1 s points for ~100 series is ~60 MB of JSON). The
/// body is held while it is parsed, then only the points (24 bytes each): reading takes
/// about twice the answer's size in memory at most.
pub const MAX_BODY: u64 = 256 * 1024 * 1024;

/// One series as graphite-web rendered it.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphiteSeries {
    /// The series' name (`target` in graphite-web's JSON): the metric path for plain
    /// targets, or the function expression for function targets.
    pub name: String,
    /// `(unix time in seconds, value)` in time order; `None` where Graphite has no point.
    pub points: Vec<(f64, Option<f64>)>,
}

/// Why a render request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphiteError {
    /// The base URL is not an `http://` URL.
    #[error("graphite-web URL `{0}` must start with http:// (https is not supported)")]
    Url(String),
    /// No answer: graphite-web not running, wrong port, timeout.
    #[error(
        "cannot reach graphite-web at {url}: {reason} (is it running? scripts/graphite-stack.sh up starts one)"
    )]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Something answered at the address, but not graphite-web over HTTP (not HTTP at all,
    /// a connection closed mid-answer, an answer that is not text).
    #[error(
        "the answer from {url} is not graphite-web's: {reason} (is this graphite-web's address?)"
    )]
    BadAnswer {
        /// The request URL.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The answer is larger than [`MAX_BODY`] bytes.
    #[error(
        "graphite-web's answer from {url} is larger than {} MiB: narrow --from/--until or the targets",
        MAX_BODY / (1024 * 1024)
    )]
    TooLarge {
        /// The request URL.
        url: String,
    },
    /// graphite-web answered with an error status (a bad target expression gives 400/500).
    #[error("graphite-web answered {status} for {url}: {body}")]
    Status {
        /// The request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The answer was not graphite-web's render JSON.
    #[error("graphite-web's answer from {url} is not render JSON: {reason}")]
    Json {
        /// The request URL.
        url: String,
        /// The parse error.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RawSeries {
    target: String,
    datapoints: Vec<(Option<f64>, f64)>,
}

/// Fetches `targets` (Graphite target expressions, globs allowed) from graphite-web at
/// `base_url` (e.g. `http://127.0.0.1:8080`) over `from`..`until` (Graphite time
/// expressions such as `-2h` or `-30min`, or Unix seconds; `until` defaults to now).
/// Calls `GET /render?target=…&from=…&until=…&format=json`.
pub fn fetch<T: AsRef<str>>(
    base_url: &str,
    targets: &[T],
    from: &str,
    until: Option<&str>,
) -> Result<Vec<GraphiteSeries>, GraphiteError> {
    if !base_url.starts_with("http://") {
        return Err(GraphiteError::Url(base_url.to_owned()));
    }
    let url = format!("{}/render", base_url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(&url);
    for t in targets {
        req = req.query("target", t.as_ref());
    }
    req = req.query("from", from).query("format", "json");
    if let Some(u) = until {
        req = req.query("until", u);
    }
    let shown = describe(&url, targets, from);
    let mut resp = req.call().map_err(|e| classify(e, &shown))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| classify(e, &shown))?;
    let body = String::from_utf8(body).map_err(|e| GraphiteError::BadAnswer {
        url: shown.clone(),
        reason: format!("the body is not text ({e})"),
    })?;
    if status != 200 {
        let mut body = body.trim().to_owned();
        if let Some((i, _)) = body.char_indices().nth(300) {
            body.truncate(i);
            body.push('…');
        }
        return Err(GraphiteError::Status {
            url: shown,
            status,
            body,
        });
    }
    parse_render_json(&body).map_err(|reason| GraphiteError::Json {
        url: shown,
        reason: format!("{reason}; it starts with {:?}", start_of(&body, 80)),
    })
}

/// Sorts a failed request: nobody answering is `Unreachable`; anything else that answered
/// at the address (not HTTP, closed mid-answer, too large) says so.
fn classify(e: ureq::Error, url: &str) -> GraphiteError {
    use std::io::ErrorKind;
    let url = url.to_owned();
    match e {
        ureq::Error::BodyExceedsLimit(_) => GraphiteError::TooLarge { url },
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Timeout(_) => {
            GraphiteError::Unreachable {
                url,
                reason: e.to_string(),
            }
        }
        ureq::Error::Io(ref io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::NotConnected
            ) =>
        {
            GraphiteError::Unreachable {
                url,
                reason: e.to_string(),
            }
        }
        other => GraphiteError::BadAnswer {
            url,
            reason: other.to_string(),
        },
    }
}

/// The first `n` characters of `s`, with `…` when cut.
fn start_of(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn describe<T: AsRef<str>>(url: &str, targets: &[T], from: &str) -> String {
    let t: Vec<&str> = targets.iter().map(|t| t.as_ref()).collect();
    format!("{url}?target={}&from={from}", t.join("&target="))
}

/// Parses graphite-web's `format=json` answer: `[{"target", "datapoints": [[value|null, ts]]}]`.
pub fn parse_render_json(body: &str) -> Result<Vec<GraphiteSeries>, String> {
    let raw: Vec<RawSeries> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let mut points: Vec<(f64, Option<f64>)> =
                r.datapoints.into_iter().map(|(v, t)| (t, v)).collect();
            // The parser's growth slack would be held for the whole run.
            points.shrink_to_fit();
            GraphiteSeries {
                name: r.target,
                points,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_render_json() {
        let s = parse_render_json(
            r#"[{"target":"a.b","tags":{"name":"a.b"},"datapoints":[[1.5,100],[null,101]]}]"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "a.b");
        assert_eq!(s[0].points, vec![(100.0, Some(1.5)), (101.0, None)]);
        assert!(parse_render_json("<html>").is_err());
    }

    #[test]
    fn errors_are_clear() {
        assert!(matches!(
            fetch("https://x", &["a"], "-1h", None),
            Err(GraphiteError::Url(_))
        ));
        // A port nothing listens on: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = fetch(&format!("http://127.0.0.1:{port}"), &["a"], "-1h", None).unwrap_err();
        assert!(matches!(e, GraphiteError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("graphite-stack.sh"));
    }
}

//! Parsing what a client sends, as pure functions: the stream request's query and headers,
//! and posted bodies. Every malformed input is a [`BadRequest`] with a reason, never a panic
//! (checked by property tests).

use serde::Deserialize;

/// A parsed `GET /flows` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    /// `org/flow` paths, deduplicated, in the order given.
    pub filter: Vec<String>,
    /// Whether the stream starts active (`active=true`, default) or idle.
    pub active: bool,
    /// The id to resume after (`Last-Event-ID` header or `last-event-id` parameter).
    pub last_event_id: Option<u64>,
    /// The bearer token (header or `access_token` parameter). Never logged.
    pub token: Option<String>,
}

/// Why a request is malformed (a 400 with this reason; the reason is also the counted label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// No `filter` parameter or an empty one.
    #[error("the filter parameter is missing or empty (expected filter=org/flow[,org/flow2])")]
    EmptyFilter,
    /// A filter entry is not `org/flow`.
    #[error(
        "each filter entry must be org/flow with 1-64 characters of a-z, 0-9, '_' or '-' on each side"
    )]
    BadFilter,
    /// More flows than a stream may follow.
    #[error("a stream may follow at most 64 flows")]
    TooManyFlows,
    /// `active` is not `true`, `false`, `active` or `idle`.
    #[error("active must be true, false, active or idle")]
    BadActive,
    /// `Last-Event-ID` is not a decimal u64.
    #[error("Last-Event-ID must be a decimal event id")]
    BadLastEventId,
    /// The query string is not valid percent-encoded UTF-8.
    #[error("the query string is not valid UTF-8 after percent-decoding")]
    BadQuery,
    /// A parameter appears twice.
    #[error("a query parameter appears twice")]
    DuplicateParameter,
    /// The `Authorization` header is not `Bearer TOKEN`.
    #[error("the Authorization header must be 'Bearer TOKEN'")]
    BadAuthorization,
    /// A JSON body that does not parse or has the wrong shape.
    #[error("the body must be JSON of the documented shape")]
    BadJson,
    /// An event type other than `message` or `comment`.
    #[error("event must be \"message\" or \"comment\"")]
    BadEventType,
    /// A presence state other than `active` or `idle`.
    #[error("state must be \"active\" or \"idle\"")]
    BadPresenceState,
}

impl BadRequest {
    /// A short stable label for counting (`count.http.rejected.<label>`).
    pub fn label(self) -> &'static str {
        match self {
            BadRequest::EmptyFilter => "empty_filter",
            BadRequest::BadFilter => "bad_filter",
            BadRequest::TooManyFlows => "too_many_flows",
            BadRequest::BadActive => "bad_active",
            BadRequest::BadLastEventId => "bad_last_event_id",
            BadRequest::BadQuery => "bad_query",
            BadRequest::DuplicateParameter => "duplicate_parameter",
            BadRequest::BadAuthorization => "bad_authorization",
            BadRequest::BadJson => "bad_json",
            BadRequest::BadEventType => "bad_event_type",
            BadRequest::BadPresenceState => "bad_presence_state",
        }
    }

    /// Every reason, for registering their counters up front.
    pub const ALL: [BadRequest; 11] = [
        BadRequest::EmptyFilter,
        BadRequest::BadFilter,
        BadRequest::TooManyFlows,
        BadRequest::BadActive,
        BadRequest::BadLastEventId,
        BadRequest::BadQuery,
        BadRequest::DuplicateParameter,
        BadRequest::BadAuthorization,
        BadRequest::BadJson,
        BadRequest::BadEventType,
        BadRequest::BadPresenceState,
    ];
}

/// The most flows one stream may follow.
pub const MAX_FILTER_FLOWS: usize = 64;

/// Parses the query string of `GET /flows` and the two headers that matter.
pub fn parse_stream_request(
    query: Option<&str>,
    authorization: Option<&[u8]>,
    last_event_id: Option<&[u8]>,
) -> Result<StreamRequest, BadRequest> {
    let mut filter: Option<String> = None;
    let mut active: Option<String> = None;
    let mut lei_param: Option<String> = None;
    let mut token_param: Option<String> = None;
    for (k, v) in query_pairs(query.unwrap_or(""))? {
        let slot = match k.as_str() {
            "filter" => &mut filter,
            "active" => &mut active,
            "last-event-id" | "lastEventId" => &mut lei_param,
            "access_token" => &mut token_param,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(BadRequest::DuplicateParameter);
        }
    }
    let filter = parse_filter(filter.as_deref().unwrap_or(""))?;
    let active = match active.as_deref() {
        None | Some("true") | Some("active") | Some("1") => true,
        Some("false") | Some("idle") | Some("0") => false,
        Some(_) => return Err(BadRequest::BadActive),
    };
    // The header wins over the parameter, as EventSource sends the header on reconnects.
    let last_event_id = match (last_event_id, lei_param) {
        (Some(h), _) => Some(parse_event_id(h)?),
        (None, Some(p)) => Some(parse_event_id(p.as_bytes())?),
        (None, None) => None,
    };
    let token = match authorization {
        Some(h) => Some(parse_bearer(h)?),
        None => token_param,
    };
    Ok(StreamRequest {
        filter,
        active,
        last_event_id,
        token,
    })
}

/// `Bearer TOKEN` → `TOKEN`.
pub fn parse_bearer(header: &[u8]) -> Result<String, BadRequest> {
    let s = std::str::from_utf8(header).map_err(|_| BadRequest::BadAuthorization)?;
    let (scheme, token) = s
        .trim()
        .split_once(' ')
        .ok_or(BadRequest::BadAuthorization)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(BadRequest::BadAuthorization);
    }
    Ok(token.to_owned())
}

/// A decimal event id (surrounding spaces allowed, as some clients send them).
pub fn parse_event_id(raw: &[u8]) -> Result<u64, BadRequest> {
    let s = std::str::from_utf8(raw).map_err(|_| BadRequest::BadLastEventId)?;
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadRequest::BadLastEventId);
    }
    s.parse().map_err(|_| BadRequest::BadLastEventId)
}

/// `org/flow,org/flow2` → the paths, deduplicated.
pub fn parse_filter(raw: &str) -> Result<Vec<String>, BadRequest> {
    if raw.trim().is_empty() {
        return Err(BadRequest::EmptyFilter);
    }
    let mut out: Vec<String> = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        let (org, flow) = entry.split_once('/').ok_or(BadRequest::BadFilter)?;
        if !valid_name(org) || !valid_name(flow) {
            return Err(BadRequest::BadFilter);
        }
        if !out.iter().any(|e| e == entry) {
            out.push(entry.to_owned());
        }
        if out.len() > MAX_FILTER_FLOWS {
            return Err(BadRequest::TooManyFlows);
        }
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn query_pairs(query: &str) -> Result<Vec<(String, String)>, BadRequest> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            // form_urlencoded replaces invalid UTF-8 with U+FFFD; refuse instead of guessing.
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                Err(BadRequest::BadQuery)
            } else {
                Ok((k.into_owned(), v.into_owned()))
            }
        })
        .collect()
}

/// The body of `POST /flows/{org}/{flow}/messages`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    /// `message` or `comment`.
    pub event: String,
    /// The text.
    pub content: String,
}

/// Parses and checks a posted message.
pub fn parse_post(body: &[u8]) -> Result<PostBody, BadRequest> {
    let post: PostBody = serde_json::from_slice(body).map_err(|_| BadRequest::BadJson)?;
    if post.event != "message" && post.event != "comment" {
        return Err(BadRequest::BadEventType);
    }
    Ok(post)
}

/// The body of `POST /presence`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    state: String,
}

/// Parses `{"state": "active"|"idle"}` into whether the user is active.
pub fn parse_presence(body: &[u8]) -> Result<bool, BadRequest> {
    let p: PresenceBody = serde_json::from_slice(body).map_err(|_| BadRequest::BadJson)?;
    match p.state.as_str() {
        "active" => Ok(true),
        "idle" => Ok(false),
        _ => Err(BadRequest::BadPresenceState),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_request_parses() {
        let r = parse_stream_request(
            Some("filter=acme/main,acme/ops,acme/main&active=idle&access_token=t%2B1"),
            None,
            Some(b" 42 "),
        )
        .unwrap();
        assert_eq!(r.filter, vec!["acme/main", "acme/ops"]);
        assert!(!r.active);
        assert_eq!(r.last_event_id, Some(42));
        assert_eq!(r.token.as_deref(), Some("t+1"));
        let r = parse_stream_request(
            Some("filter=a/b&last-event-id=7"),
            Some(b"Bearer abc"),
            None,
        )
        .unwrap();
        assert_eq!(
            (r.last_event_id, r.token.as_deref()),
            (Some(7), Some("abc"))
        );
    }

    #[test]
    fn each_malformed_part_has_its_reason() {
        let p = |q: &str| parse_stream_request(Some(q), None, None).unwrap_err();
        assert_eq!(p(""), BadRequest::EmptyFilter);
        assert_eq!(p("filter=acme"), BadRequest::BadFilter);
        assert_eq!(p("filter=Acme/x"), BadRequest::BadFilter);
        assert_eq!(p("filter=a/b&active=maybe"), BadRequest::BadActive);
        assert_eq!(p("filter=a/b&last-event-id=-1"), BadRequest::BadLastEventId);
        assert_eq!(
            p("filter=a/b&last-event-id=99999999999999999999"),
            BadRequest::BadLastEventId
        );
        assert_eq!(p("filter=a/b&filter=c/d"), BadRequest::DuplicateParameter);
        assert_eq!(p("filter=a/b&x=%FF"), BadRequest::BadQuery);
        assert_eq!(
            parse_stream_request(Some("filter=a/b"), Some(b"Basic xyz"), None).unwrap_err(),
            BadRequest::BadAuthorization
        );
        assert_eq!(parse_post(b"{}").unwrap_err(), BadRequest::BadJson);
        assert_eq!(
            parse_post(br#"{"event":"shout","content":"x"}"#).unwrap_err(),
            BadRequest::BadEventType
        );
        assert_eq!(
            parse_presence(br#"{"state":"away"}"#).unwrap_err(),
            BadRequest::BadPresenceState
        );
    }

    proptest! {
        #[test]
        fn stream_requests_never_panic(
            q in ".{0,200}",
            auth in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
            lei in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
        ) {
            let _ = parse_stream_request(Some(&q), auth.as_deref(), lei.as_deref());
        }

        #[test]
        fn filters_that_parse_are_well_formed(q in "[a-z0-9/,_ -]{0,80}") {
            if let Ok(f) = parse_filter(&q) {
                prop_assert!(!f.is_empty() && f.len() <= MAX_FILTER_FLOWS);
                for e in f {
                    let (o, n) = e.split_once('/').unwrap();
                    prop_assert!(valid_name(o) && valid_name(n));
                }
            }
        }

        #[test]
        fn ids_round_trip(id in any::<u64>()) {
            prop_assert_eq!(parse_event_id(id.to_string().as_bytes()), Ok(id));
        }

        #[test]
        fn bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_post(&body);
            let _ = parse_presence(&body);
        }

        #[test]
        fn json_shaped_bodies_never_panic(
            event in "(message|comment|[a-z]{0,8})",
            content in ".{0,50}",
            extra in proptest::bool::ANY,
        ) {
            let mut v = serde_json::json!({"event": event, "content": content});
            if extra { v["x"] = serde_json::json!(1); }
            let r = parse_post(v.to_string().as_bytes());
            prop_assert_eq!(r.is_ok(), !extra && (event == "message" || event == "comment"));
        }
    }
}

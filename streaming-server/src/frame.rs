//! SSE frames, serialised once as `Bytes` and shared by every stream they go to.
//!
//! Fanning one event out to 10,000 streams must not copy it 10,000 times (axum's `Event`
//! would): a frame is built once and each stream's queue holds a reference-counted handle.

use bytes::Bytes;
use serde::Serialize;

use crate::fixture::UserId;

/// The first bytes of every stream: the reconnection delay EventSource should use.
pub const RETRY: &[u8] = b"retry: 1000\n\n";
/// A comment line that keeps the connection busy so a vanished peer is noticed on write.
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// A user's presence as relayed to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    /// Online and active.
    Active,
    /// Online and idle.
    Idle,
    /// No open stream.
    Offline,
}

impl PresenceState {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Active => "active",
            PresenceState::Idle => "idle",
            PresenceState::Offline => "offline",
        }
    }
}

/// One event as a stream carries it.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Server-wide id.
    pub id: u64,
    /// `id:` / `event:` / `data:` lines and the blank line, ready to write.
    pub bytes: Bytes,
}

#[derive(Serialize)]
struct MessageData<'a> {
    id: u64,
    flow: &'a str,
    user: UserId,
    event: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct PresenceData {
    id: u64,
    user: UserId,
    state: PresenceState,
}

fn build(id: u64, event: &str, data: &impl Serialize) -> Frame {
    // serde_json escapes newlines inside strings, so `data:` is always one line.
    let json = serde_json::to_string(data).expect("plain structs serialise");
    let mut out = String::with_capacity(json.len() + event.len() + 40);
    out.push_str("id: ");
    out.push_str(&id.to_string());
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(&json);
    out.push_str("\n\n");
    Frame {
        id,
        bytes: Bytes::from(out),
    }
}

/// A posted message (`event` is `message` or `comment`).
pub fn message(id: u64, flow: &str, user: UserId, event: &str, content: &str) -> Frame {
    build(
        id,
        event,
        &MessageData {
            id,
            flow,
            user,
            event,
            content,
        },
    )
}

/// A presence change of `user`.
pub fn presence(id: u64, user: UserId, state: PresenceState) -> Frame {
    build(id, "presence", &PresenceData { id, user, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_with_single_line_data() {
        let f = message(42, "acme/main", 1, "message", "two\nlines \"quoted\"");
        let text = std::str::from_utf8(&f.bytes).unwrap();
        assert!(
            text.starts_with("id: 42\nevent: message\ndata: {"),
            "{text}"
        );
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 4, "{text}");
        let data: serde_json::Value =
            serde_json::from_str(text.lines().nth(2).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["content"], "two\nlines \"quoted\"");
        assert_eq!(data["id"], 42);
        let p = presence(43, 2, PresenceState::Idle);
        assert_eq!(
            std::str::from_utf8(&p.bytes).unwrap(),
            "id: 43\nevent: presence\ndata: {\"id\":43,\"user\":2,\"state\":\"idle\"}\n\n"
        );
    }
}

//! The baseline: the smallest axum SSE server that does this job, as issue 11 describes it:
//! axum + one tokio `broadcast` channel per flow, no auth, presence, history, heartbeats or
//! instrumentation. Each event is serialised once per post and handed to axum's `Event` per
//! subscriber (axum copies it into its own buffer per stream: the idiomatic cost).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::broadcast;

/// One published message: its id and its JSON, built once.
struct Msg {
    id: u64,
    json: String,
}

#[derive(Default)]
struct Hub {
    flows: Mutex<HashMap<String, broadcast::Sender<Arc<Msg>>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn channel(&self, path: &str) -> broadcast::Sender<Arc<Msg>> {
        self.flows
            .lock()
            .expect("hub lock")
            .entry(path.to_owned())
            .or_insert_with(|| broadcast::channel(4096).0)
            .clone()
    }
}

#[derive(serde::Deserialize)]
struct PostBody {
    event: String,
    content: String,
}

async fn stream(State(hub): State<Arc<Hub>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(filter) = q.get("filter") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let rx = hub.channel(filter).subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    let ev = Event::default()
                        .id(m.id.to_string())
                        .event("message")
                        .data(&m.json);
                    return Some((Ok::<_, Infallible>(ev), rx));
                }
                // The minimal server skips what it missed, as tokio's broadcast invites.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).into_response()
}

async fn publish(
    State(hub): State<Arc<Hub>>,
    Path((org, flow)): Path<(String, String)>,
    axum::Json(body): axum::Json<PostBody>,
) -> Response {
    let path = format!("{org}/{flow}");
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let json = serde_json::json!({
        "id": id, "flow": path, "event": body.event, "content": body.content,
    })
    .to_string();
    let _ = hub.channel(&path).send(Arc::new(Msg { id, json }));
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "id": id })),
    )
        .into_response()
}

/// The `minimal` role: serves on 127.0.0.1 (an ephemeral port), prints
/// `listening on http://ADDR`, runs until killed.
pub fn server_main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let app = Router::new()
            .route("/flows", get(stream))
            .route("/flows/{org}/{flow}/messages", post(publish))
            .with_state(Arc::new(Hub::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("address")
        );
        axum::serve(listener, app).await.expect("serve");
    });
}

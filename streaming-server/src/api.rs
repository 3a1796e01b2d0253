//! The request/response routes (axum on hyper): posting, presence, health, the debug
//! endpoints and the small reference client page. Streams never come here (see `accept`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::App;
use crate::fixture::UserId;
use crate::request::{BadRequest, parse_bearer, parse_post, parse_presence};

/// An error response: a status, a JSON body `{"error", "message"}`, and a counted reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(
        app: &App,
        status: StatusCode,
        label: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        app.metrics.rejected(label);
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(app: &App, bad: BadRequest) -> Self {
        Self::new(
            app,
            StatusCode::BAD_REQUEST,
            bad.label(),
            "bad_request",
            bad.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        r
    }
}

/// The debug routes, behind one check (loopback or `--debug-token`) applied to all of them.
fn debug_routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/debug/leakwatch", get(debug_snapshot))
        .route("/debug/streams/close", post(cut_streams))
        .route("/debug/leakwatch/ui", get(dashboard))
        .route("/debug/leakwatch/ui/data", get(dashboard))
        .route_layer(axum::middleware::from_fn_with_state(app, require_debug))
}

async fn require_debug(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    debug_allowed(&app, peer, req.headers(), req.uri())?;
    Ok(next.run(req).await)
}

/// The routes of one server.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.config.max_body_bytes;
    Router::new()
        .route("/flows/{org}/{flow}/messages", post(post_message))
        .route("/presence", post(post_presence))
        .route("/healthz", get(|| async { "ok" }))
        .route("/client", get(client_page))
        .merge(debug_routes(app.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response_with_state(
            app.clone(),
            count_status,
        ))
        .with_state(app)
}

async fn count_status(State(app): State<Arc<App>>, res: Response) -> Response {
    app.metrics.status(res.status().as_u16());
    res
}

async fn not_found(State(app): State<Arc<App>>) -> ApiError {
    ApiError::new(
        &app,
        StatusCode::NOT_FOUND,
        "not_found",
        "not_found",
        "no such route",
    )
}

async fn method_not_allowed(State(app): State<Arc<App>>) -> ApiError {
    ApiError::new(
        &app,
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// The user behind the request's bearer token (header or `access_token` parameter).
fn authenticate(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<UserId, ApiError> {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(h) => Some(parse_bearer(h.as_bytes()).map_err(|b| ApiError::bad(app, b))?),
        None => query_param(uri, "access_token"),
    };
    token
        .as_deref()
        .and_then(|t| app.dir.user_by_token(t))
        .map(|u| u.id)
        .ok_or_else(|| {
            ApiError::new(
                app,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized",
                "a valid bearer token is required (Authorization header or access_token parameter)",
            )
        })
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn body_or_error(app: &App, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                app,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "too_large",
                format!(
                    "the body is larger than {} bytes",
                    app.config.max_body_bytes
                ),
            )
        } else {
            ApiError::bad(app, BadRequest::BadJson)
        }
    })
}

async fn post_message(
    State(app): State<Arc<App>>,
    Path((org, flow)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let user = authenticate(&app, &headers, &uri)?;
    let body = body_or_error(&app, body)?;
    let path = format!("{org}/{flow}");
    let Some(f) = app.dir.flow_by_path(&path) else {
        return Err(ApiError::new(
            &app,
            StatusCode::NOT_FOUND,
            "unknown_flow",
            "not_found",
            "no such flow",
        ));
    };
    if !app.dir.is_member(user, f) {
        return Err(ApiError::new(
            &app,
            StatusCode::FORBIDDEN,
            "forbidden",
            "forbidden",
            "you are not a member of this flow",
        ));
    }
    let post = parse_post(&body).map_err(|b| ApiError::bad(&app, b))?;
    let id = app.hub.publish(f, &path, user, &post.event, &post.content);
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn post_presence(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let user = authenticate(&app, &headers, &uri)?;
    let body = body_or_error(&app, body)?;
    let active = parse_presence(&body).map_err(|b| ApiError::bad(&app, b))?;
    app.presence.choose(user, active);
    let state = app.presence.state(user);
    Ok(axum::Json(json!({ "state": state.as_str() })).into_response())
}

/// Debug endpoints answer loopback clients, or anyone presenting `--debug-token`.
pub(crate) fn debug_allowed(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), ApiError> {
    if peer.ip().is_loopback() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| parse_bearer(h.as_bytes()).ok())
        .or_else(|| query_param(uri, "debug_token"));
    match (&app.config.debug_token, presented) {
        (Some(want), Some(got)) if *want == got => Ok(()),
        _ => Err(ApiError::new(
            app,
            StatusCode::FORBIDDEN,
            "forbidden",
            "forbidden",
            "debug endpoints answer loopback clients, or clients presenting --debug-token",
        )),
    }
}

async fn debug_snapshot(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let snap = app.metrics.registry.snapshot();
    Ok(axum::Json(snap).into_response())
}

/// Ends every open stream (clients resume with Last-Event-ID), e.g. before a deploy.
async fn cut_streams(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let closed = app.cut_streams();
    Ok(axum::Json(json!({ "closed": closed })).into_response())
}

/// The leakwatch dashboard's page and its JSON endpoint (`.../ui/data`).
async fn dashboard(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let Some(ui) = app.dashboard.lock().clone() else {
        return Err(ApiError::new(
            &app,
            StatusCode::NOT_FOUND,
            "not_found",
            "not_found",
            "no watchdog runs in this server, so there is no dashboard",
        ));
    };
    let res = if uri.path().ends_with("/data") {
        ui.data(uri.query())
    } else {
        ui.page()
    };
    Ok(res.map(axum::body::Body::from))
}

async fn client_page() -> Html<&'static str> {
    Html(include_str!("client.html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;
    use crate::fixture::{Directory, Fixture};

    fn app(debug_token: Option<&str>) -> App {
        let args = ServeArgs {
            debug_token: debug_token.map(str::to_owned),
            ..ServeArgs::default()
        };
        let reg = leakwatch::Registry::new();
        let metrics = Arc::new(crate::instrument::Metrics::new(&reg));
        let (_tx, rx) = tokio::sync::watch::channel(false);
        App::new(
            args.config().unwrap(),
            Arc::new(Directory::new(Fixture::builtin())),
            metrics,
            rx,
        )
    }

    #[test]
    fn debug_routes_answer_loopback_or_the_debug_token_only() {
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let uri: Uri = "/debug/leakwatch".parse().unwrap();
        let none = HeaderMap::new();
        let closed = app(None);
        assert!(debug_allowed(&closed, local, &none, &uri).is_ok());
        assert!(debug_allowed(&closed, local6, &none, &uri).is_ok());
        assert!(debug_allowed(&closed, remote, &none, &uri).is_err());
        let open = app(Some("s3cret"));
        assert!(debug_allowed(&open, remote, &none, &uri).is_err());
        let with_param: Uri = "/debug/leakwatch?debug_token=s3cret".parse().unwrap();
        assert!(debug_allowed(&open, remote, &none, &with_param).is_ok());
        let wrong: Uri = "/debug/leakwatch?debug_token=nope".parse().unwrap();
        assert!(debug_allowed(&open, remote, &none, &wrong).is_err());
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(debug_allowed(&open, remote, &bearer, &uri).is_ok());
    }
}

//! A live leak dashboard in the browser for a running [`leakwatch::Watchdog`]: one page and
//! one JSON endpoint, as plain [`http`] requests and responses that any web framework mounts.
//!
//! ```
//! use std::time::Duration;
//! use leakwatch::{Registry, Token, Watchdog};
//! use leakwatch_dashboard::Dashboard;
//!
//! let reg = Registry::new();
//! let watchdog = Watchdog::builder()
//!     .registry(&reg)
//!     .interval(Duration::from_millis(10))
//!     .start()?;
//! let dashboard = Dashboard::new(watchdog); // or an Arc<Watchdog> you keep
//!
//! let _conn = Token::new_in(&reg, "http.streams");
//! while dashboard.watchdog().history("live.http.streams").is_empty() {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//!
//! let page = dashboard.page(); // GET /debug/leakwatch/ui
//! assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
//!
//! let data = dashboard.data(Some("series=live.http.streams")); // GET .../ui/data?series=...
//! assert_eq!(data.status(), 200);
//! let json: serde_json::Value = serde_json::from_str(data.body())?;
//! assert_eq!(json["series"][0]["name"], "live.http.streams");
//! assert_eq!(json["series"][0]["points"][0][1], 1.0);
//!
//! assert_eq!(dashboard.data(Some("series=live.nope")).status(), 404);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Mounting
//!
//! Serve [`Dashboard::page`] at a path of your choice and [`Dashboard::data`] at the same
//! path plus `/data` (the page finds its data there; [`DashboardBuilder::data_url`] changes
//! that). In axum (`http::Response<String>` is an axum response):
//!
//! ```
//! use axum::{Router, http::Uri, routing::get};
//! use leakwatch_dashboard::Dashboard;
//!
//! fn leakwatch_routes(watchdog: std::sync::Arc<leakwatch::Watchdog>) -> Router {
//!     let ui = Dashboard::new(watchdog); // or Dashboard::builder(watchdog).group(..).build()?
//!     let data = ui.clone();
//!     Router::new()
//!         .route("/debug/leakwatch/ui", get(move || async move { ui.page() }))
//!         .route("/debug/leakwatch/ui/data", get(move |uri: Uri| async move { data.data(uri.query()) }))
//! }
//! ```
//!
//! Elsewhere (hyper, actix, a hand-written server) [`Dashboard::handle`] answers any
//! request for either route from its method, path and query.
//!
//! # Cost
//!
//! Nothing runs for the dashboard: it has no thread, no timer and no buffer of its own. The
//! watchdog already keeps a bounded history of every series; a request reads it under the
//! history's lock and serialises what was asked. With nobody on the page there are no
//! requests, so it costs nothing; while someone is, the page polls once per refresh (default
//! 1 s) for only the series it draws, with `since` so each answer carries only new samples,
//! pauses while the browser tab is hidden, and looks for new series every 5 s.
//!
//! # Why a small script of our own, and canvas
//!
//! The charts are drawn in the browser by `assets/dashboard.js` (about 500 lines, no
//! third-party code, no build step) on `<canvas>`, rather than rendered by the service as SVG
//! by the plotting code of `leakwatch plot`:
//!
//! * **Live updates.** Server-side SVG means re-rendering and re-sending every chart on every
//!   refresh; the script fetches only the samples since its last poll (a few numbers per
//!   series) and redraws locally.
//! * **Series choice with 10,000 series.** The page asks the endpoint for the few series each
//!   chart shows (the largest by default, or those chosen with the chart's "series" button,
//!   searched by pattern on the server); only those are fetched, kept and drawn, so the
//!   browser's cost does not grow with the service's series count.
//! * **Canvas, not SVG,** because each redraw is a handful of polylines into one bitmap: no
//!   DOM nodes per point to create and collect every second.
//!
//! The page loads nothing from outside the service: HTML, script and styles are built into
//! this crate (`include_str!`) and served as one document, whose Content-Security-Policy
//! lets the browser fetch only from the page's own origin.
//!
//! # The JSON endpoint
//!
//! `GET <page>/data?series=a,b&match=live.*&limit=8&since=T` answers a [`DataResponse`]:
//! the watchdog's recent samples of the chosen series (`[t, value]`, `t` in seconds since the
//! watchdog started) and its recent alerts, firing and resolved, with their text and hints.
//! [`DataQuery`] lists the parameters. A name in `series` the watchdog has no history of is
//! a `404` and any invalid parameter a `400`, both with `{"error": "<reason>"}` ([`ErrorBody`]).
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

mod data;
mod group;
mod page;
mod query;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use leakwatch::{Selector, Watchdog};

pub use data::{AlertEntry, DataError, DataResponse, ErrorBody, SeriesData};
pub use group::{DEFAULT_GROUP_LIMIT, Group, Plot, Unit};
pub use query::{DEFAULT_LIMIT, DataQuery, MAX_LIMIT, QueryError};

/// The live dashboard of one watchdog: the page and its JSON endpoint. Cheap to clone (one
/// `Arc`), so each route gets its own copy.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    watchdog: Arc<Watchdog>,
    groups: Vec<Group>,
    /// The rendered page; built once, the configuration never changes.
    page: String,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("groups", &self.inner.groups)
            .finish_non_exhaustive()
    }
}

/// Why a dashboard configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A group's pattern is invalid.
    #[error("group {group:?}: {source}")]
    Pattern {
        /// The group's title.
        group: String,
        /// Why.
        source: leakwatch::detect::ConfigError,
    },
    /// A group has neither patterns nor series.
    #[error("group {0:?} shows nothing: give it patterns or series")]
    EmptyGroup(String),
    /// A group's limit is outside 1 to [`MAX_LIMIT`].
    #[error("group {group:?}: limit must be from 1 to {MAX_LIMIT}, got {limit}")]
    Limit {
        /// The group's title.
        group: String,
        /// The limit given.
        limit: usize,
    },
    /// The refresh interval is under 100 ms or over an hour.
    #[error("refresh must be from 100 ms to 1 h, got {0:?}")]
    Refresh(Duration),
}

/// Configures a [`Dashboard`]: title, chart groups, refresh, data URL.
#[derive(Debug)]
pub struct DashboardBuilder {
    watchdog: Arc<Watchdog>,
    title: String,
    groups: Vec<Group>,
    refresh: Duration,
    data_url: Option<String>,
}

impl DashboardBuilder {
    /// The page's title (default `leakwatch`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Replaces the charts with these groups, in this order (default: [`Group::defaults`]).
    pub fn groups(mut self, groups: impl IntoIterator<Item = Group>) -> Self {
        self.groups = groups.into_iter().collect();
        self
    }

    /// Adds one chart after the others.
    pub fn group(mut self, group: Group) -> Self {
        self.groups.push(group);
        self
    }

    /// How often an open page polls for new samples (default 1 s; 100 ms to 1 h).
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// Where the page fetches its data (default: the page's own path + `/data`, so a page
    /// at `/debug/leakwatch/ui` fetches `/debug/leakwatch/ui/data`).
    pub fn data_url(mut self, url: impl Into<String>) -> Self {
        self.data_url = Some(url.into());
        self
    }

    /// Checks the configuration and renders the page.
    pub fn build(self) -> Result<Dashboard, ConfigError> {
        for g in &self.groups {
            if g.patterns.is_empty() && g.series.is_empty() {
                return Err(ConfigError::EmptyGroup(g.title.clone()));
            }
            if !g.patterns.is_empty() {
                Selector::new(g.patterns.iter().cloned()).map_err(|source| {
                    ConfigError::Pattern {
                        group: g.title.clone(),
                        source,
                    }
                })?;
            }
            if !(1..=MAX_LIMIT).contains(&g.limit) {
                return Err(ConfigError::Limit {
                    group: g.title.clone(),
                    limit: g.limit,
                });
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.refresh) {
            return Err(ConfigError::Refresh(self.refresh));
        }
        let page = page::render(&page::PageConfig {
            title: &self.title,
            data_url: self.data_url.as_deref(),
            refresh_ms: self.refresh.as_millis() as u64,
            // Discovering which series a chart shows scans every name: a few times a minute
            // is enough, and never more often than the data poll.
            discover_ms: (self.refresh.as_millis() as u64).max(5000),
            groups: &self.groups,
        });
        Ok(Dashboard {
            inner: Arc::new(Inner {
                watchdog: self.watchdog,
                groups: self.groups,
                page,
            }),
        })
    }
}

impl Dashboard {
    /// The dashboard of `watchdog` with the default charts ([`Group::defaults`]). Pass the
    /// watchdog itself, or an `Arc<Watchdog>` you also keep (it stops when the last one is
    /// dropped).
    pub fn new(watchdog: impl Into<Arc<Watchdog>>) -> Dashboard {
        Dashboard::builder(watchdog)
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to choose the charts, title and refresh.
    pub fn builder(watchdog: impl Into<Arc<Watchdog>>) -> DashboardBuilder {
        DashboardBuilder {
            watchdog: watchdog.into(),
            title: "leakwatch".to_owned(),
            groups: Group::defaults(),
            refresh: Duration::from_secs(1),
            data_url: None,
        }
    }

    /// The watchdog this dashboard reads.
    pub fn watchdog(&self) -> &Arc<Watchdog> {
        &self.inner.watchdog
    }

    /// The charts, in page order.
    pub fn groups(&self) -> &[Group] {
        &self.inner.groups
    }

    /// The page: `200 OK`, `text/html`, one self-contained document (script, styles and
    /// chart configuration inlined), with a Content-Security-Policy that forbids loading
    /// anything from elsewhere.
    pub fn page(&self) -> Response<String> {
        let mut res = Response::new(self.inner.page.clone());
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        res
    }

    /// The JSON endpoint for a query string (the part after `?`, without it): `200` with a
    /// [`DataResponse`], or `400`/`404` with an [`ErrorBody`] naming the reason.
    pub fn data(&self, query: Option<&str>) -> Response<String> {
        let result = DataQuery::parse(query)
            .map_err(DataError::from)
            .and_then(|q| self.read(&q));
        match result {
            Ok(data) => json(
                StatusCode::OK,
                serde_json::to_string(&data).expect("data serialises"),
            ),
            Err(e) => json(
                e.status(),
                serde_json::to_string(&ErrorBody::from(&e)).expect("error serialises"),
            ),
        }
    }

    /// Reads what `query` asks for, without HTTP: what [`data`](Self::data) serialises.
    pub fn read(&self, query: &DataQuery) -> Result<DataResponse, DataError> {
        data::read(&self.inner.watchdog, query)
    }

    /// Answers a request for either route: a path ending in `/data` gets
    /// [`data`](Self::data), any other path the [`page`](Self::page). Only `GET` and
    /// `HEAD` are allowed (`405` otherwise); the body of `HEAD` is left for the server to drop.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<String> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut res = json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::to_string(&ErrorBody {
                    error: format!("method {} not allowed; use GET", request.method()),
                    unknown: Vec::new(),
                })
                .expect("error serialises"),
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let uri = request.uri();
        if uri.path().trim_end_matches('/').ends_with("/data") {
            self.data(uri.query())
        } else {
            self.page()
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

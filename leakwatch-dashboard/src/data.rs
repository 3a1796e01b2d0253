//! The data endpoint's answer: the watchdog's recent samples of the chosen series and its
//! recent alerts, read on request.

use std::collections::HashSet;

use leakwatch::{Alert, Watchdog};
use serde::{Deserialize, Serialize};

use crate::query::{DataQuery, QueryError};

/// The JSON the data endpoint answers with (`200 OK`).
///
/// ```json
/// {
///   "newest": 42.0,
///   "matched": 3,
///   "series": [
///     {"name": "live.http.streams", "last": 480.0, "points": [[41.0, 478.0], [42.0, 480.0]]}
///   ],
///   "alerts": [
///     {"rule": "divergence", "name": "live.presence.callbacks~live.http.streams",
///      "series": "live.presence.callbacks", "other": "live.http.streams", "state": "firing",
///      "values": {"live.presence.callbacks": 534.0, "live.http.streams": 480.0},
///      "expected": 480.0, "since": 3.0, "at": 33.0, "hint": [{"location": "src/presence.rs:88:9", "live": 54, "age_ms": 30000}],
///      "message": "...", "active": true}
///   ]
/// }
/// ```
///
/// Times are seconds since the watchdog started (the watchdog's `t`, the same clock as the
/// alerts' `at` and `since`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataResponse {
    /// Time of the watchdog's newest sample, `null` before its first tick. Send it back as
    /// `since` to get only newer samples.
    pub newest: Option<f64>,
    /// How many series the `match` patterns selected before `limit` cut them (0 without
    /// `match`): the page says "8 of 10000".
    pub matched: usize,
    /// The `series` names in request order, then the matched series, largest newest value
    /// first (ties by name); each series once.
    pub series: Vec<SeriesData>,
    /// The watchdog's recent alerts (at most [`leakwatch::watchdog::RECENT_ALERTS`]),
    /// firing and resolved, oldest first; empty with `alerts=false`.
    pub alerts: Vec<AlertEntry>,
}

/// One series in a [`DataResponse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesData {
    /// The flattened metric name, e.g. `live.presence.callbacks`.
    pub name: String,
    /// The newest value: for matched series always; for `series` names the newest of the
    /// returned points (`null` when none is newer than `since`, or with `points=false`).
    pub last: Option<f64>,
    /// `[t, value]` samples newer than `since`, oldest first; absent with `points=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<(f64, f64)>>,
}

/// An alert as the watchdog's hooks receive it ([`Alert`]'s JSON: `rule`, `name`,
/// `series`, `other`, `state`, `values`, `since`, `at`, `hint`, `message`, ...), plus
/// whether it is still firing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// True for a firing alert that has not resolved since (it is among the watchdog's
    /// [`active_alerts`](Watchdog::active_alerts)).
    pub active: bool,
}

/// Why the data endpoint refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// The query string is invalid (`400 Bad Request`).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Some `series` names have no history (`404 Not Found`): never sampled, misspelled, or
    /// absent for a whole history length and forgotten.
    #[error(
        "unknown series: {}; list the known ones with ?match=*&points=false&limit=1000",
        .0.join(", ")
    )]
    UnknownSeries(Vec<String>),
}

impl DataError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            DataError::Query(_) => http::StatusCode::BAD_REQUEST,
            DataError::UnknownSeries(_) => http::StatusCode::NOT_FOUND,
        }
    }
}

/// The JSON body of a refused request: `{"error": "<reason>", "unknown": [...]}`
/// (`unknown` only for unknown series).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, and what to do instead.
    pub error: String,
    /// The unknown series names, for a 404.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl From<&DataError> for ErrorBody {
    fn from(e: &DataError) -> Self {
        ErrorBody {
            error: e.to_string(),
            unknown: match e {
                DataError::UnknownSeries(names) => names.clone(),
                DataError::Query(_) => Vec::new(),
            },
        }
    }
}

/// Reads what `query` asks for from `watchdog`.
pub(crate) fn read(watchdog: &Watchdog, query: &DataQuery) -> Result<DataResponse, DataError> {
    let since = query.since.unwrap_or(f64::NEG_INFINITY);
    let mut names: Vec<&str> = query.series.iter().map(String::as_str).collect();
    let mut lasts: Vec<Option<f64>> = vec![None; names.len()];

    // Matched series: one pass over the names with history, copying only those that match.
    let mut matched = Vec::new();
    if let Some(selector) = query.selector()? {
        let exact: HashSet<&str> = names.iter().copied().collect();
        matched = watchdog.latest_values(|n| selector.matches(n) && !exact.contains(n));
        matched.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    let matched_count = matched.len();
    matched.truncate(query.limit);
    names.extend(matched.iter().map(|(n, _)| n.as_str()));
    lasts.extend(matched.iter().map(|(_, v)| Some(*v)));

    // With points=false the read still answers whether each name is known; reading from
    // +inf copies no samples.
    let samples = watchdog.samples_since(&names, if query.points { since } else { f64::INFINITY });
    let unknown: Vec<String> = names
        .iter()
        .zip(&samples.series)
        .take(query.series.len())
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| (*n).to_owned())
        .collect();
    if !unknown.is_empty() {
        return Err(DataError::UnknownSeries(unknown));
    }
    // A matched series forgotten between the two reads is left out, not an error: nobody
    // asked for it by name.
    let series = names
        .iter()
        .zip(samples.series)
        .zip(lasts)
        .filter_map(|((name, points), last)| {
            let points = points?;
            Some(SeriesData {
                name: (*name).to_owned(),
                last: last.or_else(|| points.last().map(|p| p.1)),
                points: query.points.then_some(points),
            })
        })
        .collect();

    let alerts = if query.alerts {
        let active = watchdog.active_alerts();
        watchdog
            .recent_alerts()
            .into_iter()
            .map(|alert| {
                let active = active
                    .iter()
                    .any(|a| a.name == alert.name && a.series == alert.series && a.at == alert.at);
                AlertEntry { alert, active }
            })
            .collect()
    } else {
        Vec::new()
    };

    Ok(DataResponse {
        newest: samples.newest,
        matched: matched_count,
        series,
        alerts,
    })
}

//! The data endpoint's query string: which series, since when, and what to include.

use std::borrow::Cow;

use leakwatch::Selector;
use percent_encoding::percent_decode_str;

/// The most series one request may name or match (`series` names, `limit`).
pub const MAX_LIMIT: usize = 1000;

/// Series a `match` selection returns when the request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 10;

/// A request to the data endpoint, parsed from its query string by [`DataQuery::parse`].
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `series=a,b` | exact series names (repeatable); an unknown one is a 404 | none |
/// | `match=p,q` | glob patterns (`*` = any run of characters); the `limit` series with the largest newest value | none |
/// | `limit=N` | how many matched series to return, 1 to [`MAX_LIMIT`] | [`DEFAULT_LIMIT`] |
/// | `since=T` | only samples with `t > T` (seconds since the watchdog started; the previous answer's `newest`) | all |
/// | `points=false` | names (and newest values) only, no samples | `true` |
/// | `alerts=false` | leave out the alerts | `true` |
///
/// Values are percent-decoded, `+` is a space; lists are comma-separated. Any other
/// parameter is refused, so a typo does not silently return everything.
#[derive(Clone, Debug, PartialEq)]
pub struct DataQuery {
    /// Exact series names.
    pub series: Vec<String>,
    /// Glob patterns; empty when no `match` was given.
    pub patterns: Vec<String>,
    /// How many matched series to return.
    pub limit: usize,
    /// Only samples newer than this.
    pub since: Option<f64>,
    /// Whether to include samples.
    pub points: bool,
    /// Whether to include alerts.
    pub alerts: bool,
}

impl Default for DataQuery {
    fn default() -> Self {
        DataQuery {
            series: Vec::new(),
            patterns: Vec::new(),
            limit: DEFAULT_LIMIT,
            since: None,
            points: true,
            alerts: true,
        }
    }
}

/// Why a query string was refused (answered with `400 Bad Request`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// A parameter the endpoint does not know.
    #[error("unknown parameter `{0}`; expected series, match, limit, since, points or alerts")]
    UnknownParameter(String),
    /// A parameter's value is not valid percent-encoded UTF-8.
    #[error("parameter `{0}` is not valid percent-encoded UTF-8")]
    Encoding(String),
    /// `since` is not a finite number.
    #[error("since must be a finite number of seconds (the previous answer's `newest`), got `{0}`")]
    Since(String),
    /// `limit` is not a whole number from 1 to [`MAX_LIMIT`].
    #[error("limit must be a whole number from 1 to {MAX_LIMIT}, got `{0}`")]
    Limit(String),
    /// `points` or `alerts` is not a boolean.
    #[error("{param} must be true, false, 1 or 0, got `{value}`")]
    Bool {
        /// The parameter.
        param: &'static str,
        /// What it was given.
        value: String,
    },
    /// A `match` pattern is invalid.
    #[error("invalid match pattern: {0}")]
    Pattern(String),
    /// More than [`MAX_LIMIT`] names in `series`.
    #[error("at most {MAX_LIMIT} series per request, got {0}; ask in several requests")]
    TooManySeries(usize),
}

impl DataQuery {
    /// Parses the query part of a URL (without `?`); `None` or empty is the default query
    /// (no series, alerts only).
    pub fn parse(query: Option<&str>) -> Result<DataQuery, QueryError> {
        let mut q = DataQuery::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).map_err(|_| QueryError::Encoding(key.to_owned()))?;
            let value = decode(raw).map_err(|_| QueryError::Encoding(key.to_string()))?;
            match &*key {
                "series" => q.series.extend(list(&value)),
                "match" => q.patterns.extend(list(&value)),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| QueryError::Limit(value.to_string()))?;
                }
                "since" => {
                    let since: f64 = value
                        .parse()
                        .ok()
                        .filter(|t: &f64| t.is_finite())
                        .ok_or_else(|| QueryError::Since(value.to_string()))?;
                    q.since = Some(since);
                }
                "points" => q.points = boolean("points", &value)?,
                "alerts" => q.alerts = boolean("alerts", &value)?,
                other => return Err(QueryError::UnknownParameter(other.to_owned())),
            }
        }
        if q.series.len() > MAX_LIMIT {
            return Err(QueryError::TooManySeries(q.series.len()));
        }
        // Dropping repeats keeps the answer one entry per series.
        let mut seen = std::collections::HashSet::new();
        q.series.retain(|s| seen.insert(s.clone()));
        q.selector()?;
        Ok(q)
    }

    /// The `match` patterns as a selector (`None` without patterns).
    pub(crate) fn selector(&self) -> Result<Option<Selector>, QueryError> {
        if self.patterns.is_empty() {
            return Ok(None);
        }
        Selector::new(self.patterns.iter().cloned())
            .map(Some)
            .map_err(|e| QueryError::Pattern(e.to_string()))
    }
}

fn decode(s: &str) -> Result<Cow<'_, str>, std::str::Utf8Error> {
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| Cow::Owned(c.into_owned()))
    } else {
        percent_decode_str(s).decode_utf8()
    }
}

fn list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn boolean(param: &'static str, value: &str) -> Result<bool, QueryError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(QueryError::Bool {
            param,
            value: value.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter() {
        let q = DataQuery::parse(Some(
            "series=live.a,live.b%2Ec&series=live.a&match=count.*&limit=3&since=12.5&points=false&alerts=0",
        ))
        .unwrap();
        assert_eq!(q.series, ["live.a", "live.b.c"], "decoded, repeats dropped");
        assert_eq!(q.patterns, ["count.*"]);
        assert_eq!(q.limit, 3);
        assert_eq!(q.since, Some(12.5));
        assert!(!q.points);
        assert!(!q.alerts);
    }

    #[test]
    fn empty_query_is_the_default() {
        assert_eq!(DataQuery::parse(None).unwrap(), DataQuery::default());
        assert_eq!(DataQuery::parse(Some("")).unwrap(), DataQuery::default());
        assert_eq!(
            DataQuery::parse(Some("series=")).unwrap().series,
            Vec::<String>::new()
        );
    }

    #[test]
    fn plus_is_a_space_and_percent_plus_is_a_plus() {
        let q = DataQuery::parse(Some("series=a+b,c%2Bd")).unwrap();
        assert_eq!(q.series, ["a b", "c+d"]);
    }

    #[test]
    fn refuses_bad_values_with_the_reason() {
        let err = |s| DataQuery::parse(Some(s)).unwrap_err();
        assert_eq!(
            err("sereis=a"),
            QueryError::UnknownParameter("sereis".into())
        );
        assert_eq!(err("since=NaN"), QueryError::Since("NaN".into()));
        assert_eq!(err("since=soon"), QueryError::Since("soon".into()));
        assert_eq!(err("limit=0"), QueryError::Limit("0".into()));
        assert_eq!(err("limit=1001"), QueryError::Limit("1001".into()));
        assert!(matches!(
            err("points=yes"),
            QueryError::Bool {
                param: "points",
                ..
            }
        ));
        assert!(matches!(err("series=%FF"), QueryError::Encoding(_)));
        assert!(matches!(err("match=a%20b"), QueryError::Pattern(_)));
        let many = format!(
            "series={}",
            (0..=MAX_LIMIT)
                .map(|i| format!("s{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(err(&many), QueryError::TooManySeries(MAX_LIMIT + 1));
        assert!(
            err("since=x")
                .to_string()
                .contains("previous answer's `newest`")
        );
    }
}

//! Chart groups: which series one chart shows and how it draws them.

use serde::Serialize;

/// How a chart draws its series' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plot {
    /// The sampled value itself (gauges: live counts, memory).
    Value,
    /// The change per second between consecutive samples (counters such as `delivered.*`
    /// and `count.*`, which only ever grow). A drop (a restarted counter) is not drawn.
    Rate,
}

/// How a chart formats its y axis and legend values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Plain numbers with k/M/G suffixes.
    Count,
    /// Bytes with KiB/MiB/GiB suffixes.
    Bytes,
}

/// One chart of the page: a title, the series it shows, and how it draws them.
///
/// Series are chosen by glob patterns (`*` matches any run of characters, dots included, as
/// in [`leakwatch::Selector`]); when more than [`limit`](Group::limit) series match, the
/// chart shows those with the largest newest value (for counters: the largest totals).
/// Series named with [`series`](Group::series) are always shown, before the matched ones.
/// The page's "series" button replaces the selection of one chart in the browser.
///
/// ```
/// use leakwatch_dashboard::Group;
/// let g = Group::rates("HTTP status codes", ["count.http.status.*"]).limit(6);
/// let pair = Group::exact("Callbacks vs streams", ["live.presence.callbacks", "live.http.streams"]);
/// # let _ = (g, pair);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub(crate) title: String,
    #[serde(rename = "match")]
    pub(crate) patterns: Vec<String>,
    pub(crate) series: Vec<String>,
    pub(crate) plot: Plot,
    pub(crate) unit: Unit,
    pub(crate) limit: usize,
}

/// Series a group shows when [`Group::limit`] is not called.
pub const DEFAULT_GROUP_LIMIT: usize = 8;

impl Group {
    /// A chart of sampled values of the series matching `patterns`.
    pub fn values<I, S>(title: impl Into<String>, patterns: I) -> Group
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Group {
            title: title.into(),
            patterns: patterns.into_iter().map(Into::into).collect(),
            series: Vec::new(),
            plot: Plot::Value,
            unit: Unit::Count,
            limit: DEFAULT_GROUP_LIMIT,
        }
    }

    /// A chart of rates per second of the counters matching `patterns`.
    pub fn rates<I, S>(title: impl Into<String>, patterns: I) -> Group
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Group {
            plot: Plot::Rate,
            ..Group::values(title, patterns)
        }
    }

    /// A chart of sampled values of exactly these series, e.g. callbacks drawn against
    /// connections: `Group::exact("Callbacks vs streams", ["live.presence.callbacks",
    /// "live.http.streams"])`.
    pub fn exact<I, S>(title: impl Into<String>, names: I) -> Group
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Group::values(title, Vec::<String>::new()).series(names)
    }

    /// Always shows these exact series (e.g. callbacks against connections), before any
    /// series matched by the patterns.
    pub fn series<I, S>(mut self, names: I) -> Group
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.series.extend(names.into_iter().map(Into::into));
        self
    }

    /// Formats values as bytes.
    pub fn bytes(mut self) -> Group {
        self.unit = Unit::Bytes;
        self
    }

    /// Shows at most `limit` series matched by the patterns (default
    /// [`DEFAULT_GROUP_LIMIT`]; 1 to [`MAX_LIMIT`](crate::MAX_LIMIT)).
    pub fn limit(mut self, limit: usize) -> Group {
        self.limit = limit;
        self
    }

    /// The chart's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The groups the page shows unless told otherwise: the graphs that found the seed's
    /// leaks.
    ///
    /// | title | series | drawn as |
    /// |---|---|---|
    /// | Memory | `memory.*_bytes` (resident, heap) | bytes |
    /// | Delivery volume | `delivered.*` | rate per second |
    /// | HTTP status codes | `count.http.status.*` | rate per second |
    /// | Live counts | `live.*`, the 8 largest | value |
    pub fn defaults() -> Vec<Group> {
        vec![
            Group::values("Memory", ["memory.*_bytes"]).bytes(),
            Group::rates("Delivery volume", ["delivered.*"]),
            Group::rates("HTTP status codes", ["count.http.status.*"]),
            Group::values("Live counts", ["live.*"]),
        ]
    }
}

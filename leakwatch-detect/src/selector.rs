//! Series selection by simple glob patterns (`*` matches any run of characters, dots included).

use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A set of glob patterns choosing series by name.
///
/// `*` matches any (possibly empty) run of characters, including `.`, so `live.*` matches
/// `live.http.streams` and `*.presence.*` matches `live.presence.callbacks`. Every other
/// character matches itself. A name is selected when any pattern matches it.
///
/// Matching is done once per (rule, series) when a series first appears, never per sample.
///
/// ```
/// use leakwatch_detect::Selector;
/// let s = Selector::new(["live.*", "memory.resident"]).unwrap();
/// assert!(s.matches("live.presence.callbacks"));
/// assert!(s.matches("memory.resident"));
/// assert!(!s.matches("requests.total"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Selector {
    patterns: Vec<String>,
}

impl Selector {
    /// Builds a selector from patterns; fails on an empty pattern or one containing whitespace.
    pub fn new<I, S>(patterns: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let patterns: Vec<String> = patterns.into_iter().map(Into::into).collect();
        for p in &patterns {
            if p.is_empty() {
                return Err(ConfigError::InvalidPattern {
                    pattern: p.clone(),
                    reason: "it is empty",
                });
            }
            if p.chars().any(char::is_whitespace) {
                return Err(ConfigError::InvalidPattern {
                    pattern: p.clone(),
                    reason: "it contains whitespace",
                });
            }
        }
        Ok(Self { patterns })
    }

    /// Selects every series.
    pub fn all() -> Self {
        Self {
            patterns: vec!["*".to_owned()],
        }
    }

    /// Selects nothing.
    pub fn none() -> Self {
        Self {
            patterns: Vec::new(),
        }
    }

    /// Selects exactly one series name (a `*` in it still acts as a wildcard).
    pub fn exact(name: impl Into<String>) -> Result<Self, ConfigError> {
        Self::new([name.into()])
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether this selector matches nothing.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| glob_match(p.as_bytes(), name.as_bytes()))
    }
}

impl Default for Selector {
    /// The default selects nothing: growth is only watched where the caller asks.
    fn default() -> Self {
        Self::none()
    }
}

impl TryFrom<Vec<String>> for Selector {
    type Error = ConfigError;
    fn try_from(v: Vec<String>) -> Result<Self, ConfigError> {
        Self::new(v)
    }
}

impl From<Selector> for Vec<String> {
    fn from(s: Selector) -> Self {
        s.patterns
    }
}

impl FromStr for Selector {
    type Err = ConfigError;
    /// Parses comma-separated patterns, e.g. `live.*,memory.resident`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Self::new(s.split(',').map(str::trim))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns.join(","))
    }
}

/// Iterative glob match with single-star backtracking: linear in practice, no recursion.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pat.len() && pat[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star swallow one more character and retry from there.
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"live.*", b"live.http.streams"));
        assert!(glob_match(b"*.presence.*", b"live.presence.callbacks"));
        assert!(!glob_match(b"*.presence.*", b"live.presence"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"memory.resident", b"memory.resident"));
        assert!(!glob_match(b"memory.resident", b"memory.resident2"));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(matches!(
            Selector::new([""]),
            Err(ConfigError::InvalidPattern { .. })
        ));
        assert!(Selector::new(["a b"]).is_err());
        assert_eq!(
            "live.*, x".parse::<Selector>().unwrap().patterns(),
            ["live.*", "x"]
        );
    }
}

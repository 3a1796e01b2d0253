//! The recording format: JSON Lines, written by the watchdog and read by `leakwatch analyze`
//! and `leakwatch plot`. This module is the only place that knows the format.
//!
//! ```text
//! {"leakwatch":"recording","version":1,"interval_ms":1000,"started_at_ms":1764000000000}
//! {"t":1.0,"values":{"live.presence.Watch":12,"memory.resident_bytes":10485760}}
//! {"t":2.0,"values":{"live.presence.Watch":13,"memory.resident_bytes":10489856}}
//! {"t":2.0,"alert":{"rule":"growth","series":"live.presence.Watch","state":"firing", ...}}
//! ```
//!
//! * Line 1 is a header object with `"leakwatch": "recording"`, `"version": 1` and
//!   `"interval_ms"`; other header keys (`started_at_ms`, `part`) are informational.
//!   `"kinds"` maps each metric known when the header was written to `"gauge"` (a level:
//!   live counts, bytes) or `"counter"` (a running total: created, delivered, `count.*`).
//! * Then one object per tick: `"t"` is seconds since the recording started (a float) and
//!   `"values"` maps series names to numbers. A series missing from a tick had no value then.
//!   A tick whose values include a metric the file has not declared yet also carries
//!   `"kinds"` for it, so every metric's kind is written before its first value
//!   ([`RecordingReader::kind`] answers for what was read so far).
//! * Lines with an `"alert"` key carry an alert (see `Alert`); readers that do not care skip them.
//! * Readers ignore unknown keys, so later versions can add some without breaking old readers.
//!
//! A last line cut off mid-object (the writer was killed, or the disk filled up) is skipped
//! by readers ([`RecordingReader::truncated`] tells); a malformed line anywhere else is an
//! error naming `file:line`.
//!
//! Size is bounded by rotation: when a file exceeds its byte limit it is renamed to
//! `<file>.1` (older parts shift to `.2`, ... up to the number kept, at most [`MAX_KEEP`])
//! and a new file starts with a new header whose `part` increases; `t` keeps counting from
//! the original start.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::snapshot::MetricKind;

/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The header line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always `"recording"`.
    pub leakwatch: String,
    /// Format version.
    pub version: u32,
    /// Sampling interval in milliseconds.
    pub interval_ms: u64,
    /// Unix time in milliseconds of `t = 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Rotation part number, 0 for the first file.
    #[serde(default)]
    pub part: u32,
    /// Gauge or counter, for the metrics known when the header was written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, MetricKind>,
}

impl Header {
    /// A version-1 header.
    pub fn new(interval_ms: u64, started_at_ms: Option<u64>) -> Header {
        Header {
            leakwatch: "recording".into(),
            version: VERSION,
            interval_ms,
            started_at_ms,
            part: 0,
            kinds: BTreeMap::new(),
        }
    }
}

/// One line of a recording after the header.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// One sample of every series.
    Tick {
        /// Seconds since the recording started.
        t: f64,
        /// Series values.
        values: BTreeMap<String, f64>,
    },
    /// An alert raised (or resolved) at `t`.
    Alert {
        /// Seconds since the recording started.
        t: f64,
        /// The alert object as written (at least `rule`, `series`, `state`).
        alert: Value,
    },
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened or read.
    #[error("cannot read recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is empty.
    #[error(
        "{path} is empty: a recording starts with a header line \
             {{\"leakwatch\":\"recording\",\"version\":1,...}}"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The first line is not a recording header.
    #[error(
        "{path}:1: not a leakwatch recording header ({reason}); expected \
             {{\"leakwatch\":\"recording\",\"version\":1,\"interval_ms\":N}}"
    )]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The recording was written by a newer, incompatible version.
    #[error(
        "{path}:1: recording version {found} is not supported (this leakwatch reads version {VERSION})"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A line after the header is malformed.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a recording line by line.
pub struct RecordingReader<R: BufRead> {
    path: PathBuf,
    lines: std::iter::Peekable<io::Lines<R>>,
    line_no: usize,
    header: Header,
    truncated: bool,
    /// Kinds declared so far: the header's, then those of later tick lines.
    kinds: BTreeMap<String, MetricKind>,
}

impl RecordingReader<BufReader<File>> {
    /// Opens `path` and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_path_buf();
        let f = File::open(&path).map_err(|source| RecordingError::Io {
            path: path.clone(),
            source,
        })?;
        RecordingReader::new(path, BufReader::new(f))
    }
}

impl<R: BufRead> RecordingReader<R> {
    /// Reads the header from `input`; `path` is used in error messages.
    pub fn new(path: impl Into<PathBuf>, input: R) -> Result<Self, RecordingError> {
        let path = path.into();
        let mut lines = input.lines();
        let first = match lines.next() {
            None => return Err(RecordingError::Empty { path }),
            Some(Err(source)) => return Err(RecordingError::Io { path, source }),
            Some(Ok(l)) => l,
        };
        let header = parse_header(&path, &first)?;
        Ok(RecordingReader {
            path,
            lines: lines.peekable(),
            line_no: 1,
            kinds: header.kinds.clone(),
            header,
            truncated: false,
        })
    }

    /// Whether metric `name` is a gauge or a counter, as declared in the header or in a tick
    /// line read so far; `None` for a metric never declared (recordings written before kinds
    /// were recorded declare none).
    pub fn kind(&self, name: &str) -> Option<MetricKind> {
        self.kinds.get(name).copied()
    }

    /// Every kind declared in what was read so far.
    pub fn kinds(&self) -> &BTreeMap<String, MetricKind> {
        &self.kinds
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the last line was cut off mid-object (the writer was killed or the disk filled
    /// up while writing it) and was skipped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Lines read so far (for progress output).
    pub fn line_number(&self) -> usize {
        self.line_no
    }

    fn bad(&self, reason: impl Into<String>) -> RecordingError {
        RecordingError::BadLine {
            path: self.path.clone(),
            line: self.line_no,
            reason: reason.into(),
        }
    }
}

fn parse_header(path: &Path, line: &str) -> Result<Header, RecordingError> {
    let bad = |reason: String| RecordingError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    if v.get("leakwatch").and_then(Value::as_str) != Some("recording") {
        return Err(bad("no \"leakwatch\": \"recording\" key".into()));
    }
    let version = v
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no numeric \"version\"".into()))?;
    if version != u64::from(VERSION) {
        return Err(RecordingError::Version {
            path: path.to_path_buf(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

impl<R: BufRead> Iterator for RecordingReader<R> {
    type Item = Result<Record, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(source) => {
                    return Some(Err(RecordingError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            let parsed = self.parse_line(&line);
            // A recording whose writer died (OOM kill, full disk) may end in half a line: the
            // samples before it are still good, so the cut-off tail is skipped, not an error.
            if parsed.is_err()
                && self.lines.peek().is_none()
                && serde_json::from_str::<Value>(&line).is_err_and(|e| e.is_eof())
            {
                self.truncated = true;
                return None;
            }
            return Some(parsed);
        }
    }
}

impl<R: BufRead> RecordingReader<R> {
    fn parse_line(&mut self, line: &str) -> Result<Record, RecordingError> {
        let v: Value =
            serde_json::from_str(line).map_err(|e| self.bad(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| self.bad("expected a JSON object"))?;
        let t = obj
            .get("t")
            .and_then(Value::as_f64)
            .ok_or_else(|| self.bad("missing numeric \"t\" (seconds since start)"))?;
        if let Some(alert) = obj.get("alert") {
            return Ok(Record::Alert {
                t,
                alert: alert.clone(),
            });
        }
        let values = obj
            .get("values")
            .and_then(Value::as_object)
            .ok_or_else(|| self.bad("missing \"values\" object"))?;
        if let Some(kinds) = obj.get("kinds") {
            let kinds: BTreeMap<String, MetricKind> = serde_json::from_value(kinds.clone())
                .map_err(|e| {
                    self.bad(format!(
                        "\"kinds\" must map names to \"gauge\" or \"counter\": {e}"
                    ))
                })?;
            self.kinds.extend(kinds);
        }
        let mut out = BTreeMap::new();
        for (k, v) in values {
            match v {
                Value::Number(n) => {
                    out.insert(k.clone(), n.as_f64().unwrap_or(f64::NAN));
                }
                // Absent samples may be written as null; they are simply not values.
                Value::Null => {}
                other => {
                    return Err(
                        self.bad(format!("value of \"{k}\" must be a number, found {other}"))
                    );
                }
            }
        }
        Ok(Record::Tick { t, values: out })
    }
}

/// Most rotated files a [`RecordingWriter`] keeps; a larger [`Rotation::keep`] is lowered to
/// this. Each rotation renames every kept part, so the cost of a rotation grows with it.
pub const MAX_KEEP: u32 = 1000;

/// Size limit and rotation for a [`RecordingWriter`].
///
/// The recording takes at most about `max_bytes × (keep + 1)` bytes on disk (each file may
/// overshoot `max_bytes` by one line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file once the current one exceeds this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept besides the current one (`.1` ... `.N`); older ones are deleted.
    /// At most [`MAX_KEEP`]; 0 starts the file over (truncated) when it is full.
    pub keep: u32,
}

impl Default for Rotation {
    /// 64 MiB per file, 3 old files kept: at most 256 MiB on disk.
    fn default() -> Self {
        Rotation {
            max_bytes: 64 * 1024 * 1024,
            keep: 3,
        }
    }
}

/// Writes a recording, rotating by size.
///
/// When a rotation fails (a rename refused, the new file cannot be created), the writer
/// stops writing rather than keep appending past the size limit, possibly to a file that was
/// already renamed or deleted: lines are dropped (the calls return the error) and every
/// later call retries the rotation, so the recording resumes with a gap once it succeeds.
pub struct RecordingWriter {
    path: PathBuf,
    /// `None` while rotating or after a failed rotation: nothing is written then.
    out: Option<BufWriter<File>>,
    /// The current file reached its limit and still has to be moved out of the way
    /// (renamed to `.1`, or given up with `keep = 0`).
    rotate_pending: bool,
    written: u64,
    header: Header,
    rotation: Rotation,
    /// Every metric kind declared: in a header or a tick line already, or in `pending`.
    declared: BTreeMap<String, MetricKind>,
    /// Kinds declared since the last tick line, written with the next one.
    pending: BTreeMap<String, MetricKind>,
}

impl std::fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

#[derive(Serialize)]
struct TickLine<'a, V: Serialize> {
    t: f64,
    values: &'a V,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    kinds: &'a BTreeMap<String, MetricKind>,
}

#[derive(Serialize)]
struct AlertLine<'a, A: Serialize> {
    t: f64,
    alert: &'a A,
}

impl RecordingWriter {
    /// Creates (truncates) `path` and writes the header. `rotation.keep` is capped at
    /// [`MAX_KEEP`].
    pub fn create(path: impl AsRef<Path>, header: Header, rotation: Rotation) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut w = RecordingWriter {
            out: Some(BufWriter::new(File::create(&path)?)),
            path,
            rotate_pending: false,
            written: 0,
            declared: header.kinds.clone(),
            pending: BTreeMap::new(),
            header,
            rotation: Rotation {
                keep: rotation.keep.min(MAX_KEEP),
                ..rotation
            },
        };
        w.write_header()?;
        Ok(w)
    }

    /// The rotation in effect (with `keep` capped at [`MAX_KEEP`]).
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    fn write_header(&mut self) -> io::Result<()> {
        let line = serde_json::to_string(&self.header).map_err(io::Error::other)?;
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                self.reopen()?;
                self.out.as_mut().expect("reopen leaves a file open")
            }
        };
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    /// Declares metric `name` a gauge or a counter. A metric not declared yet (in the
    /// header or before) is declared in the next tick line, so call this before the first
    /// [`tick`](Self::tick) carrying its value; later rotated parts declare it in their
    /// header. Declaring a known metric again does nothing.
    pub fn declare(&mut self, name: &str, kind: MetricKind) {
        if !self.declared.contains_key(name) {
            self.declared.insert(name.to_owned(), kind);
            self.pending.insert(name.to_owned(), kind);
        }
    }

    /// Writes one tick. `values` must serialise as a JSON object of numbers, e.g. a
    /// `BTreeMap<&str, f64>`.
    pub fn tick(&mut self, t: f64, values: &impl Serialize) -> io::Result<()> {
        let line = serde_json::to_string(&TickLine {
            t,
            values,
            kinds: &self.pending,
        })
        .map_err(io::Error::other)?;
        // Rotate first: if that fails, this line is dropped with the error, as documented.
        self.rotate_if_needed()?;
        self.write_line(&line)?;
        // Written (with the line, or in a new part's header): a dropped line keeps them.
        self.pending.clear();
        Ok(())
    }

    /// Writes an alert line.
    pub fn alert(&mut self, t: f64, alert: &impl Serialize) -> io::Result<()> {
        let line = serde_json::to_string(&AlertLine { t, alert }).map_err(io::Error::other)?;
        // Rotate first: if that fails, this line is dropped with the error, as documented.
        self.rotate_if_needed()?;
        self.write_line(&line)
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotate_if_needed(&mut self) -> io::Result<()> {
        if self.written < self.rotation.max_bytes || self.out.is_none() {
            return Ok(());
        }
        // Close the full file before renaming it: a handle kept across a failed rotation
        // would go on writing into `.1`, or into a part already deleted, without limit.
        let out = self.out.take().expect("checked above");
        self.rotate_pending = true;
        out.into_inner().map_err(|e| e.into_error())?;
        self.reopen()
    }

    /// Finishes a rotation: moves the full file out of the way if that is still to do, then
    /// starts the next part. On error nothing is open and the next write tries again.
    fn reopen(&mut self) -> io::Result<()> {
        if self.rotate_pending {
            let keep = self.rotation.keep;
            if keep > 0 {
                let numbered = |n: u32| {
                    let mut p = self.path.clone().into_os_string();
                    p.push(format!(".{n}"));
                    PathBuf::from(p)
                };
                // Shift only while `.1` is taken: a retry after a failed last rename must not
                // push (and delete) one more old part each time.
                if fs::symlink_metadata(numbered(1)).is_ok() {
                    let _ = fs::remove_file(numbered(keep));
                    for n in (1..keep).rev() {
                        let from = numbered(n);
                        if fs::symlink_metadata(&from).is_ok() {
                            fs::rename(&from, numbered(n + 1))?;
                        }
                    }
                }
                fs::rename(&self.path, numbered(1))?;
            }
            // With `keep = 0` the full file is simply truncated by `File::create`.
            self.rotate_pending = false;
        }
        let file = File::create(&self.path)?;
        self.out = Some(BufWriter::new(file));
        self.written = 0;
        self.header.part += 1;
        // Each part is readable alone: its header declares every kind known so far.
        self.header.kinds = self.declared.clone();
        self.write_header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("leakwatch-rec-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d.join("rec.jsonl")
    }

    #[test]
    fn round_trip() {
        let p = tmp("rt");
        let mut w =
            RecordingWriter::create(&p, Header::new(1000, Some(5)), Rotation::default()).unwrap();
        let mut v = BTreeMap::new();
        v.insert("live.a", 1.0);
        w.tick(1.0, &v).unwrap();
        w.alert(
            1.0,
            &serde_json::json!({"rule":"growth","series":"live.a","state":"firing"}),
        )
        .unwrap();
        w.flush().unwrap();
        let r = RecordingReader::open(&p).unwrap();
        assert_eq!(r.header().interval_ms, 1000);
        let recs: Vec<Record> = r.map(Result::unwrap).collect();
        assert_eq!(recs.len(), 2);
        assert!(
            matches!(&recs[0], Record::Tick { t, values } if *t == 1.0 && values["live.a"] == 1.0)
        );
        assert!(matches!(&recs[1], Record::Alert { alert, .. } if alert["state"] == "firing"));
    }

    #[test]
    fn kinds_are_declared_in_the_header_then_before_first_use() {
        let p = tmp("kinds");
        let mut header = Header::new(1000, None);
        header.kinds.insert("live.a".into(), MetricKind::Gauge);
        let rotation = Rotation {
            max_bytes: 200,
            keep: 100,
        };
        let mut w = RecordingWriter::create(&p, header, rotation).unwrap();
        w.declare("live.a", MetricKind::Counter); // known already: stays a gauge
        w.tick(1.0, &BTreeMap::from([("live.a", 1.0)])).unwrap();
        w.declare("created.a", MetricKind::Counter);
        w.tick(2.0, &BTreeMap::from([("live.a", 1.0), ("created.a", 1.0)]))
            .unwrap();
        for t in 3..20 {
            w.tick(f64::from(t), &BTreeMap::from([("live.a", 1.0)]))
                .unwrap();
        }
        w.flush().unwrap();
        // The first file: the header declares live.a, the tick at t=2 declares created.a.
        let first = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|path| RecordingReader::open(&path).unwrap())
            .find(|r| r.header().part == 0)
            .unwrap();
        assert_eq!(first.kind("live.a"), Some(MetricKind::Gauge));
        assert_eq!(first.kind("created.a"), None, "not read yet");
        let mut first = first;
        let _ = first.next();
        let _ = first.next();
        assert_eq!(first.kind("created.a"), Some(MetricKind::Counter));
        // The current (last) part's header declares both, so it is readable alone.
        let last = RecordingReader::open(&p).unwrap();
        assert!(last.header().part > 0);
        assert_eq!(last.kind("created.a"), Some(MetricKind::Counter));
        assert_eq!(last.kind("live.a"), Some(MetricKind::Gauge));
        // A bad declaration names its line.
        let input = "{\"leakwatch\":\"recording\",\"version\":1,\"interval_ms\":1000}\n\
                     {\"t\":1,\"values\":{\"a\":1},\"kinds\":{\"a\":\"level\"}}\n";
        let e = RecordingReader::new("k.jsonl", input.as_bytes())
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.jsonl:2: \"kinds\""), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let input = "{\"leakwatch\":\"recording\",\"version\":1,\"interval_ms\":1000}\n\
                     {\"t\":1,\"values\":{\"a\":1}}\n\
                     {\"t\":2,\"values\":{\"a\":\"x\"}}\n";
        let r = RecordingReader::new("x.jsonl", input.as_bytes()).unwrap();
        let results: Vec<_> = r.collect();
        assert!(results[0].is_ok());
        let e = results[1].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("x.jsonl:3:"), "{e}");
        assert!(e.contains("must be a number"), "{e}");
    }

    #[test]
    fn a_cut_off_last_line_is_skipped_but_not_a_bad_one_inside() {
        let head = "{\"leakwatch\":\"recording\",\"version\":1,\"interval_ms\":1000}\n\
                    {\"t\":1,\"values\":{\"a\":1}}\n";
        let cut = format!("{head}{{\"t\":2,\"values\":{{\"a\":");
        let mut r = RecordingReader::new("x", cut.as_bytes()).unwrap();
        let recs: Vec<_> = r.by_ref().collect();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].is_ok());
        assert!(r.truncated());
        let inside = format!("{head}{{\"t\":2,\"val\n{{\"t\":3,\"values\":{{}}}}\n");
        let results: Vec<_> = RecordingReader::new("x", inside.as_bytes())
            .unwrap()
            .collect();
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("x:3:"))
        );
        let e = RecordingReader::new(
            "y",
            "{\"leakwatch\":\"recording\",\"version\":4294967297}".as_bytes(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(!e.contains("version 1 "), "{e}");
    }

    #[test]
    fn rejects_non_recordings() {
        let e = RecordingReader::new("y", "{\"hello\":1}\n".as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("y:1"), "{e}");
        let e = RecordingReader::new("y", &b""[..])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = RecordingReader::new(
            "y",
            "{\"leakwatch\":\"recording\",\"version\":9,\"interval_ms\":1}".as_bytes(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("version 9"), "{e}");
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn small(keep: u32) -> Rotation {
        Rotation {
            max_bytes: 200,
            keep,
        }
    }

    #[test]
    fn keep_is_capped() {
        let p = tmp("cap");
        let mut w = RecordingWriter::create(&p, Header::new(1000, None), small(u32::MAX)).unwrap();
        assert_eq!(w.rotation().keep, MAX_KEEP);
        let mut v = BTreeMap::new();
        v.insert("live.some.series.name", 12345.0);
        for i in 0..40 {
            w.tick(f64::from(i), &v).unwrap();
        }
        w.flush().unwrap();
        let names = names_in(p.parent().unwrap());
        assert!(names.len() > 3, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("rec.jsonl")));
    }

    #[test]
    fn keep_zero_starts_over_and_stays_bounded() {
        let p = tmp("keep0");
        let mut w = RecordingWriter::create(&p, Header::new(1000, None), small(0)).unwrap();
        let mut v = BTreeMap::new();
        v.insert("live.some.series.name", 12345.0);
        for i in 0..200 {
            w.tick(f64::from(i), &v).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(names_in(p.parent().unwrap()), ["rec.jsonl"]);
        assert!(fs::metadata(&p).unwrap().len() < 400);
        let r = RecordingReader::open(&p).unwrap();
        assert!(r.header().part > 0);
    }

    #[test]
    fn a_failed_rotation_stops_writing_and_resumes_later() {
        let p = tmp("fail");
        // A directory where `.1` should go: renaming the full file onto it fails.
        let blocker = p.with_extension("jsonl.1");
        fs::create_dir_all(blocker.join("x")).unwrap();
        let mut w = RecordingWriter::create(&p, Header::new(1000, None), small(1)).unwrap();
        let mut v = BTreeMap::new();
        v.insert("live.some.series.name", 12345.0);
        let mut failed = 0;
        for i in 0..100 {
            failed += usize::from(w.tick(f64::from(i), &v).is_err());
        }
        let _ = w.flush();
        assert!(failed > 90, "lines were refused, not appended: {failed}");
        assert!(
            fs::metadata(&p).unwrap().len() < 400,
            "the full file did not grow past its limit"
        );
        fs::remove_dir_all(&blocker).unwrap();
        w.tick(100.0, &v).unwrap();
        w.flush().unwrap();
        assert_eq!(names_in(p.parent().unwrap()), ["rec.jsonl", "rec.jsonl.1"]);
        let r = RecordingReader::open(&p).unwrap();
        assert_eq!(r.header().part, 1);
        let recs: Vec<Record> = r.map(Result::unwrap).collect();
        assert!(matches!(&recs[..], [Record::Tick { t, .. }] if *t == 100.0));
    }

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let p = tmp("rot");
        let mut w = RecordingWriter::create(
            &p,
            Header::new(1000, None),
            Rotation {
                max_bytes: 200,
                keep: 2,
            },
        )
        .unwrap();
        let mut v = BTreeMap::new();
        v.insert("live.some.series.name", 12345.0);
        for i in 0..40 {
            w.tick(f64::from(i), &v).unwrap();
        }
        w.flush().unwrap();
        let dir = p.parent().unwrap();
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["rec.jsonl", "rec.jsonl.1", "rec.jsonl.2"]);
        for n in &names {
            let r = RecordingReader::open(dir.join(n)).unwrap();
            assert!(r.header().part > 0);
            assert!(fs::metadata(dir.join(n)).unwrap().len() < 400);
        }
    }
}

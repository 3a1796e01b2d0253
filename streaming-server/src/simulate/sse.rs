//! An incremental Server-Sent Events parser, per the WHATWG EventSource rules: lines end in
//! `\n`, `\r\n` or `\r` (a `\r\n` may be split across reads), `:` starts a comment, one space
//! after the field's colon is dropped, `data` lines join with `\n`, a blank line dispatches.

/// What one SSE block or line produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event (a block that had at least one `data` line).
    Event(SseEvent),
    /// A `retry:` field with a decimal value (milliseconds).
    Retry(u64),
    /// A comment line (heartbeats are `: heartbeat`), without the leading colon.
    Comment(String),
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field of this very block, if it had one (EventSource would carry the previous
    /// id forward; the checks want to know that the server sent one with every event).
    pub id: Option<String>,
    /// The `event` field, `message` when absent.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// Why a stream cannot be parsed any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than the parser's bound: the server is not sending SSE.
    #[error("an SSE line is longer than {0} bytes")]
    LineTooLong(usize),
    /// A line is not UTF-8.
    #[error("an SSE line is not valid UTF-8")]
    InvalidUtf8,
}

/// The parser's state between reads.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// The last read ended in `\r`: a `\n` starting the next read belongs to it.
    skip_lf: bool,
    max_line: usize,
    id: Option<String>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            skip_lf: false,
            max_line,
            id: None,
            event: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// Feeds one read's bytes; complete items are appended to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b != b'\n' && b != b'\r' {
                i += 1;
                continue;
            }
            let line = std::str::from_utf8(&self.buf[start..i])
                .map_err(|_| SseError::InvalidUtf8)?
                .to_owned();
            let mut next = i + 1;
            if b == b'\r' {
                if next < self.buf.len() {
                    if self.buf[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            self.line(&line, out);
            start = next;
            i = next;
        }
        self.buf.drain(..start);
        if self.buf.len() > self.max_line {
            return Err(SseError::LineTooLong(self.max_line));
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // An id with NUL is ignored by EventSource.
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let id = self.id.take();
        let event = self.event.take();
        if self.has_data {
            out.push(SseItem::Event(SseEvent {
                id,
                event: event.unwrap_or_else(|| "message".to_owned()),
                data: std::mem::take(&mut self.data),
            }));
        }
        self.has_data = false;
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "retry: 1000\n\n: heartbeat\n\nid: 17\nevent: message\ndata: {\"id\":17}\n\n\
                          id: 18\nevent: presence\ndata: {\"a\":1}\ndata:two\n\nid: 19\ndata: x\n\n";

    fn expected() -> Vec<SseItem> {
        vec![
            SseItem::Retry(1000),
            SseItem::Comment("heartbeat".into()),
            SseItem::Event(SseEvent {
                id: Some("17".into()),
                event: "message".into(),
                data: "{\"id\":17}".into(),
            }),
            SseItem::Event(SseEvent {
                id: Some("18".into()),
                event: "presence".into(),
                data: "{\"a\":1}\ntwo".into(),
            }),
            SseItem::Event(SseEvent {
                id: Some("19".into()),
                event: "message".into(),
                data: "x".into(),
            }),
        ]
    }

    fn parse_in_chunks(bytes: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Vec<SseItem> {
        let mut p = SseParser::new(1 << 16);
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
            p.feed(&rest[..n], &mut out).unwrap();
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn whole_stream_at_once() {
        assert_eq!(
            parse_in_chunks(STREAM.as_bytes(), &mut std::iter::once(usize::MAX)),
            expected()
        );
    }

    #[test]
    fn every_split_point_and_byte_by_byte() {
        let bytes = STREAM.as_bytes();
        for cut in 1..bytes.len() {
            let mut sizes = [cut, usize::MAX].into_iter();
            assert_eq!(parse_in_chunks(bytes, &mut sizes), expected(), "cut {cut}");
        }
        assert_eq!(
            parse_in_chunks(bytes, &mut std::iter::repeat(1)),
            expected()
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_even_when_split() {
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        for text in [&crlf, &cr] {
            let bytes = text.as_bytes();
            for cut in 1..bytes.len() {
                let mut sizes = [cut, usize::MAX].into_iter();
                assert_eq!(parse_in_chunks(bytes, &mut sizes), expected(), "cut {cut}");
            }
            let mut odd = [3, 1, 7, 2, 5].into_iter().cycle();
            assert_eq!(parse_in_chunks(bytes, &mut odd), expected());
        }
    }

    #[test]
    fn odd_fields() {
        let text = "data\n\nid: 5\n\nid: 6\nfoo: bar\nretry: x\ndata:  two spaces\n\n";
        let out = parse_in_chunks(text.as_bytes(), &mut std::iter::once(usize::MAX));
        assert_eq!(
            out,
            vec![
                // A `data` line without colon is an empty data line: dispatched, empty data.
                SseItem::Event(SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                }),
                // `id: 5` alone has no data: nothing dispatched; its id is not carried into
                // the next block's own id.
                SseItem::Event(SseEvent {
                    id: Some("6".into()),
                    event: "message".into(),
                    data: " two spaces".into(),
                }),
            ]
        );
    }

    #[test]
    fn a_partial_event_waits_for_its_blank_line() {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        p.feed(b"id: 1\ndata: a\n", &mut out).unwrap();
        assert!(out.is_empty());
        p.feed(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn overlong_lines_and_bad_utf8_are_errors() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            p.feed(&[b'a'; 17], &mut out),
            Err(SseError::LineTooLong(16))
        );
        let mut p = SseParser::new(16);
        assert_eq!(
            p.feed(b"data: \xff\xfe\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }
}

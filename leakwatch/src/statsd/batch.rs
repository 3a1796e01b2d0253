//! Joining lines into datagram-sized chunks before they enter the queue.
//!
//! One queue entry per datagram instead of per line: 25x fewer channel operations and
//! wake-ups for a large export, which is what keeps exporting 10 000 series cheap. A chunk is
//! all-or-nothing: when the queue refuses it, every line in it is counted as dropped and none
//! of its commits are applied, so counter deltas are sent again later.
//!
//! The chunk's buffer itself is handed over: `send` takes its text and leaves an empty
//! buffer (one the sender thread returned) in its place, so lines are written once, where
//! the socket reads them.

/// Sends one chunk of `lines` newline-joined lines: on success takes the text out of the
/// buffer (leaving an empty one to write the next chunk into) and returns true; on refusal
/// returns false and leaves the text.
pub(crate) type SendChunk<'a> = &'a dyn Fn(&mut String, usize) -> bool;

/// Lines joined into one chunk at a time, each sent once full.
pub(crate) struct Batch<C> {
    /// The lines so far.
    buf: String,
    /// A line written past the chunk's end, on its way to the next chunk.
    spill: String,
    lines: usize,
    pending: Vec<C>,
    /// Largest chunk: one byte under the datagram size (chunks always stayed below it).
    cap: usize,
    pub(crate) queued: usize,
    pub(crate) refused: usize,
}

impl<C> Batch<C> {
    /// A batch writing its first chunk into `buf` (emptied first).
    pub(crate) fn new(mut buf: String, datagram_size: usize) -> Self {
        buf.clear();
        Batch {
            buf,
            spill: String::new(),
            lines: 0,
            pending: Vec::new(),
            cap: datagram_size.saturating_sub(1).max(1),
            queued: 0,
            refused: 0,
        }
    }

    /// Adds `line`; `commit` is applied through `apply` once its chunk is accepted.
    pub(crate) fn push(
        &mut self,
        send: SendChunk<'_>,
        line: &str,
        commit: Option<C>,
        apply: &mut dyn FnMut(C),
    ) {
        self.push_group(send, line, 1, commit, apply);
    }

    /// Adds the line that `write` appends, written straight into the chunk (no copy unless it
    /// starts the next one); `commit` is applied through `apply` once its chunk is accepted.
    pub(crate) fn push_with(
        &mut self,
        send: SendChunk<'_>,
        commit: Option<C>,
        apply: &mut dyn FnMut(C),
        write: impl FnOnce(&mut String),
    ) {
        let before = self.buf.len();
        if before > 0 {
            self.buf.push('\n');
        }
        let start = self.buf.len();
        write(&mut self.buf);
        if before > 0 && self.buf.len() > self.cap {
            // It does not fit: the chunk goes without it, and it starts the next one.
            self.spill.clear();
            self.spill.push_str(&self.buf[start..]);
            self.buf.truncate(before);
            self.send(send, apply);
            self.buf.push_str(&self.spill);
        }
        self.lines += 1;
        self.pending.extend(commit);
    }

    /// Adds `lines` newline-joined lines that must travel in one chunk (StatsD applies them
    /// together or not at all).
    pub(crate) fn push_group(
        &mut self,
        send: SendChunk<'_>,
        text: &str,
        lines: usize,
        commit: Option<C>,
        apply: &mut dyn FnMut(C),
    ) {
        let len = self.buf.len();
        if len > 0 && len + 1 + text.len() > self.cap {
            self.send(send, apply);
        }
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(text);
        self.lines += lines;
        self.pending.extend(commit);
    }

    /// Sends what is buffered.
    pub(crate) fn send(&mut self, send: SendChunk<'_>, apply: &mut dyn FnMut(C)) {
        if self.lines == 0 {
            return;
        }
        if send(&mut self.buf, self.lines) {
            self.queued += self.lines;
            self.pending.drain(..).for_each(&mut *apply);
        } else {
            self.refused += self.lines;
            self.pending.clear();
        }
        self.buf.clear();
        self.lines = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records each chunk as the sender thread gets it: (text, count), checking the count
    /// the batcher passed beside it; takes the text only when `accept`ed, as the queue does.
    fn record(
        sent: &RefCell<Vec<(String, usize)>>,
        chunk: &mut String,
        lines: usize,
        accept: bool,
    ) -> bool {
        assert_eq!(chunk.split('\n').count(), lines, "{chunk:?}");
        sent.borrow_mut().push((chunk.clone(), lines));
        if accept {
            *chunk = String::with_capacity(16);
        }
        accept
    }

    #[test]
    fn chunks_fit_and_commit_only_when_accepted() {
        let sent = RefCell::new(Vec::new());
        let accept = RefCell::new(true);
        let send = |chunk: &mut String, lines: usize| record(&sent, chunk, lines, *accept.borrow());
        let mut applied = Vec::new();
        let mut b = Batch::new(String::new(), 10);
        for (i, l) in ["aaaa", "bbbb", "cc", "dddddddddddd"].iter().enumerate() {
            b.push(&send, l, Some(i), &mut |c| applied.push(c));
        }
        *accept.borrow_mut() = false;
        b.send(&send, &mut |c| applied.push(c));
        assert_eq!(
            *sent.borrow(),
            vec![
                ("aaaa\nbbbb".to_owned(), 2),
                ("cc".to_owned(), 1),
                ("dddddddddddd".to_owned(), 1)
            ]
        );
        assert_eq!(applied, vec![0, 1, 2]);
        assert_eq!((b.queued, b.refused), (3, 1));
    }

    #[test]
    fn lines_written_in_place_chunk_like_pushed_lines() {
        let lines = ["aaaa", "bbbb", "cc", "dddddddddddd", "e", "ff"];
        let run = |in_place: bool| {
            let sent = RefCell::new(Vec::new());
            let send = |chunk: &mut String, n: usize| record(&sent, chunk, n, true);
            let mut applied = Vec::new();
            let mut b = Batch::new(String::new(), 10);
            for (i, l) in lines.iter().enumerate() {
                if in_place {
                    b.push_with(&send, Some(i), &mut |c| applied.push(c), |buf| {
                        buf.push_str(l)
                    });
                } else {
                    b.push(&send, l, Some(i), &mut |c| applied.push(c));
                }
            }
            b.send(&send, &mut |c| applied.push(c));
            (sent.into_inner(), applied, b.queued)
        };
        let pushed = run(false);
        assert_eq!(run(true), pushed);
        assert_eq!(pushed.0.len(), 4, "{:?}", pushed.0);
        assert_eq!(pushed.1, (0..lines.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_group_is_never_split_across_chunks() {
        let sent = RefCell::new(Vec::new());
        let send = |chunk: &mut String, lines: usize| record(&sent, chunk, lines, true);
        let mut b: Batch<()> = Batch::new(String::new(), 12);
        b.push(&send, "g:1|g", None, &mut |_| {});
        b.push_group(&send, "n:0|g\nn:-5|g", 2, None, &mut |_| {});
        b.send(&send, &mut |_| {});
        assert_eq!(
            *sent.borrow(),
            vec![("g:1|g".to_owned(), 1), ("n:0|g\nn:-5|g".to_owned(), 2)]
        );
        assert_eq!(b.queued, 3);
    }
}

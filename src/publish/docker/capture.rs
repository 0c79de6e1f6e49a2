//! Bounded reading of a child's output: whole streams captured up to a byte limit
//! ([`capture`]), and streams split into length-capped lines ([`LineSplitter`],
//! [`read_lines`]), so a noisy build or check never grows imgflow's memory.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Default limit for a captured stdout or stderr: 1 MiB.
pub const DEFAULT_CAPTURE_LIMIT: usize = 1024 * 1024;

/// Longest line kept from a log (longer ones are cut and end with `...`).
pub const MAX_LINE: usize = 4096;

/// Bytes of a stream, at most a limit; the rest was read and discarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes of the stream (at most the limit).
    pub bytes: Vec<u8>,
    /// True when the stream had more bytes than were kept.
    pub truncated: bool,
    /// How many bytes the stream had in all.
    pub total: u64,
}

impl Captured {
    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads `reader` to its end, keeping the first `limit` bytes. Reading goes on past the
/// limit so that the writer never blocks on a full pipe.
pub async fn capture<R: AsyncRead + Unpin>(
    mut reader: R,
    limit: usize,
) -> std::io::Result<Captured> {
    let mut out = Captured::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        out.total += n as u64;
        let room = limit.saturating_sub(out.bytes.len());
        out.bytes.extend_from_slice(&chunk[..n.min(room)]);
        if n > room {
            out.truncated = true;
        }
    }
}

/// Splits bytes into lines at `\n` or `\r` (progress bars redraw with `\r`), dropping empty
/// lines and cutting each line at [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    current: Vec<u8>,
    cut: bool,
}

impl LineSplitter {
    /// Feeds `bytes`, calling `emit` for every line they complete.
    pub fn push(&mut self, bytes: &[u8], emit: &mut impl FnMut(String)) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.flush(emit);
            } else if self.current.len() < MAX_LINE {
                self.current.push(b);
            } else {
                self.cut = true;
            }
        }
    }

    /// Emits the last line when the stream did not end with a newline.
    pub fn finish(&mut self, emit: &mut impl FnMut(String)) {
        self.flush(emit);
    }

    fn flush(&mut self, emit: &mut impl FnMut(String)) {
        if !self.current.is_empty() {
            let mut line = String::from_utf8_lossy(&self.current).into_owned();
            if self.cut {
                line.push_str("...");
            }
            emit(line);
        }
        self.current.clear();
        self.cut = false;
    }
}

/// Reads `reader` to its end and calls `emit` for each line (see [`LineSplitter`]).
pub async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    mut emit: impl FnMut(String),
) -> std::io::Result<()> {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            splitter.finish(&mut emit);
            return Ok(());
        }
        splitter.push(&chunk[..n], &mut emit);
    }
}

/// The last lines of a log, at most a fixed number.
#[derive(Debug, Clone)]
pub struct Tail {
    lines: VecDeque<String>,
    max: usize,
}

impl Tail {
    /// An empty tail keeping at most `max` lines.
    pub fn new(max: usize) -> Tail {
        Tail {
            lines: VecDeque::with_capacity(max.min(64)),
            max,
        }
    }

    /// Adds a line, forgetting the oldest one when full.
    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.max {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, oldest first.
    pub fn into_vec(self) -> Vec<String> {
        self.lines.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capture_keeps_the_first_bytes_and_counts_the_rest() {
        let data = vec![b'x'; 100_000];
        let got = capture(&data[..], 1000).await.unwrap();
        assert_eq!(got.bytes.len(), 1000);
        assert!(got.truncated);
        assert_eq!(got.total, 100_000);
        let small = capture(&b"hello"[..], 1000).await.unwrap();
        assert_eq!((small.text().as_str(), small.truncated), ("hello", false));
    }

    #[test]
    fn lines_split_on_newlines_and_carriage_returns_and_are_capped() {
        let mut got = Vec::new();
        let mut splitter = LineSplitter::default();
        let long = "y".repeat(MAX_LINE + 10);
        splitter.push(b"Step 1/2 : FROM base\r\n", &mut |l| got.push(l));
        splitter.push(b" ---> abc\n10%\r20", &mut |l| got.push(l));
        splitter.push(b"%\r\n", &mut |l| got.push(l));
        splitter.push(long.as_bytes(), &mut |l| got.push(l));
        splitter.push(b"\nno newline at end", &mut |l| got.push(l));
        splitter.finish(&mut |l| got.push(l));
        assert_eq!(
            got[..4],
            ["Step 1/2 : FROM base", " ---> abc", "10%", "20%"]
        );
        assert_eq!(got[4].len(), MAX_LINE + 3);
        assert!(got[4].ends_with("..."));
        assert_eq!(got[5], "no newline at end");
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut tail = Tail::new(2);
        for line in ["a", "b", "c"] {
            tail.push(line.to_string());
        }
        assert_eq!(tail.into_vec(), ["b", "c"]);
    }
}

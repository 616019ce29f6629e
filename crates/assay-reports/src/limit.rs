//! A `BufRead` adapter that bounds how much the XML reader may buffer for one event.
//!
//! quick-xml copies a whole event (a start tag with its attributes, or a text node) into one
//! buffer before returning it. To keep memory bounded on hostile or huge input, this adapter
//! counts the bytes consumed since the parser last said "an event was returned" and fails the
//! read once one event grows past the limit.

use std::io::{self, BufRead, Read};

/// Marker carried inside the `io::Error` when one event is too large.
#[derive(Debug)]
pub(crate) struct TokenTooLarge;

impl std::fmt::Display for TokenTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("token too large")
    }
}

impl std::error::Error for TokenTooLarge {}

pub(crate) struct Bounded<R> {
    inner: R,
    limit: u64,
    since_event: u64,
    total: u64,
}

impl<R: BufRead> Bounded<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            limit,
            since_event: 0,
            total: 0,
        }
    }

    /// An event was returned: the next one starts counting from zero.
    pub(crate) fn event_done(&mut self) {
        self.since_event = 0;
    }

    /// Bytes read so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

impl<R: BufRead> Read for Bounded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Bounded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_event > self.limit {
            return Err(io::Error::other(TokenTooLarge));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.since_event += amt as u64;
        self.total += amt as u64;
        self.inner.consume(amt);
    }
}

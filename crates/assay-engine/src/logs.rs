//! Turning a process's output into masked, bounded log chunks.

use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::event::{Event, LogChunk};
use crate::mask::Masker;
use crate::sink::EventSink;

/// Longest line kept whole; a longer one is split, so a tool that never prints a newline cannot
/// exhaust memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Size of one read from a pipe.
const READ_SIZE: usize = 64 * 1024;

/// Accumulates raw output and hands back whole, masked lines.
///
/// Masking happens on whole lines, so a secret split across two reads is still found. Only an
/// overlong line is cut, and never inside a secret: the buffer keeps the longest secret's
/// length beyond the cut before cutting.
#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    masker: Masker,
}

impl LineBuffer {
    pub(crate) fn new(masker: Masker) -> Self {
        LineBuffer {
            buf: Vec::with_capacity(READ_SIZE),
            masker,
        }
    }

    /// Adds raw bytes; returns the masked text of every line now complete.
    pub(crate) fn push(&mut self, data: &[u8]) -> Option<String> {
        self.buf.extend_from_slice(data);
        let mut out: Vec<u8> = Vec::new();
        if let Some(pos) = self.buf.iter().rposition(|&b| b == b'\n') {
            let rest = self.buf.split_off(pos + 1);
            let head = std::mem::replace(&mut self.buf, rest);
            self.emit_lines(&head, &mut out);
        }
        let slack = self.masker.longest();
        while self.buf.len() >= MAX_LINE + slack {
            let cut = self.cut(&self.buf, MAX_LINE);
            let rest = self.buf.split_off(cut);
            let piece = std::mem::replace(&mut self.buf, rest);
            out.extend_from_slice(&self.masker.mask_bytes(&piece));
            out.push(b'\n');
        }
        (!out.is_empty()).then(|| into_text(out))
    }

    /// The unterminated rest, as a final line.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let mut rest = std::mem::take(&mut self.buf);
        rest.push(b'\n');
        let mut out = Vec::new();
        self.emit_lines(&rest, &mut out);
        Some(into_text(out))
    }

    /// Masks whole lines (ending in `\n`) into `out`, splitting any that are too long.
    fn emit_lines(&self, lines: &[u8], out: &mut Vec<u8>) {
        if lines.len() <= MAX_LINE {
            out.extend_from_slice(&self.masker.mask_bytes(lines));
            return;
        }
        for line in lines.split_inclusive(|&b| b == b'\n') {
            let mut line = line;
            while line.len() > MAX_LINE + 1 {
                let cut = self.cut(line, MAX_LINE);
                out.extend_from_slice(&self.masker.mask_bytes(&line[..cut]));
                out.push(b'\n');
                line = &line[cut..];
            }
            out.extend_from_slice(&self.masker.mask_bytes(line));
        }
    }

    /// A cut near `want` that splits neither a secret nor a UTF-8 character.
    fn cut(&self, data: &[u8], want: usize) -> usize {
        let mut cut = self.masker.cut_before(data, want);
        let floor = cut.saturating_sub(3);
        while cut > floor && cut < data.len() && (data[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        if cut == 0 { want } else { cut }
    }
}

fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Reads `reader` to its end, sending masked chunks of whole lines as [`Event::Log`].
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    reference: String,
    masker: Masker,
    sink: EventSink,
) {
    let mut lines = LineBuffer::new(masker);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(text) = lines.push(&buf[..n]) {
                    send(&sink, &reference, text).await;
                }
            }
        }
    }
    if let Some(text) = lines.finish() {
        send(&sink, &reference, text).await;
    }
}

async fn send(sink: &EventSink, reference: &str, text: String) {
    sink.send(Event::Log(LogChunk {
        reference: reference.to_string(),
        at: SystemTime::now(),
        text,
    }))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_only() {
        let mut b = LineBuffer::new(Masker::default());
        assert_eq!(b.push(b"ab"), None);
        assert_eq!(b.push(b"c\nde").as_deref(), Some("abc\n"));
        assert_eq!(b.finish().as_deref(), Some("de\n"));
    }

    #[test]
    fn secret_split_across_reads_is_masked() {
        let mut b = LineBuffer::new(Masker::new(["topsecret"]));
        assert_eq!(b.push(b"x=tops"), None);
        assert_eq!(b.push(b"ecret y\n").as_deref(), Some("x=***** y\n"));
    }

    #[test]
    fn long_lines_are_bounded_and_secrets_not_cut() {
        let secret = "SECRETVALUE";
        let mut b = LineBuffer::new(Masker::new([secret]));
        let mut data = vec![b'a'; MAX_LINE - 4];
        data.extend_from_slice(secret.as_bytes());
        data.extend_from_slice(&[b'b'; 100]);
        let mut out = String::new();
        for chunk in data.chunks(1000) {
            out.push_str(&b.push(chunk).unwrap_or_default());
        }
        out.push_str(&b.finish().unwrap_or_default());
        assert!(!out.contains("SECRET"), "secret leaked");
        assert!(out.contains("*****"));
        assert!(out.lines().all(|l| l.len() <= MAX_LINE));
        let total: usize = out.lines().map(|l| l.replace("*****", secret).len()).sum();
        assert_eq!(total, data.len());
    }
}

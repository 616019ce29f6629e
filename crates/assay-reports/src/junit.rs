//! Streaming JUnit XML reader.
//!
//! One pass over the input with quick-xml's pull parser; a case is handed out as soon as its
//! `</testcase>` is read, so memory is bounded by the largest single XML token (capped by
//! [`ParseOptions::max_token_bytes`]) plus one case, whatever the report's size. The flavours
//! of pytest, Maven Surefire, Jest (jest-junit), Go (go-junit-report), cargo-nextest and
//! Playwright differ only in which optional attributes and children they write; the reader
//! accepts any nesting of `<testsuite>` and ignores elements it does not know.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::case::{CaseStatus, TestCase};
use crate::excerpt::Excerpt;
use crate::limit::{Bounded, TokenTooLarge};

/// Bounds of the reader.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Largest single XML token (a start tag with its attributes, or a text node) the reader
    /// buffers; larger ones are an error. Default 16 MiB.
    pub max_token_bytes: u64,
    /// Bytes kept of each case's output (failure text, `system-out`, `system-err`). Default 4 KiB.
    pub max_output_bytes: usize,
    /// Bytes kept of a name, class, file or message. Default 1 KiB.
    pub max_text_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_token_bytes: 16 << 20,
            max_output_bytes: 4 << 10,
            max_text_bytes: 1 << 10,
        }
    }
}

/// Why a report could not be read to its end. The cases read before the error stay valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("read a JUnit report: the root element is {0}, not <testsuites> or <testsuite>")]
    NotJunit(String),
    #[error("read the JUnit report to its end: it is truncated at byte {offset} inside <{open}>")]
    Truncated { offset: u64, open: String },
    #[error("read the JUnit report: it is encoded as {0}; only UTF-8 is supported")]
    Encoding(String),
    #[error("read the JUnit report: invalid UTF-8 near byte {offset}")]
    InvalidUtf8 { offset: u64 },
    #[error(
        "read the JUnit report: an XML token at byte {offset} is larger than {limit} bytes \
         (a huge attribute or text)"
    )]
    TooLarge { offset: u64, limit: u64 },
    #[error("read the JUnit report: malformed XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error("read the JUnit report: {0}")]
    Io(String),
}

/// Whether the first bytes of a file look like JUnit XML: the first element (after an XML
/// declaration, comments, processing instructions and a doctype) is `<testsuites>` or
/// `<testsuite>`, within the first KiB.
pub fn is_junit(head: &[u8]) -> bool {
    let mut s = &head[..head.len().min(1024)];
    s = s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(s);
    loop {
        let start = s.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else { return false };
        s = &s[start..];
        let skip_to = |s: &[u8], end: &[u8]| -> Option<usize> {
            s.windows(end.len())
                .position(|w| w == end)
                .map(|i| i + end.len())
        };
        let next = if s.starts_with(b"<?") {
            skip_to(s, b"?>")
        } else if s.starts_with(b"<!--") {
            skip_to(s, b"-->")
        } else if s.starts_with(b"<!") {
            skip_to(s, b">")
        } else if let Some(rest) = s.strip_prefix(b"<") {
            let name_end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
                .unwrap_or(rest.len());
            // A name cut by the 1 KiB window is not a match.
            if name_end == rest.len() {
                return false;
            }
            let name = local(&rest[..name_end]);
            return name == b"testsuites" || name == b"testsuite";
        } else {
            return false;
        };
        match next {
            Some(n) => s = &s[n..],
            None => return false,
        }
    }
}

/// Read a whole report: every case read, and the error that stopped the reader, if any.
/// Holds every case in memory; stream with [`JunitReader`] for reports of any size.
pub fn parse_all(read: impl Read, options: ParseOptions) -> (Vec<TestCase>, Option<ParseError>) {
    let mut cases = Vec::new();
    for item in JunitReader::with_options(read, options) {
        match item {
            Ok(case) => cases.push(case),
            Err(e) => return (cases, Some(e)),
        }
    }
    (cases, None)
}

/// The element the reader is inside of.
enum Open {
    Suites,
    Suite {
        name: String,
        file: Option<String>,
    },
    Case,
    /// `<failure>`, `<error>` or `<skipped>` of the current case: its text is output.
    Result,
    /// `system-out`/`system-err` of the current case.
    CaseOutput,
    /// Anything else (properties, reruns, suite-level output): its text is ignored.
    Other,
}

struct CaseState {
    case: TestCase,
    output: Excerpt,
    /// Text of the result read so far, while the message still comes from its first line
    /// (a line may arrive in pieces: entities are separate events).
    pending_message: Option<String>,
}

/// Iterator over the test cases of one JUnit report, read as a stream. After an error it
/// yields that error once and then ends.
pub struct JunitReader<R: Read> {
    xml: Reader<Bounded<BufReader<R>>>,
    buf: Vec<u8>,
    options: ParseOptions,
    stack: Vec<(Open, Vec<u8>)>,
    case: Option<CaseState>,
    root_seen: bool,
    done: bool,
}

impl<R: Read> JunitReader<R> {
    /// A reader with the default [`ParseOptions`].
    pub fn new(read: R) -> Self {
        Self::with_options(read, ParseOptions::default())
    }

    /// A reader with explicit bounds.
    pub fn with_options(read: R, options: ParseOptions) -> Self {
        let buffered = BufReader::with_capacity(64 << 10, read);
        let xml = Reader::from_reader(Bounded::new(buffered, options.max_token_bytes));
        Self {
            xml,
            buf: Vec::new(),
            options,
            stack: Vec::new(),
            case: None,
            root_seen: false,
            done: false,
        }
    }

    /// Bytes of input read so far.
    pub fn bytes_read(&self) -> u64 {
        self.xml.get_ref().total()
    }

    fn fail(&mut self, e: ParseError) -> Option<Result<TestCase, ParseError>> {
        self.done = true;
        Some(Err(e))
    }

    /// Reject UTF-16 (by its byte order mark or its first bytes) and skip a UTF-8 BOM.
    fn check_start(&mut self) -> Result<(), ParseError> {
        let inner = self.xml.get_mut();
        let head = inner
            .fill_buf()
            .map_err(|e| ParseError::Io(e.to_string()))?;
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err(ParseError::Encoding("UTF-16".into()));
        }
        if head.starts_with(b"\x00<") || head.starts_with(b"<\x00") {
            return Err(ParseError::Encoding(
                "UTF-16 without a byte order mark".into(),
            ));
        }
        if head.starts_with(b"\xEF\xBB\xBF") {
            inner.consume(3);
        }
        Ok(())
    }

    fn map_error(&mut self, e: quick_xml::Error) -> ParseError {
        let offset = self.xml.error_position();
        match e {
            quick_xml::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<TokenTooLarge>()) => {
                ParseError::TooLarge {
                    offset: self.xml.buffer_position(),
                    limit: self.options.max_token_bytes,
                }
            }
            quick_xml::Error::Io(io) => ParseError::Io(io.to_string()),
            quick_xml::Error::Encoding(_) => ParseError::InvalidUtf8 { offset },
            quick_xml::Error::Syntax(s) => {
                let at_end = self.xml.get_mut().fill_buf().is_ok_and(|b| b.is_empty());
                match (at_end, self.stack.last()) {
                    (true, Some((_, name))) => ParseError::Truncated {
                        offset,
                        open: String::from_utf8_lossy(name).into_owned(),
                    },
                    _ => ParseError::Xml {
                        offset,
                        message: s.to_string(),
                    },
                }
            }
            other => ParseError::Xml {
                offset,
                message: other.to_string(),
            },
        }
    }

    fn attr(&self, tag: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, ParseError> {
        for attr in tag.attributes().with_checks(false) {
            let attr = attr.map_err(|e| ParseError::Xml {
                offset: self.xml.buffer_position(),
                message: e.to_string(),
            })?;
            if local(attr.key.as_ref()) == name {
                let value = attr
                    .normalized_value(quick_xml::XmlVersion::default())
                    .map_err(|e| match e {
                        quick_xml::Error::Encoding(_) => ParseError::InvalidUtf8 {
                            offset: self.xml.buffer_position(),
                        },
                        other => ParseError::Xml {
                            offset: self.xml.buffer_position(),
                            message: other.to_string(),
                        },
                    })?;
                let value = bounded(value.trim(), self.options.max_text_bytes);
                return Ok((!value.is_empty()).then_some(value));
            }
        }
        Ok(None)
    }

    /// Handle a start tag (`empty` when it is `<x/>`); returns a finished case when a
    /// `<testcase/>` closes at once.
    fn start(&mut self, tag: &BytesStart<'_>, empty: bool) -> Result<Option<TestCase>, ParseError> {
        let qname = tag.name();
        let name = local(qname.as_ref()).to_vec();
        if !self.root_seen {
            self.root_seen = true;
            if name != b"testsuites" && name != b"testsuite" {
                return Err(ParseError::NotJunit(format!(
                    "<{}>",
                    String::from_utf8_lossy(&name)
                )));
            }
        }
        let in_case = self.case.is_some();
        let open = match name.as_slice() {
            b"testsuites" if !in_case => Open::Suites,
            b"testsuite" if !in_case => Open::Suite {
                name: self.attr(tag, b"name")?.unwrap_or_default(),
                file: self.attr(tag, b"file")?,
            },
            b"testcase" if !in_case => {
                let case = TestCase {
                    suite: self.suite_path(),
                    class: self.attr(tag, b"classname")?,
                    name: self.attr(tag, b"name")?.unwrap_or_default(),
                    file: match self.attr(tag, b"file")? {
                        Some(f) => Some(f),
                        None => self.suite_file(),
                    },
                    status: CaseStatus::Passed,
                    duration_ms: self.attr(tag, b"time")?.as_deref().and_then(seconds_to_ms),
                    message: None,
                    output: None,
                    failed_reruns: 0,
                };
                self.case = Some(CaseState {
                    case,
                    output: Excerpt::new(self.options.max_output_bytes),
                    pending_message: None,
                });
                Open::Case
            }
            b"failure" | b"error" | b"skipped" if in_case => {
                let message = self.attr(tag, b"message")?;
                let state = self.case.as_mut().expect("in a case");
                let status = match name.as_slice() {
                    b"failure" => CaseStatus::Failed,
                    b"error" => CaseStatus::Error,
                    _ => CaseStatus::Skipped,
                };
                let c = &mut state.case;
                let first_result = c.status == CaseStatus::Passed;
                if first_result || (status.is_failure() && !c.status.is_failure()) {
                    c.status = status;
                    state.pending_message = message.is_none().then(String::new);
                    c.message = message;
                }
                Open::Result
            }
            b"flakyFailure" | b"flakyError" | b"rerunFailure" | b"rerunError" if in_case => {
                let state = self.case.as_mut().expect("in a case");
                state.case.failed_reruns += 1;
                Open::Other
            }
            b"system-out" | b"system-err" if matches!(self.stack.last(), Some((Open::Case, _))) => {
                Open::CaseOutput
            }
            _ => Open::Other,
        };
        if empty {
            if matches!(open, Open::Case) {
                return Ok(self.finish_case());
            }
            return Ok(None);
        }
        self.stack.push((open, name));
        Ok(None)
    }

    fn suite_path(&self) -> String {
        let mut names = self.stack.iter().filter_map(|(o, _)| match o {
            Open::Suite { name, .. } if !name.is_empty() => Some(name.as_str()),
            _ => None,
        });
        let mut out = String::new();
        if let Some(first) = names.next() {
            out.push_str(first);
        }
        for n in names {
            out.push_str(" › ");
            out.push_str(n);
        }
        out
    }

    fn suite_file(&self) -> Option<String> {
        self.stack.iter().rev().find_map(|(o, _)| match o {
            Open::Suite { file, .. } => file.clone(),
            _ => None,
        })
    }

    fn text(&mut self, text: &str) {
        let Some((open, _)) = self.stack.last() else {
            return;
        };
        let Some(state) = self.case.as_mut() else {
            return;
        };
        match open {
            Open::Result => {
                if let Some(pending) = state.pending_message.as_mut() {
                    pending.push_str(text);
                    let has_line = pending.trim_start().contains('\n');
                    if has_line || pending.len() > self.options.max_text_bytes {
                        state.case.message = first_line(pending, self.options.max_text_bytes);
                        state.pending_message = None;
                    }
                }
                state.output.push(text);
            }
            Open::CaseOutput => state.output.push(text),
            _ => {}
        }
    }

    fn finish_case(&mut self) -> Option<TestCase> {
        let state = self.case.take()?;
        let mut case = state.case;
        if let Some(pending) = state.pending_message {
            case.message = first_line(&pending, self.options.max_text_bytes);
        }
        case.output = state.output.finish();
        // Tools that colour their output write the escape codes into the report too (pytest
        // with FORCE_COLOR): messages are read as text everywhere, so they go.
        case.message = case.message.map(|m| without_ansi(&m));
        case.output = case.output.map(|o| without_ansi(&o));
        Some(case)
    }

    fn step(&mut self) -> Result<Option<TestCase>, ParseError> {
        if !self.root_seen && self.xml.buffer_position() == 0 {
            self.check_start()?;
        }
        loop {
            self.buf.clear();
            self.xml.get_mut().event_done();
            let event = match self.xml.read_event_into(&mut self.buf) {
                Ok(e) => e.into_owned(),
                Err(e) => return Err(self.map_error(e)),
            };
            match event {
                Event::Decl(decl) => {
                    if let Some(Ok(enc)) = decl.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if !matches!(enc.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                            return Err(ParseError::Encoding(enc.to_ascii_uppercase()));
                        }
                    }
                }
                Event::Start(tag) => {
                    if let Some(case) = self.start(&tag, false)? {
                        return Ok(Some(case));
                    }
                }
                Event::Empty(tag) => {
                    if let Some(case) = self.start(&tag, true)? {
                        return Ok(Some(case));
                    }
                }
                Event::End(_) => {
                    if let Some((Open::Case, _)) = self.stack.pop() {
                        return Ok(self.finish_case());
                    }
                }
                Event::Text(t) => {
                    if self.case.is_some() {
                        let offset = self.xml.buffer_position();
                        let text = t.decode().map_err(|_| ParseError::InvalidUtf8 { offset })?;
                        self.text(&text);
                    }
                }
                Event::CData(t) => {
                    if self.case.is_some() {
                        let offset = self.xml.buffer_position();
                        let text = t.decode().map_err(|_| ParseError::InvalidUtf8 { offset })?;
                        self.text(&text);
                    }
                }
                Event::GeneralRef(r) => {
                    if self.case.is_some() {
                        let resolved: Cow<'_, str> = if r.is_char_ref() {
                            match r.resolve_char_ref() {
                                Ok(Some(c)) => Cow::Owned(c.to_string()),
                                _ => Cow::Borrowed("\u{FFFD}"),
                            }
                        } else {
                            let name = r.decode().unwrap_or_default();
                            Cow::Borrowed(
                                quick_xml::escape::resolve_xml_entity(&name).unwrap_or("\u{FFFD}"),
                            )
                        };
                        self.text(&resolved);
                    }
                }
                Event::Eof => {
                    if !self.root_seen {
                        return Err(ParseError::NotJunit("missing (the file is empty)".into()));
                    }
                    if let Some((_, name)) = self.stack.last() {
                        return Err(ParseError::Truncated {
                            offset: self.xml.buffer_position(),
                            open: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    return Ok(None);
                }
                Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }
}

impl<R: Read> Iterator for JunitReader<R> {
    type Item = Result<TestCase, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(case)) => Some(Ok(case)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => self.fail(e),
        }
    }
}

/// The local part of a possibly prefixed XML name.
fn local(name: &[u8]) -> &[u8] {
    match name.iter().position(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Seconds as JUnit writes them (`1.5`, `1,234.5` from Surefire, `0`) into milliseconds.
fn seconds_to_ms(text: &str) -> Option<u64> {
    let secs: f64 = text.replace(',', "").trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64)
}

fn first_line(text: &str, limit: usize) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(bounded(line, limit))
}

fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` without ANSI escape sequences (colours, cursor moves). pytest writes ESC, which XML
/// 1.0 cannot hold, as the text `#x1B`: that form goes too.
fn without_ansi(text: &str) -> String {
    if !text.contains('\u{1b}') && !text.contains("#x1B[") {
        return text.to_string();
    }
    let text = text.replace("#x1B[", "\u{1b}[");
    anstream::adapter::strip_str(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_junit_roots() {
        assert!(is_junit(b"<?xml version=\"1.0\"?>\n<testsuites>"));
        assert!(is_junit(b"\xEF\xBB\xBF<!-- x --><testsuite name=\"a\">"));
        assert!(is_junit(b"<!DOCTYPE x>\n  <testsuite/>"));
        assert!(!is_junit(b"<html><testsuite>"));
        assert!(!is_junit(b"{\"testsuite\": 1}"));
        assert!(!is_junit(b"<testsuitesX>"));
        assert!(!is_junit(b""));
    }

    #[test]
    fn durations_parse_loosely() {
        assert_eq!(seconds_to_ms("1.5"), Some(1500));
        assert_eq!(seconds_to_ms("1,234.5"), Some(1_234_500));
        assert_eq!(seconds_to_ms("-1"), None);
        assert_eq!(seconds_to_ms("NaN"), None);
    }
}

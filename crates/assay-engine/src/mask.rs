//! Masking known secret values in text before it leaves the engine.
//!
//! A secret is masked as written and in every encoding Assay itself produces from it: the
//! percent-encoded forms of a URL (each component's encode set, and form encoding), the
//! JSON-escaped forms (once, twice for JSON inside a JSON string, and minijinja's `tojson`),
//! the shell-quoted form (`shellquote`), and base64 of the whole value (standard and URL-safe,
//! with and without padding). An encoding of a part of a secret is not recognised.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret is replaced with (defined once, in `assay-api`).
pub use assay_api::MASK;

/// Replaces every occurrence of any secret value. Cheap to clone (shared automaton).
#[derive(Clone, Default)]
pub struct Masker {
    automaton: Option<std::sync::Arc<AhoCorasick>>,
    longest: usize,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("longest", &self.longest)
            .finish_non_exhaustive()
    }
}

/// The forms of `secret` that Assay's own output may carry instead of the value as written
/// (the value itself excluded; forms equal to it are dropped later by the caller's dedup).
pub fn encodings(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

    // The url crate's encode sets (WHATWG URL): what reqwest's errors and `Url` print.
    const FRAGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
    const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
    const SPECIAL_QUERY: &AsciiSet = &QUERY.add(b'\'');
    const PATH: &AsciiSet = &QUERY.add(b'?').add(b'^').add(b'`').add(b'{').add(b'}');
    const USERINFO: &AsciiSet = &PATH
        .add(b'/')
        .add(b':')
        .add(b';')
        .add(b'=')
        .add(b'@')
        .add(b'[')
        .add(b'\\')
        .add(b']')
        .add(b'|');
    const COMPONENT: &AsciiSet = &USERINFO.add(b'$').add(b'%').add(b'&').add(b'+').add(b',');
    // Everything but RFC 3986's unreserved characters (minijinja's `urlencode`, most clients).
    const STRICT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    let mut out: Vec<String> = Vec::new();
    for set in [
        FRAGMENT,
        QUERY,
        SPECIAL_QUERY,
        PATH,
        USERINFO,
        COMPONENT,
        STRICT,
    ] {
        out.push(utf8_percent_encode(secret, set).to_string());
    }
    // application/x-www-form-urlencoded: spaces as `+`.
    out.push(
        utf8_percent_encode(secret, STRICT)
            .to_string()
            .replace("%20", "+"),
    );
    // JSON string contents (without the quotes), and the same inside another JSON string.
    let json = json_escaped(secret);
    out.push(json_escaped(&json));
    // minijinja's `tojson` also escapes these for HTML safety.
    out.push(
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\'', "\\u0027"),
    );
    out.push(json);
    if let Ok(quoted) = shlex::try_quote(secret) {
        out.push(quoted.into_owned());
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret));
    }
    out.retain(|e| e != secret && !e.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The contents of the JSON string for `text`, as serde_json writes it.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

impl Masker {
    /// A masker for these values. Empty values are ignored; a multi-line value is also masked
    /// line by line, because logs are processed in lines.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for v in values {
            let v = v.trim_end_matches(['\n', '\r']);
            if v.is_empty() {
                continue;
            }
            patterns.push(v.to_string());
            patterns.extend(encodings(v));
            if v.contains('\n') {
                patterns.extend(
                    v.lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| l.len() >= 3)
                        .map(str::to_string),
                );
            }
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Masker::default();
        }
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        // Leftmost-longest: a secret that contains another is masked whole.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .map(std::sync::Arc::new);
        Masker { automaton, longest }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// Length in bytes of the longest secret.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// The text with every secret replaced by [`MASK`].
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.mask_with(text, MASK)
    }

    /// The text with every secret replaced by `replacement`.
    pub fn mask_with<'a>(&self, text: &'a str, replacement: &str) -> Cow<'a, str> {
        match &self.automaton {
            Some(ac) if ac.is_match(text) => {
                Cow::Owned(ac.replace_all(text, &vec![replacement; ac.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Like [`Masker::mask`] on bytes.
    pub fn mask_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.automaton {
            Some(ac) if ac.is_match(data) => {
                Cow::Owned(ac.replace_all_bytes(data, &vec![MASK.as_bytes(); ac.patterns_len()]))
            }
            _ => Cow::Borrowed(data),
        }
    }

    /// A cut position at or before `want` that does not split an occurrence of a secret
    /// (the start of the occurrence that spans `want`, or `want` itself). The caller makes
    /// sure `data` extends at least [`Masker::longest`] bytes past `want`, so that any
    /// occurrence starting before it is complete.
    pub(crate) fn cut_before(&self, data: &[u8], want: usize) -> usize {
        let Some(ac) = &self.automaton else {
            return want;
        };
        for m in ac.find_iter(data) {
            if m.start() >= want {
                break;
            }
            if m.end() > want {
                // Cutting at the start keeps the occurrence whole in the next piece; a secret
                // at the very start of an overlong line is cut after it instead.
                return if m.start() > 0 { m.start() } else { m.end() };
            }
        }
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_value() {
        let m = Masker::new(["hunter2", "s3cr3t", ""]);
        assert_eq!(m.mask("a hunter2 b s3cr3t"), "a ***** b *****");
        assert_eq!(m.mask("nothing"), "nothing");
    }

    #[test]
    fn longest_wins() {
        let m = Masker::new(["abc", "abcdef"]);
        assert_eq!(m.mask("xabcdefx"), "x*****x");
    }

    #[test]
    fn encodings_are_masked() {
        let secret = "p@ss w/rd&\"x'<1>";
        let m = Masker::new([secret]);
        for form in [
            // URL: strict percent-encoding, form encoding, a query; JSON once, twice and
            // minijinja's `tojson`; base64 with and without padding.
            "p%40ss%20w%2Frd%26%22x%27%3C1%3E",
            "p%40ss+w%2Frd%26%22x%27%3C1%3E",
            "p@ss%20w/rd&%22x'%3C1%3E",
            "p@ss w/rd&\\\"x'<1>",
            "p@ss w/rd&\\\\\\\"x'<1>",
            "p@ss w/rd\\u0026\\\"x\\u0027\\u003c1\\u003e",
            "cEBzcyB3L3JkJiJ4JzwxPg==",
            "cEBzcyB3L3JkJiJ4JzwxPg",
        ] {
            assert_eq!(m.mask(&format!("[{form}]")), "[*****]", "{form}");
        }
        // `shellquote` (shlex) as Assay's expressions write it.
        let quoted = shlex::try_quote(secret).unwrap();
        assert_ne!(quoted, secret);
        assert_eq!(m.mask(&quoted), "*****");
    }

    #[test]
    fn multiline_secrets_mask_per_line() {
        let m = Masker::new(["line-one\nline-two"]);
        assert_eq!(m.mask("line-two\n"), "*****\n");
    }
}

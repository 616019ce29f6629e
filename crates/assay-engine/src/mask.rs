//! Masking known secret values in text before it leaves the engine.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret is replaced with.
pub const MASK: &str = "*****";

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
        match &self.automaton {
            Some(ac) if ac.is_match(text) => {
                Cow::Owned(ac.replace_all(text, &vec![MASK; ac.patterns_len()]))
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
    fn multiline_secrets_mask_per_line() {
        let m = Masker::new(["line-one\nline-two"]);
        assert_eq!(m.mask("line-two\n"), "*****\n");
    }
}

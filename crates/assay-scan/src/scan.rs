//! Scanning one fragment of text (a file, or the lines a commit added to a file) with every
//! rule. A [`Finding`] never holds the secret: it is replaced by [`MASK`] in everything kept,
//! so no later output (stdout, JSON, JUnit, the store, logs) can show it.

use serde::Serialize;

use crate::rules::{Candidate, Rules};

/// The mask a secret is replaced with: Assay's one mask string, as in logs and API answers.
pub use assay_api::MASK;

/// A line containing one of these is not reported (gitleaks' inline marker, and Assay's).
const INLINE_ALLOW: [&str; 2] = ["gitleaks:allow", "assay:allow"];

/// The longest source line kept in a finding, in characters.
const LINE_CHARS: usize = 200;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: String,
    pub description: String,
    pub file: String,
    /// 1-based; 0 for a rule that matches a file by its path alone.
    pub line: usize,
    /// 1-based column (in characters) where the secret starts.
    pub column: usize,
    /// The line the secret starts on, with the secret replaced by the mask.
    pub line_text: String,
    /// Always [`MASK`]: the secret itself is never kept.
    pub secret: &'static str,
    /// Shannon entropy of the secret (bits per character), two decimals.
    pub entropy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// gitleaks' fingerprint (`[commit:]file:rule:line`), for `.gitleaksignore`.
    pub fingerprint: String,
}

/// Text to scan and where it came from.
pub struct Fragment<'a> {
    pub text: &'a str,
    pub path: &'a str,
    pub commit: Option<&'a str>,
    pub author: Option<&'a str>,
    pub date: Option<&'a str>,
    /// The real line number of each line of `text` (git fragments hold only added lines);
    /// `None`: line i of `text` is line i+1 of the file.
    pub line_numbers: Option<&'a [usize]>,
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Every finding of every rule in the fragment.
pub fn scan_fragment(rules: &Rules, frag: &Fragment) -> Vec<Finding> {
    if rules.path_excluded(frag.path) {
        return Vec::new();
    }
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(frag.text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let lower = frag.text.to_lowercase();
    let mut out = Vec::new();
    // Secrets already reported: a later rule (in order, so generic rules come last) that
    // matches an overlapping span reports nothing new.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for rule in &rules.rules {
        if rule.path.as_ref().is_some_and(|p| !p.is_match(frag.path)) {
            continue;
        }
        let Some(regex) = &rule.regex else {
            // A path-only rule reports the file itself.
            let c = Candidate {
                secret: "",
                matched: "",
                line: "",
                path: frag.path,
                commit: frag.commit,
            };
            if !rule.skip_report && !rule.allowed(&c) && !rules.globally_allowed(&rule.id, &c) {
                out.push(finding(rule, frag, 0, 0, String::new(), 0.0));
            }
            continue;
        };
        if !rule.keywords.is_empty() && !rule.keywords.iter().any(|k| lower.contains(k.as_str())) {
            continue;
        }
        for caps in regex.captures_iter(frag.text) {
            let whole = caps.get(0).expect("group 0");
            let secret = match rule.secret_group {
                Some(g) if g > 0 => caps.get(g),
                _ => caps
                    .iter()
                    .skip(1)
                    .flatten()
                    .find(|m| !m.as_str().is_empty())
                    .or(Some(whole)),
            };
            let Some(secret) = secret.filter(|m| !m.as_str().is_empty()) else {
                continue;
            };
            let entropy = shannon_entropy(secret.as_str());
            if rule.entropy.is_some_and(|min| entropy <= min) {
                continue;
            }
            let index = line_starts.partition_point(|&s| s <= secret.start()) - 1;
            let line_start = line_starts[index];
            let line_end = frag.text[line_start..]
                .find('\n')
                .map_or(frag.text.len(), |i| line_start + i);
            let line = &frag.text[line_start..line_end];
            if INLINE_ALLOW.iter().any(|m| line.contains(m)) {
                continue;
            }
            let c = Candidate {
                secret: secret.as_str(),
                matched: whole.as_str(),
                line,
                path: frag.path,
                commit: frag.commit,
            };
            if rule.skip_report || rule.allowed(&c) || rules.globally_allowed(&rule.id, &c) {
                continue;
            }
            if spans
                .iter()
                .any(|&(a, b)| a < secret.end() && secret.start() < b)
            {
                continue;
            }
            spans.push((secret.start(), secret.end()));
            let masked = mask_line(
                frag.text,
                line_start,
                line_end,
                secret.start(),
                secret.end(),
            );
            let column = frag.text[line_start..secret.start()].chars().count() + 1;
            let number = frag
                .line_numbers
                .and_then(|n| n.get(index).copied())
                .unwrap_or(index + 1);
            out.push(finding(rule, frag, number, column, masked, entropy));
        }
    }
    out
}

fn finding(
    rule: &crate::rules::Rule,
    frag: &Fragment,
    line: usize,
    column: usize,
    line_text: String,
    entropy: f64,
) -> Finding {
    let fingerprint = match frag.commit {
        Some(c) => format!("{c}:{}:{}:{line}", frag.path, rule.id),
        None => format!("{}:{}:{line}", frag.path, rule.id),
    };
    Finding {
        rule: rule.id.clone(),
        description: rule.description.clone(),
        file: frag.path.to_string(),
        line,
        column,
        line_text,
        secret: MASK,
        entropy: (entropy * 100.0).round() / 100.0,
        commit: frag.commit.map(str::to_string),
        author: frag.author.map(str::to_string),
        date: frag.date.map(str::to_string),
        fingerprint,
    }
}

/// The line `[start, end)` of `text` with the secret's span `[s, e)` (where it overlaps the
/// line) and every other occurrence of the secret's text in the line replaced by the mask,
/// cut to [`LINE_CHARS`] characters.
fn mask_line(text: &str, start: usize, end: usize, s: usize, e: usize) -> String {
    let secret = &text[s..e];
    let (a, b) = (s.max(start), e.min(end));
    let mut line = String::with_capacity(end - start);
    if a < b {
        line.push_str(&text[start..a]);
        line.push_str(MASK);
        line.push_str(&text[b..end]);
    } else {
        line.push_str(&text[start..end]);
    }
    // A secret spanning lines (a key block) is masked line by line.
    for part in secret.lines().filter(|p| p.len() >= 4) {
        line = line.replace(part, MASK);
    }
    let line = line.trim();
    if line.chars().count() > LINE_CHARS {
        let cut: String = line.chars().take(LINE_CHARS).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

//! The normalized error signature of a failure: what stays the same when the same bug fails
//! again. Numbers, hex ids, UUIDs, quoted values, temporary paths and addresses change from run to
//! run; the shape of the message does not. Two failures with the same signature are "similar".

/// Longest signature kept (bytes): enough to tell errors apart, small enough to index.
pub const SIGNATURE_LIMIT: usize = 160;

/// The signature of a failure message: its first non-empty line with variable parts replaced
/// (`<n>` for numbers, `<hex>` for hex ids and UUIDs, `<s>` for quoted text), runs of spaces
/// folded, cut at [`SIGNATURE_LIMIT`] bytes. `None` for an empty message.
///
/// ```
/// use assay_reports::signature;
/// assert_eq!(
///     signature("AssertionError: expected 3, got 4").as_deref(),
///     Some("AssertionError: expected <n>, got <n>")
/// );
/// assert_eq!(signature("expected 5, got 6"), signature("expected 7, got 8"));
/// assert_eq!(
///     signature("KeyError: 'user-42' at 0x7f3a2b").as_deref(),
///     Some("KeyError: <s> at <hex>")
/// );
/// ```
pub fn signature(message: &str) -> Option<String> {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut out = String::with_capacity(line.len().min(SIGNATURE_LIMIT));
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < SIGNATURE_LIMIT {
        let c = chars[i];
        if (c == '\'' || c == '"' || c == '`')
            && let Some(end) = chars[i + 1..].iter().position(|&d| d == c)
        {
            out.push_str("<s>");
            i += end + 2;
            continue;
        }
        if c.is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            // UUIDs and other dash-joined hex runs count as one id.
            while i + 1 < chars.len() && chars[i] == '-' && chars[i + 1].is_ascii_hexdigit() {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                if chars[i + 1..j].iter().all(char::is_ascii_hexdigit) && j - i > 4 {
                    i = j;
                } else {
                    break;
                }
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(&normalize_word(&word));
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    let mut end = out.len().min(SIGNATURE_LIMIT);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    Some(out.trim_end().to_string())
}

/// A word of a message: numbers and ids become placeholders, words stay.
fn normalize_word(word: &str) -> String {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    if digits == 0 {
        return word.to_string();
    }
    if word.chars().all(|c| c.is_ascii_digit()) {
        return "<n>".into();
    }
    if let Some(hex) = word.strip_prefix("0x")
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return "<hex>".into();
    }
    let dashes = word.contains('-');
    if word.len() >= 6 && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-') || dashes {
        return "<hex>".into();
    }
    // A word with digits in it (`tmp8x3k2`, `port5432`): keep its letters' shape only.
    let letters: String = word.chars().filter(|c| !c.is_ascii_digit()).collect();
    format!("{letters}<n>")
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn variable_parts_are_replaced() {
        assert_eq!(
            signature("ConnectionRefusedError: [Errno 111] Connection refused on 127.0.0.1:5432")
                .as_deref(),
            Some("ConnectionRefusedError: [Errno <n>] Connection refused on <n>.<n>.<n>.<n>:<n>")
        );
        assert_eq!(
            signature("\n\n  run 0193a1f2-7c4e-7b1a-9f00-1234567890ab failed\nmore").as_deref(),
            Some("run <hex> failed")
        );
        assert_eq!(
            signature("file \"/tmp/x1\" missing"),
            signature("file \"/tmp/y2\" missing")
        );
        assert_eq!(signature("   \n "), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_boundary() {
        let s = signature(&"é".repeat(500)).unwrap();
        assert!(s.len() <= super::SIGNATURE_LIMIT);
    }
}

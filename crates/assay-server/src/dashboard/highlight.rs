//! YAML highlighting on the server: a line-based pass that wraps keys, comments, strings,
//! numbers, booleans and `{{ }}` expressions in spans with token classes. Not a parser: it only
//! has to look right for workflow files, and everything it emits is escaped.

use super::charts::esc;

/// The YAML text as HTML (for inside `<pre><code>`).
pub fn yaml(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        highlight_line(line, &mut out);
    }
    out
}

fn span(class: &str, text: &str, out: &mut String) {
    if text.is_empty() {
        return;
    }
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    out.push_str(&esc(text));
    out.push_str("</span>");
}

fn highlight_line(line: &str, out: &mut String) {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    out.push_str(indent);
    if trimmed.starts_with('#') {
        return span("c", trimmed, out);
    }
    let mut rest = trimmed;
    // List markers.
    while let Some(after) = rest.strip_prefix("- ") {
        span("p", "-", out);
        out.push(' ');
        rest = after;
    }
    if rest == "-" {
        return span("p", "-", out);
    }
    if let Some((key, after)) = split_key(rest) {
        span("k", key, out);
        span("p", ":", out);
        value(after, out);
    } else {
        value(rest, out);
    }
}

/// `key: value` or `key:` at the start (a key has no quote, space-colon or `{`).
fn split_key(text: &str) -> Option<(&str, &str)> {
    if text.starts_with(['"', '\'', '{', '[']) {
        return None;
    }
    let idx = text.find(':')?;
    let after = &text[idx + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let key = &text[..idx];
    if key.is_empty() || key.contains(" #") {
        return None;
    }
    Some((key, after))
}

fn value(text: &str, out: &mut String) {
    let body = text.trim_start();
    out.push_str(&text[..text.len() - body.len()]);
    // A trailing comment (after whitespace, outside quotes: good enough).
    let (body, comment) = match body.find(" #") {
        Some(i) if !body.starts_with(['"', '\'']) => (&body[..i], &body[i..]),
        _ => (body, ""),
    };
    let class = if body.starts_with(['"', '\'']) || body.starts_with(['|', '>']) {
        "s"
    } else if matches!(body, "true" | "false" | "yes" | "no" | "null" | "~") {
        "b"
    } else if !body.is_empty() && body.parse::<f64>().is_ok() {
        "n"
    } else {
        ""
    };
    if class.is_empty() {
        expressions(body, out);
    } else if class == "s" {
        out.push_str("<span class=\"s\">");
        expressions(body, out);
        out.push_str("</span>");
    } else {
        span(class, body, out);
    }
    span("c", comment, out);
}

/// Escape `text`, marking `{{ … }}` expressions.
fn expressions(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&esc(&rest[..start]));
        span("x", &rest[start..start + len + 2], out);
        rest = &rest[start + len + 2..];
    }
    out.push_str(&esc(rest));
}

#[cfg(test)]
mod tests {
    use super::yaml;

    #[test]
    fn highlights_workflow_yaml() {
        let html = yaml(
            "# top\nkind: TestWorkflow\nspec:\n  steps:\n  - name: \"a<b\"\n    shell: echo {{ config.x }} # note\n    count: 3\n",
        );
        assert!(html.contains("<span class=\"c\"># top</span>"));
        assert!(html.contains("<span class=\"k\">kind</span>"));
        assert!(html.contains("<span class=\"s\">&quot;a&lt;b&quot;</span>"));
        assert!(html.contains("<span class=\"x\">{{ config.x }}</span>"));
        assert!(html.contains("<span class=\"n\">3</span>"));
        assert!(html.contains("<span class=\"c\"> # note</span>"));
        assert!(!html.contains("a<b"));
    }
}

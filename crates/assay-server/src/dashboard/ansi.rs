//! ANSI colour in log lines, for the dashboard: logs are stored raw, so a tool's SGR sequences
//! (`ESC [ … m`) become spans with classes from a fixed set (`ansi-fg-1`, `ansi-bold`, …) that
//! the stylesheet colours. Nothing from the line reaches the page but its text, which the
//! template escapes; every other escape sequence (cursor moves, titles) is dropped.

/// A run of text with the classes of its style (empty: unstyled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub class: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn class(&self) -> String {
        let mut classes = Vec::new();
        if let Some(c) = self.fg {
            classes.push(format!("ansi-fg-{c}"));
        }
        if let Some(c) = self.bg {
            classes.push(format!("ansi-bg-{c}"));
        }
        for (on, name) in [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
        ] {
            if on {
                classes.push(name.to_string());
            }
        }
        classes.join(" ")
    }

    /// Apply one SGR sequence's parameters (`31`, `1;32`, `38;5;208`, empty = reset).
    fn apply(&mut self, params: &str) {
        let mut codes = params.split([';', ':']).map(|p| {
            if p.is_empty() {
                0
            } else {
                p.parse::<u32>().unwrap_or(u32::MAX)
            }
        });
        while let Some(code) = codes.next() {
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // 256 colours: the 16 named ones keep their class, others show unstyled;
                    // true colour is not shown (the page allows no inline styles).
                    let colour = match codes.next() {
                        Some(5) => codes.next().filter(|c| *c < 16).map(|c| c as u8),
                        Some(2) => {
                            codes.next();
                            codes.next();
                            codes.next();
                            None
                        }
                        _ => None,
                    };
                    if code == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

/// `line` as styled segments, escape sequences removed.
pub(crate) fn segments(line: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut style = Style::default();
    let mut text = String::new();
    let flush = |text: &mut String, style: &Style, out: &mut Vec<Segment>| {
        if text.is_empty() {
            return;
        }
        let class = style.class();
        match out.last_mut() {
            Some(last) if last.class == class => last.text.push_str(text),
            _ => out.push(Segment {
                class,
                text: String::new() + text,
            }),
        }
        text.clear();
    };
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameter and intermediate bytes, then one final byte.
                    let mut params = String::new();
                    let mut fin = None;
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            fin = Some(c);
                            break;
                        }
                        params.push(c);
                    }
                    if fin == Some('m') {
                        flush(&mut text, &style, &mut out);
                        style.apply(&params);
                    }
                }
                Some(']') => {
                    // OSC (titles, links): up to BEL or ESC \.
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            c if c.is_control() && c != '\t' => {}
            c => text.push(c),
        }
    }
    flush(&mut text, &style, &mut out);
    out
}

/// `line` without escape sequences, as the filter and the page's plain text see it.
pub(crate) fn plain(line: &str) -> String {
    segments(line).into_iter().map(|s| s.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(class: &str, text: &str) -> Segment {
        Segment {
            class: class.into(),
            text: text.into(),
        }
    }

    #[test]
    fn sgr_becomes_classes_and_other_sequences_go() {
        assert_eq!(
            segments("\u{1b}[1;31mFAILED\u{1b}[0m test_x \u{1b}[32mok\u{1b}[39m."),
            vec![
                seg("ansi-fg-1 ansi-bold", "FAILED"),
                seg("", " test_x "),
                seg("ansi-fg-2", "ok"),
                seg("", "."),
            ]
        );
        assert_eq!(
            segments("\u{1b}]0;title\u{7}\u{1b}[2K\u{1b}[91m<b>\u{1b}[m"),
            vec![seg("ansi-fg-9", "<b>")]
        );
        assert_eq!(
            segments("\u{1b}[38;5;3mx\u{1b}[38;2;1;2;3my\u{1b}[48;5;200mz"),
            vec![seg("ansi-fg-3", "x"), seg("", "yz")]
        );
        assert_eq!(plain("a\u{1b}[31mb\u{1b}[0mc\u{1b}["), "abc");
    }
}

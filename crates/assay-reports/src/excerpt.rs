//! A bounded text: the first and the last bytes of something that may be huge.

/// Keeps at most `limit` bytes of everything pushed into it: the first half and the last half,
/// with a marker saying how much was left out between them. Memory stays bounded whatever the
/// input size.
#[derive(Debug, Clone)]
pub struct Excerpt {
    limit: usize,
    head: String,
    tail: String,
    omitted: u64,
}

impl Excerpt {
    /// An empty excerpt that keeps at most `limit` bytes (plus the marker).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            head: String::new(),
            tail: String::new(),
            omitted: 0,
        }
    }

    /// Whether nothing was pushed (or only empty text).
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty() && self.omitted == 0
    }

    /// Append text.
    pub fn push(&mut self, text: &str) {
        let half = self.limit / 2;
        let mut rest = text;
        if self.tail.is_empty() && self.omitted == 0 && self.head.len() < half {
            let take = floor_char_boundary(rest, half - self.head.len());
            self.head.push_str(&rest[..take]);
            rest = &rest[take..];
        }
        if rest.is_empty() {
            return;
        }
        self.tail.push_str(rest);
        // Trim the tail back to `half` only when it has doubled, so pushes stay amortized O(n).
        let keep = self.limit - half;
        if self.tail.len() > keep * 2 || (self.tail.len() > keep && rest.len() > keep) {
            let cut = ceil_char_boundary(&self.tail, self.tail.len() - keep);
            self.omitted += cut as u64;
            self.tail.drain(..cut);
        }
    }

    /// The kept text; `None` when empty.
    pub fn finish(mut self) -> Option<String> {
        let keep = self.limit - self.limit / 2;
        if self.tail.len() > keep {
            let cut = ceil_char_boundary(&self.tail, self.tail.len() - keep);
            self.omitted += cut as u64;
            self.tail.drain(..cut);
        }
        if self.is_empty() {
            return None;
        }
        let mut out = self.head;
        if self.omitted > 0 {
            out.push_str(&format!("\n… {} bytes omitted …\n", self.omitted));
        }
        out.push_str(&self.tail);
        Some(out)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        let mut e = Excerpt::new(100);
        e.push("hello ");
        e.push("world");
        assert_eq!(e.finish().as_deref(), Some("hello world"));
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let mut e = Excerpt::new(20);
        for i in 0..1000 {
            e.push(&format!("line {i}\n"));
        }
        let out = e.finish().unwrap();
        assert!(out.starts_with("line 0\nlin"), "{out}");
        assert!(out.ends_with("line 999\n"), "{out}");
        assert!(out.contains("bytes omitted"));
        assert!(out.len() < 80);
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let mut e = Excerpt::new(7);
        e.push(&"é".repeat(100));
        let out = e.finish().unwrap();
        assert!(out.starts_with("é\n…"), "{out}");
        assert!(out.ends_with("éé"), "{out}");
    }

    #[test]
    fn empty_is_none() {
        assert_eq!(Excerpt::new(10).finish(), None);
    }
}

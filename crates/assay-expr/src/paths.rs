//! Unix path arithmetic with Go's `path/filepath` semantics, done on strings
//! so that compile-time folding never touches the file system.

/// Go's `filepath.Clean`: collapses `//`, `.` and `..` lexically.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Join` for two elements.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// `path` made absolute against `base` (which must be absolute).
pub fn abs(path: &str, base: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else {
        join(base, path)
    }
}

/// `relpath` of a target that a base cannot reach without knowing what its `..` are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make `{target}` relative to `{base}`")]
pub struct NotRelative {
    /// The folder the path was to be relative to (cleaned).
    pub base: String,
    /// The path (cleaned).
    pub target: String,
}

impl From<NotRelative> for crate::ExprError {
    fn from(e: NotRelative) -> Self {
        crate::ExprError::eval(e.to_string())
    }
}

/// Go's `filepath.Rel` for two absolute, cleaned paths.
pub fn rel(base: &str, target: &str) -> Result<String, NotRelative> {
    let base = clean(base);
    let target = clean(target);
    if base == target {
        return Ok(".".into());
    }
    let segs = |p: &str| {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (b, t) = (segs(&base), segs(&target));
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    if b[common..].iter().any(|s| s == "..") {
        return Err(NotRelative { base, target });
    }
    let mut out: Vec<String> = vec!["..".to_string(); b.len() - common];
    out.extend(t[common..].iter().cloned());
    Ok(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/../a//b/./c/.."), "/a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn rel_like_go() {
        assert_eq!(rel("/xyz", "/xyz/../xyz/abc").unwrap(), "abc");
        assert_eq!(rel("/xyz", "/xyz").unwrap(), ".");
        assert_eq!(rel("/xyz", "/abc").unwrap(), "../abc");
        assert_eq!(rel("/data", "/data/abc/def").unwrap(), "abc/def");
        assert_eq!(rel("/data/abc/def/xyz", "/data/abc/def").unwrap(), "..");
        assert_eq!(
            rel("/data/abc/def/xyz", "/data/abc/def/ccc").unwrap(),
            "../ccc"
        );
        assert_eq!(rel("/", "/a").unwrap(), "a");
    }
}

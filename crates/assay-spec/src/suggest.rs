//! "Did you mean ...?" suggestions for misspelled names.

/// The candidate closest to `input`, when it is close enough to be a likely typo.
///
/// Closeness is Jaro-Winkler similarity (good at short identifiers and shared prefixes), with a
/// case-insensitive exact match always winning (`Shell` → `shell`).
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = input.to_lowercase();
    let mut best: Option<(&'a str, f64)> = None;
    for candidate in candidates {
        if candidate == input {
            continue;
        }
        if candidate.to_lowercase() == lower {
            return Some(candidate);
        }
        let score = strsim::jaro_winkler(&lower, &candidate.to_lowercase());
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.filter(|(_, score)| *score >= 0.84).map(|(c, _)| c)
}

/// The names serde lists in "expected one of `a`, `b`, `c`" (and "expected `a` or `b`").
pub fn expected_names(message: &str) -> Vec<&str> {
    let Some(rest) = message
        .find("expected ")
        .map(|i| &message[i + "expected ".len()..])
    else {
        return Vec::new();
    };
    rest.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_gets_a_suggestion() {
        assert_eq!(closest("shel", ["id", "shell", "run"]), Some("shell"));
        assert_eq!(
            closest("conditon", ["condition", "content"]),
            Some("condition")
        );
        assert_eq!(
            closest("workingdir", ["workingDir", "image"]),
            Some("workingDir")
        );
        assert_eq!(closest("strin", ["string", "integer"]), Some("string"));
    }

    #[test]
    fn unrelated_word_gets_none() {
        assert_eq!(closest("banana", ["id", "shell", "run"]), None);
        assert_eq!(closest("x", ["steps", "setup"]), None);
    }

    #[test]
    fn expected_names_parses_serde_lists() {
        let msg = "unknown field `shel`, expected one of `id`, `name`, `shell`";
        assert_eq!(expected_names(msg), ["id", "name", "shell"]);
        let msg = "unknown field `x`, expected `name` or `config`";
        assert_eq!(expected_names(msg), ["name", "config"]);
        assert!(expected_names("unknown field `x`, there are no fields").is_empty());
    }
}

//! How durations and moments read for people: the one formatter of the CLI's tables, the
//! dashboard's pages and MCP's answers, so the same execution reads the same everywhere. The
//! wire keeps its own shapes (`testkube::go_duration`, RFC 3339).

use crate::model::UnixMs;

/// `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// How long before `now` the moment `at` was: `5s ago`, `3m ago`, `2h ago`, `4d ago` (a moment
/// after `now`, from a skewed clock, reads `0s ago`).
pub fn ago(at: UnixMs, now: UnixMs) -> String {
    let s = (now - at).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(-5), "0ms");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_340), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(3_720_000), "1h02m");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(ago(0, 59_999), "59s ago");
        assert_eq!(ago(0, 90_000), "1m ago");
        assert_eq!(ago(0, 7_200_000), "2h ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3d ago");
        assert_eq!(ago(10_000, 0), "0s ago");
    }
}

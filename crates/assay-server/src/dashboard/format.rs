//! Times, durations and sizes as the pages show them.

use assay_store::UnixMs;

/// `2026-11-23 13:26:20 UTC`.
pub fn time(ms: UnixMs) -> String {
    let text = assay_store::testkube::rfc3339(ms);
    // rfc3339 gives `2026-11-23T13:26:20.821Z`: keep seconds.
    let trimmed = text.get(..19).unwrap_or(&text).replace('T', " ");
    format!("{trimmed} UTC")
}

/// `5m ago`, `3h ago`, `2d ago`; `850ms`, `12.3s`, `4m05s`, `1h02m`: the formatter the CLI and
/// MCP use too.
pub use assay_store::format::{ago, duration};

/// `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Percent-encode each segment of an artifact path for a URL (keeping the slashes).
pub fn path_url(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let mut out = String::new();
            for b in segment.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(ago(0, 90_000), "1m ago");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(path_url("reports/a b#.html"), "reports/a%20b%23.html");
    }
}

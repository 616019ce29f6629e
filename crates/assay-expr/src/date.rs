//! `date()`: the current UTC time in a Go layout (`2006-01-02T15:04:05Z07:00`),
//! since Testkube workflows pass Go layouts.

use std::time::{SystemTime, UNIX_EPOCH};

/// Testkube's default layout: RFC 3339 with milliseconds.
pub const RFC3339_MILLIS: &str = "2006-01-02T15:04:05.000Z07:00";

/// Formats the current UTC time.
pub fn format_now(layout: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format(layout, now.as_secs() as i64, now.subsec_nanos())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); Howard Hinnant's algorithm.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Formats a UTC instant with a Go layout. Layout elements that Go defines
/// are replaced; any other text is copied.
pub fn format(layout: &str, secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    let (hour, min, sec) = (tod / 3600, tod / 60 % 60, tod % 60);
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    let month_name = MONTHS[month as usize - 1];
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[month as usize - 1] + day + u32::from(month > 2 && is_leap(year));
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        // Longest elements first, in the order Go's layout scanner tries them.
        let table: [(&str, String); 33] = [
            ("January", month_name.to_string()),
            ("Jan", month_name[..3].to_string()),
            ("Monday", weekday.to_string()),
            ("Mon", weekday[..3].to_string()),
            ("MST", "UTC".into()),
            ("2006", format!("{year:04}")),
            ("Z07:00:00", "Z".into()),
            ("Z070000", "Z".into()),
            ("Z07:00", "Z".into()),
            ("Z0700", "Z".into()),
            ("Z07", "Z".into()),
            ("-07:00:00", "+00:00:00".into()),
            ("-070000", "+000000".into()),
            ("-07:00", "+00:00".into()),
            ("-0700", "+0000".into()),
            ("-07", "+00".into()),
            ("002", format!("{yday:03}")),
            ("01", format!("{month:02}")),
            ("02", format!("{day:02}")),
            ("03", format!("{hour12:02}")),
            ("04", format!("{min:02}")),
            ("05", format!("{sec:02}")),
            ("06", format!("{:02}", year.rem_euclid(100))),
            ("_2", format!("{day:>2}")),
            ("15", format!("{hour:02}")),
            ("PM", if hour >= 12 { "PM" } else { "AM" }.into()),
            ("pm", if hour >= 12 { "pm" } else { "am" }.into()),
            ("1", month.to_string()),
            ("2", day.to_string()),
            ("3", hour12.to_string()),
            ("4", min.to_string()),
            ("5", sec.to_string()),
            ("", String::new()),
        ];
        if let Some((frac, len)) = fraction(rest, nanos) {
            out.push_str(&frac);
            rest = &rest[len..];
            continue;
        }
        if let Some((pat, rep)) = table
            .iter()
            .find(|(p, _)| !p.is_empty() && rest.starts_with(p))
        {
            out.push_str(rep);
            rest = &rest[pat.len()..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `.000` (fixed digits) or `.999` (trailing zeros dropped) fractional seconds.
fn fraction(rest: &str, nanos: u32) -> Option<(String, usize)> {
    let b = rest.as_bytes();
    if !matches!(b.first(), Some(b'.' | b',')) {
        return None;
    }
    let digit = *b.get(1)?;
    if digit != b'0' && digit != b'9' {
        return None;
    }
    let n = b[1..].iter().take_while(|c| **c == digit).count();
    if b.get(1 + n).is_some_and(u8::is_ascii_digit) || n > 9 {
        return None;
    }
    let digits = format!("{nanos:09}");
    let mut frac = digits[..n].to_string();
    if digit == b'9' {
        frac = frac.trim_end_matches('0').to_string();
        if frac.is_empty() {
            return Some((String::new(), n + 1));
        }
    }
    Some((format!("{}{frac}", b[0] as char), n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        // 2024-02-29T13:05:09.042Z, a Thursday.
        let t = 1_709_211_909;
        let ms = 42_000_000;
        assert_eq!(format(RFC3339_MILLIS, t, ms), "2024-02-29T13:05:09.042Z");
        assert_eq!(format("2006-01-02", t, ms), "2024-02-29");
        assert_eq!(
            format("Mon Jan _2 3:04PM 2006 MST", t, ms),
            "Thu Feb 29 1:05PM 2024 UTC"
        );
        assert_eq!(
            format("Monday, January 2 06 002 -07:00", t, ms),
            "Thursday, February 29 24 060 +00:00"
        );
        assert_eq!(format("15:04:05.999", t, ms), "13:05:09.042");
        assert_eq!(format("05.999", t, 0), "09");
        assert_eq!(format("x", 0, 0), "x");
        assert_eq!(format("2006-01-02", 0, 0), "1970-01-01");
    }
}

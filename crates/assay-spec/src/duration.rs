//! Durations in Go's `time.ParseDuration` syntax, which Testkube uses for `timeout`, `delay` and
//! friends: a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`. A lone `0`
//! needs no unit. Negative durations parse in Go but mean nothing for a timeout, so they are
//! rejected here.

use std::time::Duration;

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
];

/// Why a duration does not parse. Messages are lowercase fragments (`missing unit in duration
/// "10"`); each holds the input as written, quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("negative duration {0}")]
    Negative(String),
    #[error("invalid duration {0}")]
    Invalid(String),
    #[error("missing unit in duration {0}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input} (use ns, us, ms, s, m or h)")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0} is too long")]
    TooLong(String),
}

/// Parse a Go duration string.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let quoted = format!("{input:?}");
    let mut s = input;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        return Err(DurationError::Negative(quoted));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Invalid(quoted));
    }
    let mut total_ns: u128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::Invalid(quoted));
        }
        // The unit: everything up to the next digit or dot.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(quoted));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: quoted,
            });
        };
        let overflow = || DurationError::TooLong(quoted.clone());
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut ns = int.checked_mul(scale).ok_or_else(overflow)?;
        // Fractions finer than a nanosecond are dropped, as Go does.
        let mut place = scale;
        for digit in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            ns += u128::from(digit - b'0') * place;
        }
        total_ns = total_ns.checked_add(ns).ok_or_else(overflow)?;
        // Go caps durations at about 292 years (i64 nanoseconds).
        if total_ns > i64::MAX as u128 {
            return Err(overflow());
        }
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn go_examples_parse() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(
            ok("2h45m10.5s"),
            Duration::from_millis((2 * 3600 + 45 * 60 + 10) * 1000 + 500)
        );
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("+3m"), Duration::from_secs(180));
        assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
    }

    #[test]
    fn bad_durations_are_errors() {
        for s in [
            "",
            "10",
            "1x",
            "h",
            "1h 30m",
            "-1s",
            ".s",
            "1.2.3s",
            "1sec",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} should not parse");
        }
        assert_eq!(
            parse_duration("10").unwrap_err().to_string(),
            "missing unit in duration \"10\""
        );
        assert_eq!(
            parse_duration("5min").unwrap_err().to_string(),
            "unknown unit \"min\" in duration \"5min\" (use ns, us, ms, s, m or h)"
        );
        assert_eq!(
            parse_duration("-1s").unwrap_err().to_string(),
            "negative duration \"-1s\""
        );
        assert_eq!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .to_string(),
            "duration \"99999999999999999999h\" is too long"
        );
    }
}

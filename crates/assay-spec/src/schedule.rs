//! Schedules: the `cron` and `timezone` of a workflow's `events[].cronjob`, parsed and evaluated.
//!
//! Patterns are [croner](https://docs.rs/croner)'s: 5 fields (minute granularity, as in
//! Testkube and Kubernetes) or 6 with seconds first, `L`, `W`, `#`, names of months and weekdays,
//! and `@yearly` … `@hourly`. A time zone is an IANA name (`Europe/Warsaw`); without one the
//! pattern is read in UTC.
//!
//! Pure like the rest of the crate: no clock. The caller passes "now".

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed `events[].cronjob` schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    /// The pattern as written.
    pub pattern: String,
    /// The time zone as written (`None`: UTC).
    pub timezone: Option<String>,
}

/// What is wrong with a schedule: the message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron pattern does not parse.
    #[error("invalid cron pattern `{pattern}`: {reason}")]
    Cron {
        /// The pattern as written.
        pattern: String,
        /// Why, in croner's words.
        reason: String,
    },
    /// The time zone is not a known IANA name.
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
}

impl ScheduleError {
    /// A hint for the user.
    pub fn hint(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => {
                "use 5 fields (minute hour day-of-month month day-of-week, e.g. `15 */2 * * *`), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly"
            }
            ScheduleError::TimeZone(_) => {
                "use an IANA time zone name such as `UTC`, `Europe/Warsaw` or `America/New_York`"
            }
        }
    }
}

/// croner's message without its prefixes, as a lowercase fragment.
fn reason(e: &CronError) -> String {
    let text = match e {
        CronError::InvalidPattern(m) | CronError::ComponentError(m) => m.clone(),
        CronError::IllegalCharacters(m) => m.replace("CronPattern contains", "it contains"),
        CronError::EmptyPattern => "it is empty".into(),
        other => other.to_string(),
    };
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

impl Schedule {
    /// Parse `pattern` in `timezone` (an IANA name; `None` or empty is UTC).
    pub fn parse(pattern: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let invalid = |reason: String| ScheduleError::Cron {
            pattern: pattern.to_string(),
            reason,
        };
        let fields = pattern.split_whitespace().count();
        if pattern.trim_start().starts_with("@every") {
            return Err(invalid(
                "`@every` is not supported; write the interval as a pattern (`*/5 * * * *` is every 5 minutes)".into(),
            ));
        }
        if !pattern.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(invalid(format!(
                "it has {fields} field(s); a pattern has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            )));
        }
        let cron = parser().parse(pattern).map_err(|e| invalid(reason(&e)))?;
        // A pattern that never matches (`0 0 30 2 *`) would silently never run.
        let reference = DateTime::<Utc>::from_timestamp(946_684_800, 0).expect("valid time");
        if cron.find_next_occurrence(&reference, false).is_err() {
            return Err(invalid("it never matches a date".into()));
        }
        let timezone = timezone.map(str::trim).filter(|t| !t.is_empty());
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        Ok(Schedule {
            cron,
            zone,
            pattern: pattern.to_string(),
            timezone: timezone.map(str::to_string),
        })
    }

    /// The first time the schedule fires strictly after `after`; `None` if it never does
    /// (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last time the schedule fired at or before `at`; `None` if it never did.
    pub fn previous_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn five_fields_fire_on_the_minute_in_utc() {
        let s = Schedule::parse("15 */2 * * *", None).unwrap();
        assert_eq!(
            s.next_after(utc(2026, 3, 1, 10, 20, 0)),
            Some(utc(2026, 3, 1, 12, 15, 0))
        );
        // Strictly after: a time that matches gives the following one.
        assert_eq!(
            s.next_after(utc(2026, 3, 1, 12, 15, 0)),
            Some(utc(2026, 3, 1, 14, 15, 0))
        );
        assert_eq!(
            s.previous_at_or_before(utc(2026, 3, 1, 12, 15, 0)),
            Some(utc(2026, 3, 1, 12, 15, 0))
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let s = Schedule::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(
            s.next_after(utc(2026, 3, 1, 10, 20, 3)),
            Some(utc(2026, 3, 1, 10, 20, 10))
        );
    }

    #[test]
    fn time_zones_move_the_wall_clock() {
        // 09:00 in Warsaw is 08:00 UTC in winter and 07:00 UTC in summer.
        let s = Schedule::parse("0 9 * * *", Some("Europe/Warsaw")).unwrap();
        assert_eq!(
            s.next_after(utc(2026, 1, 10, 0, 0, 0)),
            Some(utc(2026, 1, 10, 8, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 7, 10, 0, 0, 0)),
            Some(utc(2026, 7, 10, 7, 0, 0))
        );
    }

    #[test]
    fn extensions_and_nicknames() {
        // Last day of the month; the second Monday; @hourly.
        let last = Schedule::parse("0 0 L * *", None).unwrap();
        assert_eq!(
            last.next_after(utc(2026, 2, 3, 0, 0, 0)),
            Some(utc(2026, 2, 28, 0, 0, 0))
        );
        let second_monday = Schedule::parse("0 0 * * MON#2", None).unwrap();
        assert_eq!(
            second_monday.next_after(utc(2026, 3, 1, 0, 0, 0)),
            Some(utc(2026, 3, 9, 0, 0, 0))
        );
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(utc(2026, 3, 1, 10, 20, 0)),
            Some(utc(2026, 3, 1, 11, 0, 0))
        );
    }

    #[test]
    fn bad_patterns_and_zones_are_named() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "every day",
            "0 0 30 2 *",
            "@every 5m",
            "*/0 * * * *",
        ] {
            let e = Schedule::parse(bad, None).unwrap_err();
            assert!(matches!(e, ScheduleError::Cron { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        let messages: Vec<String> = [
            "* * *",
            "0 0 30 2 *",
            "@every 5m",
            "61 * * * *",
            "* * * * FOO",
        ]
        .iter()
        .map(|p| Schedule::parse(p, None).unwrap_err().to_string())
        .collect();
        assert_eq!(
            messages,
            [
                "invalid cron pattern `* * *`: it has 3 field(s); a pattern has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)",
                "invalid cron pattern `0 0 30 2 *`: it never matches a date",
                "invalid cron pattern `@every 5m`: `@every` is not supported; write the interval as a pattern (`*/5 * * * *` is every 5 minutes)",
                "invalid cron pattern `61 * * * *`: number out of bounds",
                "invalid cron pattern `* * * * FOO`: it contains illegal character 'F' in part 'FOO'",
            ]
        );
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e, ScheduleError::TimeZone("Mars/Olympus".into()));
        assert_eq!(e.to_string(), "unknown time zone `Mars/Olympus`");
    }
}

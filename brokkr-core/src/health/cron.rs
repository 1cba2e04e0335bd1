//! Just enough of the cron schedule language to tell when a CronJob should last have
//! run: the five standard fields with `*`, ranges, steps, lists and names, and the
//! `@hourly`-style macros, as the CronJob controller accepts them.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Timelike, Utc};

/// A parsed schedule: for each field, which values match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// Both day fields are restricted: a day matches when either does (cron's rule).
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    /// Parses a schedule; `None` for anything this parser does not understand (the
    /// caller then makes no claim about missed runs). A `TZ=`/`CRON_TZ=` prefix other
    /// than UTC is not understood: the times would need a time-zone database.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut text = text.trim();
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (zone, rest) = rest.split_once(char::is_whitespace)?;
                if !is_utc(zone) {
                    return None;
                }
                text = rest.trim();
            }
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return None;
        };
        let days_of_month = field(dom, 1, 31, &[])?;
        let days_of_week = field(dow, 0, 7, &WEEKDAYS)?;
        // 7 is another name for Sunday.
        let days_of_week = (days_of_week | (days_of_week >> 7)) & 0x7f;
        // As the scheduler Kubernetes uses reads it: a day field is unrestricted when
        // one of its parts is `*` (or `?`) with a step of 1.
        let unrestricted = |f: &str| {
            f.split(',').any(|part| {
                let (range, step) = part.split_once('/').unwrap_or((part, "1"));
                (range == "*" || range == "?") && step == "1"
            })
        };
        Some(Self {
            minutes: field(minute, 0, 59, &[])?,
            hours: u32::try_from(field(hour, 0, 23, &[])?).ok()?,
            days_of_month: u32::try_from(days_of_month).ok()?,
            months: u16::try_from(field(month, 1, 12, &MONTHS)? >> 1).ok()?,
            days_of_week: u8::try_from(days_of_week).ok()?,
            either_day: !unrestricted(dom) && !unrestricted(dow),
        })
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.days_of_month & (1 << t.day()) != 0;
        let dow = self.days_of_week & (1 << t.weekday().num_days_from_sunday()) != 0;
        let month = self.months & (1 << t.month0()) != 0;
        month
            && if self.either_day {
                dom || dow
            } else {
                dom && dow
            }
    }

    /// The first scheduled time strictly after `after` and not later than `until`.
    /// Looks at most about five years ahead (a schedule may name February 29).
    pub(crate) fn next_after(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        // The first candidate is the next whole minute, which may be on the next day.
        let first = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = first.date_naive();
        for _ in 0..(366 * 5) {
            let start = if day == first.date_naive() {
                first
            } else {
                day.and_time(NaiveTime::MIN).and_utc()
            };
            if start > until {
                return None;
            }
            if self.day_matches(start) {
                for hour in start.hour()..24 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    let first_minute = if hour == start.hour() {
                        start.minute()
                    } else {
                        0
                    };
                    for minute in first_minute..60 {
                        if self.minutes & (1 << minute) != 0 {
                            let at = day.and_hms_opt(hour, minute, 0)?.and_utc();
                            return (at <= until).then_some(at);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }
}

fn is_utc(zone: &str) -> bool {
    matches!(
        zone,
        "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Zulu" | "Zulu"
    )
}

/// Whether a CronJob's `spec.timeZone` means UTC (absent means the controller's zone,
/// which is UTC in every managed distribution we know of).
pub(crate) fn zone_is_utc(zone: Option<&str>) -> bool {
    zone.is_none_or(is_utc)
}

/// One field as a bit set of matching values between `low` and `high`.
fn field(text: &str, low: u32, high: u32, names: &[&str]) -> Option<u64> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (start, end) = if range == "*" || range == "?" {
            (low, high)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, low, names)?, value(b, low, names)?)
        } else {
            let v = value(range, low, names)?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if part.contains('/') { high } else { v })
        };
        if start < low || end > high || start > end {
            return None;
        }
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Some(bits)
}

fn value(text: &str, low: u32, names: &[&str]) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let upper = text.to_ascii_uppercase();
    let index = names.iter().position(|n| *n == upper)?;
    // Month names start at 1, weekday names at 0 (Sunday).
    Some(u32::try_from(index).ok()? + low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn next_runs_follow_the_fields() {
        let far = at(2030, 1, 1, 0, 0);
        let every_15 = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            every_15.next_after(at(2026, 3, 1, 11, 50), far),
            Some(at(2026, 3, 1, 12, 0))
        );
        let nightly = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            nightly.next_after(at(2026, 3, 1, 2, 30), far),
            Some(at(2026, 3, 2, 2, 30))
        );
        let weekdays = Schedule::parse("0 9 * * MON-FRI").unwrap();
        // 2026-03-07 is a Saturday.
        assert_eq!(
            weekdays.next_after(at(2026, 3, 6, 10, 0), far),
            Some(at(2026, 3, 9, 9, 0))
        );
        let monthly = Schedule::parse("@monthly").unwrap();
        assert_eq!(
            monthly.next_after(at(2026, 3, 1, 0, 0), far),
            Some(at(2026, 4, 1, 0, 0))
        );
        // Day of month or day of week, when both are given.
        let either = Schedule::parse("0 0 13 * FRI").unwrap();
        assert_eq!(
            either.next_after(at(2026, 3, 1, 0, 0), far),
            Some(at(2026, 3, 6, 0, 0))
        );
        assert_eq!(
            nightly.next_after(at(2026, 3, 1, 3, 0), at(2026, 3, 2, 1, 0)),
            None
        );
        // Just before midnight, the next run is on the next day.
        let last_minute = Schedule::parse("59 23 * * *").unwrap();
        assert_eq!(
            last_minute.next_after(at(2026, 3, 1, 23, 59), far),
            Some(at(2026, 3, 2, 23, 59))
        );
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(at(2026, 3, 1, 23, 59) + Duration::seconds(30), far),
            Some(at(2026, 3, 2, 0, 0))
        );
        // `*/1` in a day field still means "every day": both day fields must match.
        let mondays = Schedule::parse("0 0 */1 * MON").unwrap();
        assert_eq!(
            mondays.next_after(at(2026, 3, 3, 0, 0), far),
            Some(at(2026, 3, 9, 0, 0))
        );
    }

    #[test]
    fn unknown_syntax_and_zones_are_not_guessed() {
        for text in [
            "",
            "* * * *",
            "61 * * * *",
            "0 0 * * 8",
            "TZ=Europe/Berlin 0 0 * * *",
            "0 0 L * *",
            "*/0 * * * *",
            "99999999999 * * * *",
        ] {
            assert_eq!(Schedule::parse(text), None, "{text}");
        }
        // A step beyond the range is one value, not an overflow.
        assert!(Schedule::parse("*/4294967295 * * * *").is_some());
        assert!(Schedule::parse("CRON_TZ=UTC 0 0 * * *").is_some());
        assert!(Schedule::parse("0 0 * * 7").is_some());
    }
}

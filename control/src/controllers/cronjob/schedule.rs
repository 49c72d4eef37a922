//! A CronJob's schedule in its time zone: five cron fields or a descriptor (`@hourly`, …;
//! evaluated by `croner`) or `@every <duration>`, and the scheduling questions the controller
//! asks: the most recent missed time in a window, and the next time.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule text does not parse.
    #[error("unparseable schedule {schedule:?}: {why}")]
    Unparseable { schedule: String, why: String },
    /// `spec.timeZone` names no known zone.
    #[error("unknown time zone {0}")]
    TimeZone(String),
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        cron: Box<Cron>,
        tz: TimeZone,
    },
    /// `@every d`: every `d` from a starting time (robfig's ConstantDelaySchedule).
    Every(SignedDuration),
}

/// The answer to "what should have run by now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The newest schedule time in `(earliest, now]`.
    pub most_recent: Option<Timestamp>,
    /// How many schedule times fell in the window (counting stops past 100).
    pub count: u32,
}

impl Schedule {
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let bad = |why: String| ScheduleError::Unparseable {
            schedule: schedule.into(),
            why,
        };
        // The API server has validated the syntax (robfig's standard parser); croner accepts
        // more (seconds, years, `L`, `#`), so only the field count is checked again here.
        let s = schedule.trim();
        if !s.starts_with('@') && s.split_whitespace().count() != 5 {
            return Err(bad("expected exactly 5 fields".into()));
        }
        if let Some(d) = s.strip_prefix("@every") {
            let d: SignedDuration = d.trim().parse().map_err(|e| bad(format!("{e}")))?;
            // robfig rounds below one second up to one second.
            return Ok(Schedule::Every(d.max(SignedDuration::from_secs(1))));
        }
        let tz = match time_zone {
            Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.into()))?,
            None => TimeZone::UTC,
        };
        let pattern = match s {
            "@midnight" => "0 0 * * *",
            other => other,
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    /// The first schedule time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, tz } => cron
                .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                .ok()
                .map(|z| z.timestamp()),
            Schedule::Every(d) => {
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                whole.checked_add(*d).ok()
            }
        }
    }

    /// The schedule times in `(earliest, now]`: the newest, and how many (as upstream's
    /// mostRecentScheduleTime).
    pub fn missed(&self, earliest: Timestamp, now: Timestamp) -> Missed {
        let none = Missed {
            most_recent: None,
            count: 0,
        };
        let Some(t1) = self.next_after(earliest).filter(|t| *t <= now) else {
            return none;
        };
        match self {
            Schedule::Every(d) => {
                let n = now.duration_since(t1).as_secs() / d.as_secs().max(1);
                let step = SignedDuration::from_secs(n.saturating_mul(d.as_secs()));
                let most_recent = t1.checked_add(step).ok();
                Missed {
                    most_recent,
                    count: (n + 1).min(101) as u32,
                }
            }
            Schedule::Cron { cron, tz } => {
                let most_recent = cron
                    .find_previous_occurrence(&now.to_zoned(tz.clone()), true)
                    .ok()
                    .map(|z| z.timestamp())
                    .filter(|t| *t >= t1);
                let mut count = 1;
                let mut t = t1;
                while count <= 100 {
                    match self.next_after(t) {
                        Some(n) if n <= now => {
                            count += 1;
                            t = n;
                        }
                        _ => break,
                    }
                }
                Missed {
                    most_recent: most_recent.or(Some(t)),
                    count,
                }
            }
        }
    }

    /// The annotation value for a scheduled time: RFC 3339 in the schedule's zone.
    pub fn format(&self, t: Timestamp) -> String {
        let tz = match self {
            Schedule::Cron { tz, .. } => tz.clone(),
            Schedule::Every(_) => TimeZone::UTC,
        };
        let z = t.to_zoned(tz);
        if z.offset().seconds() == 0 {
            z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_and_descriptors() {
        let s = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            s.next_after(t("2024-01-01T00:03:10Z")),
            Some(t("2024-01-01T00:05:00Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T00:05:00Z")),
            Some(t("2024-01-01T00:10:00Z"))
        );
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(t("2024-01-01T00:03:10Z")),
            Some(t("2024-01-01T01:00:00Z"))
        );
        let daily = Schedule::parse("@daily", None).unwrap();
        assert_eq!(
            daily.next_after(t("2024-01-01T00:03:10Z")),
            Some(t("2024-01-02T00:00:00Z"))
        );
        // Day of month and weekday both restricted: either matches (cron's rule).
        let either = Schedule::parse("0 12 13 * FRI", None).unwrap();
        assert_eq!(
            either.next_after(t("2024-01-01T00:00:00Z")),
            Some(t("2024-01-05T12:00:00Z")),
            "Friday the 5th comes before the 13th"
        );
        let every = Schedule::parse("@every 1h30m", None).unwrap();
        assert_eq!(
            every.next_after(t("2024-01-01T00:00:00.5Z")),
            Some(t("2024-01-01T01:30:00Z"))
        );
        assert!(Schedule::parse("61 * * * *", None).is_err());
    }

    #[test]
    fn time_zones() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        let next = s.next_after(t("2024-01-01T00:00:00Z")).unwrap();
        assert_eq!(next, t("2024-01-01T08:00:00Z"));
        assert_eq!(s.format(next), "2024-01-01T09:00:00+01:00");
        assert!(matches!(
            Schedule::parse("0 9 * * *", Some("Mars/Olympus")),
            Err(ScheduleError::TimeZone(_))
        ));
        let utc = Schedule::parse("0 9 * * *", None).unwrap();
        assert_eq!(
            utc.format(t("2024-01-01T09:00:00Z")),
            "2024-01-01T09:00:00Z"
        );
    }

    #[test]
    fn missed_times() {
        let s = Schedule::parse("*/10 * * * *", None).unwrap();
        let m = s.missed(t("2024-01-01T00:00:00Z"), t("2024-01-01T00:35:00Z"));
        assert_eq!(m.most_recent, Some(t("2024-01-01T00:30:00Z")));
        assert_eq!(m.count, 3);
        let m = s.missed(t("2024-01-01T00:00:00Z"), t("2024-01-01T00:09:59Z"));
        assert_eq!(
            m,
            Missed {
                most_recent: None,
                count: 0
            }
        );
        let m = s.missed(t("2024-01-01T00:00:00Z"), t("2024-01-01T00:10:00Z"));
        assert_eq!(m.most_recent, Some(t("2024-01-01T00:10:00Z")));
        let m = s.missed(t("2024-01-01T00:00:00Z"), t("2024-02-01T00:00:00Z"));
        assert_eq!(m.count, 101, "counting stops past 100");
        assert_eq!(m.most_recent, Some(t("2024-02-01T00:00:00Z")));
        let every = Schedule::parse("@every 15m", None).unwrap();
        let m = every.missed(t("2024-01-01T00:00:00Z"), t("2024-01-01T01:00:00Z"));
        assert_eq!(m.most_recent, Some(t("2024-01-01T01:00:00Z")));
        assert_eq!(m.count, 4);
    }
}

//! Five-field UNIX cron schedules: minute, hour, day of month, month, day of week, with
//! ranges, lists, steps, and month and day names, in UTC. A test-only setting also accepts a
//! sixth, leading field of seconds.

use nuage_core::ApiError;
use nuage_core::error::Reason;
use std::str::FromStr;

const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT"),
];

/// A checked schedule.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    cron: croner::Cron,
}

impl Pattern {
    /// Parses a schedule stored after [`check`] (`seconds`: whether 6 fields are accepted).
    pub(crate) fn parse(schedule: &str, seconds: bool) -> Result<Self, ApiError> {
        check(schedule, seconds)?;
        let fields = schedule.split_whitespace().count();
        let with_seconds = if fields == 6 {
            schedule.to_owned()
        } else {
            format!("0 {schedule}")
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(&with_seconds)
            .map_err(|error| ApiError::invalid_argument("schedule", Reason::Format, error.to_string()))?;
        Ok(Self { cron })
    }

    /// The first scheduled time strictly after `after`.
    pub(crate) fn next_after(&self, after: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Checks a schedule; the error says which field is wrong and what it accepts. `seconds`
/// (test-only) also accepts six fields, the first being the second.
pub(crate) fn check(schedule: &str, seconds: bool) -> Result<(), ApiError> {
    let refuse = |help: String| Err(ApiError::invalid_argument("schedule", Reason::Format, help));
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if seconds && fields.len() == 6 {
        return match croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(&fields.join(" "))
        {
            Ok(_) => Ok(()),
            Err(error) => refuse(format!("`{schedule}` is not a valid schedule with seconds: {error}")),
        };
    }
    if fields.len() != FIELDS.len() {
        return refuse(format!(
            "`{schedule}` has {} fields; a schedule has 5: minute hour day-of-month month day-of-week, such as `0 13 * * *`",
            fields.len()
        ));
    }
    // Parse each field alone first, so the message can name the one that is wrong.
    for (index, (field, (name, range))) in fields.iter().zip(FIELDS).enumerate() {
        let mut alone = ["*"; 5];
        alone[index] = field;
        if let Err(error) = croner::Cron::from_str(&alone.join(" ")) {
            return refuse(format!(
                "the {name} field `{field}` is not valid ({error}); it accepts {range}, with `*`, ranges `a-b`, lists `a,b` and steps `/n`"
            ));
        }
    }
    match croner::Cron::from_str(&fields.join(" ")) {
        Ok(_) => Ok(()),
        Err(error) => refuse(format!("`{schedule}` is not a valid schedule: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Pattern, check};
    use chrono::TimeZone;

    #[test]
    fn five_field_schedules() {
        for good in ["0 13 * * *", "*/5 1-3,7 * JAN-MAR MON-FRI", "0 0 1 * 0", "0 0 * * 7"] {
            assert!(check(good, false).is_ok(), "{good} refused");
        }
        let help = |bad: &str| check(bad, false).unwrap_err().violations[0].help_message.clone();
        assert!(help("61 * * * *").contains("minute field `61`"));
        assert!(help("* * * 13 *").contains("month field `13`"));
        assert!(help("* * *").contains("has 3 fields"));
        assert!(help("0 0 * * * *").contains("has 6 fields"));
        assert!(help("@daily").contains("has 1 fields"));
        // Seconds only where the test-only setting allows them.
        assert!(check("*/2 * * * * *", true).is_ok());
        assert!(check("61 * * * * *", true).is_err());
    }

    #[test]
    fn occurrences_follow_unix_cron() {
        let at = |d, h, m, s| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap();
        let hourly = Pattern::parse("30 * * * *", false).unwrap();
        assert_eq!(hourly.next_after(at(22, 10, 29, 59)), Some(at(22, 10, 30, 0)));
        assert_eq!(hourly.next_after(at(22, 10, 30, 0)), Some(at(22, 11, 30, 0)));
        // Day of month and day of week are either-or, as in UNIX cron: the 13th, and Fridays.
        let either = Pattern::parse("0 0 13 * 5", false).unwrap();
        assert_eq!(either.next_after(at(22, 0, 0, 0)), Some(at(27, 0, 0, 0)));
        let every_other_second = Pattern::parse("*/2 * * * * *", true).unwrap();
        assert_eq!(every_other_second.next_after(at(22, 10, 0, 3)), Some(at(22, 10, 0, 4)));
        assert!(Pattern::parse("*/2 * * * * *", false).is_err());
    }
}

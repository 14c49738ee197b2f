//! Five-field UNIX cron schedules: minute, hour, day of month, month, day of week, with
//! ranges, lists, steps, and month and day names.

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

/// Checks a schedule; the error says which field is wrong and what it accepts.
pub(crate) fn check(schedule: &str) -> Result<(), ApiError> {
    let refuse = |help: String| Err(ApiError::invalid_argument("schedule", Reason::Format, help));
    let fields: Vec<&str> = schedule.split_whitespace().collect();
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
    use super::check;

    #[test]
    fn five_field_schedules() {
        for good in ["0 13 * * *", "*/5 1-3,7 * JAN-MAR MON-FRI", "0 0 1 * 0", "0 0 * * 7"] {
            assert!(check(good).is_ok(), "{good} refused");
        }
        let help = |bad: &str| check(bad).unwrap_err().violations[0].help_message.clone();
        assert!(help("61 * * * *").contains("minute field `61`"));
        assert!(help("* * * 13 *").contains("month field `13`"));
        assert!(help("* * *").contains("has 3 fields"));
        assert!(help("0 0 * * * *").contains("has 6 fields"));
        assert!(help("@daily").contains("has 1 fields"));
    }
}

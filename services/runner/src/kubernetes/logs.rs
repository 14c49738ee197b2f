//! Following a pod's log across reconnections. The log is read with timestamps
//! (`timestamps=true`: each line starts with its RFC 3339 time and a space); when the stream
//! drops while the instance lives, it is opened again from the last line's second
//! (`sinceTime`, which the API takes to the second), and [`Resume`] drops the lines of that
//! second already passed on, so that no line is lost or doubled.

use k8s_openapi::jiff::{Timestamp, Unit};

/// Where a followed log stands: the time of the last line passed on, and how many lines of
/// that very time were.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Until a line is read: where the first stream started (`None`: at the pod's start).
    from: Option<Timestamp>,
    last: Option<Timestamp>,
    at_last: usize,
    /// Lines of the last line's time seen on the current stream.
    again: usize,
}

impl Resume {
    /// Returns the state of a log followed from `from` (`None`: from the pod's start).
    pub fn from(from: Option<Timestamp>) -> Self {
        Self {
            from,
            ..Self::default()
        }
    }

    /// Returns the `sinceTime` to open the stream with: the second of the last line passed
    /// on (lines of that second are read again, and dropped by [`Resume::accept`]), else
    /// where following started.
    pub fn since_time(&self) -> Option<Timestamp> {
        match self.last {
            Some(last) => last.round(to_the_second()).ok(),
            None => self.from,
        }
    }

    /// Says a new stream is opened: the lines it repeats are counted from its start.
    pub fn reopened(&mut self) {
        self.again = 0;
    }

    /// Returns the message of `line` (its timestamp and the space after it taken off) when it
    /// is new, `None` when a stream opened again repeats it. A line without a timestamp is
    /// passed on as it is.
    pub fn accept<'a>(&mut self, line: &'a [u8]) -> Option<&'a [u8]> {
        let space = line.iter().position(|byte| *byte == b' ');
        let parsed = space.and_then(|at| {
            let time: Timestamp = std::str::from_utf8(&line[..at]).ok()?.parse().ok()?;
            Some((time, &line[at + 1..]))
        });
        let Some((time, message)) = parsed else {
            return Some(line);
        };
        match self.last {
            Some(last) if time < last => None,
            Some(last) if time == last => {
                self.again += 1;
                if self.again <= self.at_last {
                    None
                } else {
                    self.at_last += 1;
                    Some(message)
                }
            }
            _ => {
                self.last = Some(time);
                self.at_last = 1;
                self.again = 1;
                Some(message)
            }
        }
    }
}

/// Rounding down to the second.
fn to_the_second() -> k8s_openapi::jiff::TimestampRound {
    k8s_openapi::jiff::TimestampRound::new()
        .smallest(Unit::Second)
        .mode(k8s_openapi::jiff::RoundMode::Floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(resume: &mut Resume, lines: &[&str]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|line| resume.accept(line.as_bytes()))
            .map(|message| String::from_utf8_lossy(message).into_owned())
            .collect()
    }

    #[test]
    fn a_stream_opened_again_from_the_last_second_doubles_no_line_and_loses_none() {
        let mut resume = Resume::from(None);
        assert_eq!(resume.since_time(), None, "from the pod's start");
        let first = [
            "2026-12-06T10:00:00.5Z one",
            "2026-12-06T10:00:01.25Z two",
            "2026-12-06T10:00:01.75Z three",
            "2026-12-06T10:00:01.75Z three again",
        ];
        assert_eq!(passed(&mut resume, &first), ["one", "two", "three", "three again"]);
        // The API takes the second: the stream opens at 10:00:01, before the last line.
        assert_eq!(resume.since_time().unwrap().to_string(), "2026-12-06T10:00:01Z");
        resume.reopened();
        let second = [
            "2026-12-06T10:00:01.25Z two",
            "2026-12-06T10:00:01.75Z three",
            "2026-12-06T10:00:01.75Z three again",
            "2026-12-06T10:00:01.75Z four, at the same time",
            "2026-12-06T10:00:02.000000001Z five",
        ];
        assert_eq!(passed(&mut resume, &second), ["four, at the same time", "five"]);
        assert_eq!(resume.since_time().unwrap().to_string(), "2026-12-06T10:00:02Z");
        // A stream that drops before repeating everything loses nothing either.
        resume.reopened();
        assert_eq!(passed(&mut resume, &["2026-12-06T10:00:02.5Z six"]), ["six"]);
    }

    #[test]
    fn following_from_a_time_opens_there_until_a_line_comes_and_passes_lines_without_a_time() {
        let from: Timestamp = "2026-12-06T09:59:59Z".parse().unwrap();
        let mut resume = Resume::from(Some(from));
        assert_eq!(resume.since_time(), Some(from));
        assert_eq!(passed(&mut resume, &["no timestamp here"]), ["no timestamp here"]);
        assert_eq!(resume.since_time(), Some(from));
    }
}

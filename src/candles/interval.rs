//! Candle intervals (`<n><unit>`) and how they cut time into buckets in a time zone.
//!
//! Intraday intervals (s, m, h) start a fresh grid at local midnight every day: buckets start at
//! midnight + k * interval (elapsed time) and the last one of a day ends at the next midnight.
//! `d` buckets are local calendar days, `w` weeks starting Monday, `mo` calendar months; an
//! `n`-day, week or month interval groups consecutive ones counted from 1970-01-01 (days),
//! Monday 1970-01-05 (weeks) and January of year 0 (months, so 3mo are calendar quarters).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;

use crate::model::{NANOS_PER_DAY, NANOS_PER_SECOND, Nanos};

use super::{CandleError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
            Unit::Week => "w",
            Unit::Month => "mo",
        }
    }
}

/// The largest multiplier accepted: more than 400 years in any unit is no candle interval.
pub const MAX_MULTIPLIER: u32 = 1_000_000;

/// What [`Interval::from_str`] accepts, as a JSON Schema pattern (the OpenAPI document states
/// it; a property test holds the parser to it).
pub const INTERVAL_PATTERN: &str = "^([1-9][0-9]{0,5}|1000000)(s|m|h|d|w|mo)$";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    pub n: u32,
    pub unit: Unit,
}

impl Interval {
    pub const ONE_MINUTE: Interval = Interval {
        n: 1,
        unit: Unit::Minute,
    };
    pub const ONE_HOUR: Interval = Interval {
        n: 1,
        unit: Unit::Hour,
    };

    /// The fixed length of an intraday interval, `None` for days, weeks and months.
    pub fn fixed_nanos(self) -> Option<Nanos> {
        let unit = match self.unit {
            Unit::Second => NANOS_PER_SECOND,
            Unit::Minute => 60 * NANOS_PER_SECOND,
            Unit::Hour => 3600 * NANOS_PER_SECOND,
            _ => return None,
        };
        Some(self.n as i64 * unit)
    }

    /// True when every bucket boundary is a whole UTC minute in a zone whose offsets are whole
    /// minutes, so the bucket is a union of 1-minute candles.
    pub fn is_whole_minutes(self) -> bool {
        self.unit != Unit::Second || self.n.is_multiple_of(60)
    }

    /// True when the interval is a whole number of hours or longer, so its buckets may be
    /// unions of 1-hour candles (whether they are depends on the zone's offsets).
    pub fn is_whole_hours(self) -> bool {
        match self.unit {
            Unit::Second => self.n.is_multiple_of(3600),
            Unit::Minute => self.n.is_multiple_of(60),
            Unit::Hour | Unit::Day | Unit::Week | Unit::Month => true,
        }
    }

    /// A rough upper bound of the number of buckets in `[start, end)`, for request limits.
    pub fn approx_buckets(self, start: Nanos, end: Nanos) -> u64 {
        let span = (end - start).max(0) as f64;
        let len = match self.unit {
            Unit::Day => NANOS_PER_DAY as f64,
            Unit::Week => 7.0 * NANOS_PER_DAY as f64,
            Unit::Month => 28.0 * NANOS_PER_DAY as f64,
            _ => self.fixed_nanos().unwrap_or(NANOS_PER_DAY) as f64 / self.n as f64,
        } * self.n as f64;
        (span / len).ceil() as u64 + 1
    }
}

impl FromStr for Interval {
    type Err = CandleError;
    fn from_str(s: &str) -> Result<Self> {
        let err = || CandleError::Interval(s.to_string());
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = s.split_at(split);
        let unit = match unit {
            "s" => Unit::Second,
            "m" => Unit::Minute,
            "h" => Unit::Hour,
            "d" => Unit::Day,
            "w" => Unit::Week,
            "mo" => Unit::Month,
            _ => return Err(err()),
        };
        if digits.is_empty() || digits.starts_with('0') || digits.len() > 7 {
            return Err(err());
        }
        let n: u32 = digits.parse().map_err(|_| err())?;
        if n > MAX_MULTIPLIER {
            return Err(err());
        }
        Ok(Interval { n, unit })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.n, self.unit.suffix())
    }
}

/// Cuts time into the buckets of one interval in one time zone.
#[derive(Debug, Clone, Copy)]
pub struct Bucketing {
    pub interval: Interval,
    pub tz: Tz,
}

const EPOCH_MONDAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 5).expect("valid");
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");

impl Bucketing {
    pub fn new(interval: Interval, tz: Tz) -> Self {
        Self { interval, tz }
    }

    fn local_date(&self, t: Nanos) -> NaiveDate {
        self.tz.timestamp_nanos(t).date_naive()
    }

    /// The instant a local date begins: midnight, or the end of a DST gap that swallows it.
    fn day_start(&self, date: NaiveDate) -> Nanos {
        let mut time = NaiveTime::MIN;
        for _ in 0..=24 * 4 {
            if let Some(dt) = self.tz.from_local_datetime(&date.and_time(time)).earliest() {
                return dt.timestamp_nanos_opt().unwrap_or(i64::MAX);
            }
            time += Duration::minutes(15);
        }
        // No time zone skips a whole day; were one to, its UTC midnight still orders buckets.
        date.and_time(NaiveTime::MIN)
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap_or(i64::MAX)
    }

    /// The local day containing `t`, as the instants it starts and ends.
    pub fn day(&self, t: Nanos) -> (Nanos, Nanos) {
        let date = self.local_date(t);
        (
            self.day_start(date),
            self.day_start(date + Duration::days(1)),
        )
    }

    /// The bucket containing `t` when `day` is [`Bucketing::day`] of `t`: for intraday
    /// intervals plain arithmetic, so scans over many buckets pay the time zone once a day.
    pub fn bucket_in_day(&self, t: Nanos, day: (Nanos, Nanos)) -> (Nanos, Nanos) {
        match self.interval.fixed_nanos() {
            Some(len) => {
                let start = day.0 + (t - day.0) / len * len;
                // An interval of up to a million hours from a day in 2261 passes i64 nanoseconds.
                (start, start.saturating_add(len).min(day.1))
            }
            None => self.bucket(t),
        }
    }

    /// The start and end of the bucket containing `t`.
    pub fn bucket(&self, t: Nanos) -> (Nanos, Nanos) {
        let date = self.local_date(t);
        let n = self.interval.n as i64;
        match self.interval.unit {
            Unit::Second | Unit::Minute | Unit::Hour => self.bucket_in_day(t, self.day(t)),
            Unit::Day => {
                let first = date - Duration::days((date - EPOCH).num_days().rem_euclid(n));
                (
                    self.day_start(first),
                    self.day_start(first + Duration::days(n)),
                )
            }
            Unit::Week => {
                let weeks = (date - EPOCH_MONDAY).num_days().div_euclid(7);
                let first = EPOCH_MONDAY + Duration::weeks(weeks - weeks.rem_euclid(n));
                (
                    self.day_start(first),
                    self.day_start(first + Duration::weeks(n)),
                )
            }
            Unit::Month => {
                let month = date.year() as i64 * 12 + date.month0() as i64;
                let first = month - month.rem_euclid(n);
                (
                    self.day_start(month_date(first)),
                    self.day_start(month_date(first + n)),
                )
            }
        }
    }

    /// The start of the first bucket that starts at or after `t`.
    pub fn first_start_at_or_after(&self, t: Nanos) -> Nanos {
        let (start, end) = self.bucket(t);
        if start == t { start } else { end }
    }

    /// True when every local offset between `start` and `end` is a whole number of minutes,
    /// checked at both ends (tz offsets change by whole minutes in every modern zone).
    pub fn offsets_whole_minutes(&self, start: Nanos, end: Nanos) -> bool {
        [start, end]
            .iter()
            .all(|t| self.tz.timestamp_nanos(*t).offset().fix().local_minus_utc() % 60 == 0)
    }
}

fn month_date(month_index: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(
        month_index.div_euclid(12) as i32,
        month_index.rem_euclid(12) as u32 + 1,
        1,
    )
    // Month indices come from i64-nanosecond dates plus at most an interval's months: far
    // inside chrono's range.
    .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::format_time;
    use chrono::DateTime;

    fn t(s: &str) -> Nanos {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn ny(interval: &str) -> Bucketing {
        Bucketing::new(interval.parse().unwrap(), chrono_tz::America::New_York)
    }

    #[test]
    fn intervals_parse_and_print() {
        for ok in [
            "1s", "5m", "4h", "1d", "1w", "1mo", "3mo", "90m", "1000000s",
        ] {
            assert_eq!(ok.parse::<Interval>().unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "m",
            "0m",
            "05m",
            "1",
            "1M",
            "1y",
            "-1m",
            "1.5m",
            "1 m",
            "1mon",
            "2000000s",
            "99999999999m",
        ] {
            assert!(bad.parse::<Interval>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn intraday_buckets_start_at_local_midnight() {
        let b = ny("7h");
        let (s, e) = b.bucket(t("2024-01-02T22:00:00-05:00"));
        assert_eq!(format_time(s), "2024-01-03T02:00:00.000000000Z"); // 21:00 local
        assert_eq!(format_time(e), "2024-01-03T05:00:00.000000000Z"); // cut at midnight
        let (s, _) = ny("5m").bucket(t("2024-07-01T09:33:12.5-04:00"));
        assert_eq!(format_time(s), "2024-07-01T13:30:00.000000000Z");
    }

    #[test]
    fn days_weeks_months_follow_the_local_calendar() {
        let x = t("2024-03-10T12:00:00-04:00"); // a Sunday, the day DST starts: 23 hours long
        let (s, e) = ny("1d").bucket(x);
        assert_eq!((e - s) / 3_600_000_000_000, 23);
        let (s, e) = ny("1w").bucket(x);
        assert_eq!(format_time(s), "2024-03-04T05:00:00.000000000Z"); // Monday, EST
        assert_eq!(format_time(e), "2024-03-11T04:00:00.000000000Z"); // Monday, EDT
        let (s, e) = ny("1mo").bucket(x);
        assert_eq!(format_time(s), "2024-03-01T05:00:00.000000000Z");
        assert_eq!(format_time(e), "2024-04-01T04:00:00.000000000Z");
        let (s, _) = ny("3mo").bucket(x);
        assert_eq!(format_time(s), "2024-01-01T05:00:00.000000000Z");
        let (s, e) = ny("2d").bucket(x);
        assert!(s <= x && x < e);
    }

    #[test]
    fn first_bucket_at_or_after() {
        let b = ny("1h");
        let x = t("2024-01-02T10:00:00-05:00");
        assert_eq!(b.first_start_at_or_after(x), x);
        assert_eq!(b.first_start_at_or_after(x + 1), x + 3_600_000_000_000);
    }
}

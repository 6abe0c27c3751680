//! The NYSE trading calendar, computed by rule for any year.
//!
//! Regular sessions run 09:30-16:00 America/New_York (DST via the tz database). Full holidays
//! and the 13:00 early closes follow NYSE Rule 7.2 and the published holiday calendars: a
//! holiday on a Saturday is observed the Friday before, on a Sunday the Monday after, except
//! New Year's Day, which on a Saturday is not observed at all. The rules reproduce the published
//! calendars from 1998 (MLK Day) on; closures announced one at a time (national days of
//! mourning, storms) cannot be derived and are listed in [`SPECIAL_CLOSURES`].

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::America::New_York;

use crate::model::Nanos;

/// The years this program handles, at every edge (flags, environment, request bodies, query
/// parameters): from 1998, the first year whose published NYSE calendar the rules below
/// reproduce, to 2261, the last whole year that i64 nanoseconds since 1970 hold (they end on
/// 2262-04-11). Every date inside has its sessions computed without overflow.
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 1998..=2261;

/// Whether `date` lies in [`SUPPORTED_YEARS`].
pub fn is_supported(date: NaiveDate) -> bool {
    SUPPORTED_YEARS.contains(&date.year())
}

/// How an error names the supported range.
pub fn supported_range() -> String {
    format!(
        "the supported years {} to {}",
        SUPPORTED_YEARS.start(),
        SUPPORTED_YEARS.end()
    )
}

/// Whole-day closures outside the rules, as announced by NYSE.
pub const SPECIAL_CLOSURES: &[(i32, u32, u32, &str)] = &[
    (2001, 9, 11, "September 11 attacks"),
    (2001, 9, 12, "September 11 attacks"),
    (2001, 9, 13, "September 11 attacks"),
    (2001, 9, 14, "September 11 attacks"),
    (2004, 6, 11, "Day of mourning for President Reagan"),
    (2007, 1, 2, "Day of mourning for President Ford"),
    (2012, 10, 29, "Hurricane Sandy"),
    (2012, 10, 30, "Hurricane Sandy"),
    (
        2018,
        12,
        5,
        "Day of mourning for President George H. W. Bush",
    ),
    (2025, 1, 9, "Day of mourning for President Carter"),
];

/// One regular trading session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub date: NaiveDate,
    /// 09:30 New York time, in UTC nanoseconds.
    pub open: Nanos,
    /// 16:00, or 13:00 on an early close, in UTC nanoseconds. Exclusive.
    pub close: Nanos,
    pub early_close: bool,
}

impl Session {
    pub fn duration(&self) -> Nanos {
        self.close - self.open
    }

    pub fn contains(&self, t: Nanos) -> bool {
        self.open <= t && t < self.close
    }
}

/// Why the exchange is closed on a weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    Holiday(&'static str),
    Special(&'static str),
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    nth_weekday(year, month, weekday, 5).or_else(|| nth_weekday(year, month, weekday, 4))
}

/// Easter Sunday (Gregorian), by the anonymous Meeus/Jones/Butcher algorithm; `None` only for
/// years chrono cannot represent.
pub fn easter(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Saturday to Friday, Sunday to Monday.
fn observed(date: NaiveDate) -> Option<NaiveDate> {
    match date.weekday() {
        Weekday::Sat => date.pred_opt(),
        Weekday::Sun => date.succ_opt(),
        _ => Some(date),
    }
}

/// The full holidays observed in `year`, each with its name, or `None` outside
/// [`SUPPORTED_YEARS`], where the rules do not give the published calendar.
pub fn holidays(year: i32) -> Option<Vec<(NaiveDate, &'static str)>> {
    if !SUPPORTED_YEARS.contains(&year) {
        return None;
    }
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let mut out = Vec::with_capacity(10);
    // New Year's Day on a Saturday is not moved to the Friday before (Rule 7.2).
    let new_year = ymd(1, 1)?;
    if new_year.weekday() != Weekday::Sat {
        out.push((observed(new_year)?, "New Year's Day"));
    }
    out.push((
        nth_weekday(year, 1, Weekday::Mon, 3)?,
        "Martin Luther King Jr. Day",
    ));
    out.push((
        nth_weekday(year, 2, Weekday::Mon, 3)?,
        "Washington's Birthday",
    ));
    out.push((easter(year)? - Duration::days(2), "Good Friday"));
    out.push((last_weekday(year, 5, Weekday::Mon)?, "Memorial Day"));
    if year >= 2022 {
        out.push((
            observed(ymd(6, 19)?)?,
            "Juneteenth National Independence Day",
        ));
    }
    out.push((observed(ymd(7, 4)?)?, "Independence Day"));
    out.push((nth_weekday(year, 9, Weekday::Mon, 1)?, "Labor Day"));
    out.push((nth_weekday(year, 11, Weekday::Thu, 4)?, "Thanksgiving Day"));
    out.push((observed(ymd(12, 25)?)?, "Christmas Day"));
    Some(out)
}

/// Why the exchange is closed on `date`, or `None` if it trades (weekends are not closures).
/// Dates outside [`SUPPORTED_YEARS`] have no known closures.
pub fn closure(date: NaiveDate) -> Option<Closure> {
    if let Some((_, _, _, why)) = SPECIAL_CLOSURES
        .iter()
        .find(|(y, m, d, _)| (*y, *m, *d) == (date.year(), date.month(), date.day()))
    {
        return Some(Closure::Special(why));
    }
    holidays(date.year())?
        .into_iter()
        .find(|(d, _)| *d == date)
        .map(|(_, name)| Closure::Holiday(name))
}

/// True on the 13:00 early closes: July 3, the day after Thanksgiving and Christmas Eve, each
/// when it is itself a trading day (July 3 and December 24 only before a weekday holiday).
pub fn is_early_close(date: NaiveDate) -> bool {
    let year = date.year();
    let md = (date.month(), date.day());
    let weekday_before_holiday = matches!(
        date.weekday(),
        Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu
    );
    let day_after_thanksgiving = nth_weekday(year, 11, Weekday::Thu, 4).and_then(|d| d.succ_opt());
    (md == (7, 3) && weekday_before_holiday)
        || Some(date) == day_after_thanksgiving
        || (md == (12, 24) && weekday_before_holiday)
}

/// `hour:minute` New York time on `date`, in UTC nanoseconds; `None` where that local time
/// does not exist once (never at 09:30-16:00, whose days have no DST transition then) or does
/// not fit in i64 nanoseconds.
fn ny_instant(date: NaiveDate, hour: u32, minute: u32) -> Option<Nanos> {
    let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0)?);
    New_York
        .from_local_datetime(&local)
        .single()?
        .timestamp_nanos_opt()
}

/// The session on `date`, or `None` on weekends, closures and dates outside
/// [`SUPPORTED_YEARS`].
pub fn session(date: NaiveDate) -> Option<Session> {
    if !is_supported(date)
        || matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
        || closure(date).is_some()
    {
        return None;
    }
    let early_close = is_early_close(date);
    Some(Session {
        date,
        open: ny_instant(date, 9, 30)?,
        close: ny_instant(date, if early_close { 13 } else { 16 }, 0)?,
        early_close,
    })
}

/// Every session from `first` to `last`, both inclusive (none outside [`SUPPORTED_YEARS`]).
pub fn sessions(first: NaiveDate, last: NaiveDate) -> Vec<Session> {
    // Clamped, so that absurd bounds cost no walk through days that have no sessions.
    let supported = |year, m, d| NaiveDate::from_ymd_opt(year, m, d);
    let (Some(lo), Some(hi)) = (
        supported(*SUPPORTED_YEARS.start(), 1, 1),
        supported(*SUPPORTED_YEARS.end(), 12, 31),
    ) else {
        return Vec::new();
    };
    let last = last.min(hi);
    first
        .max(lo)
        .iter_days()
        .take_while(|d| *d <= last)
        .filter_map(session)
        .collect()
}

/// Every session that overlaps `[start, end)`.
pub fn sessions_overlapping(start: Nanos, end: Nanos) -> Vec<Session> {
    if start >= end {
        return Vec::new();
    }
    // Sessions lie within the New York date, which is at most a day off the UTC date.
    // i64 nanoseconds span 1677-2262, far inside what NaiveDate holds, so neither step fails.
    let day = |t: Nanos| chrono::DateTime::from_timestamp_nanos(t).date_naive();
    let first = day(start).pred_opt().unwrap_or(NaiveDate::MIN);
    let last = day(end - 1).succ_opt().unwrap_or(NaiveDate::MAX);
    sessions(first, last)
        .into_iter()
        .filter(|s| s.open < end && start < s.close)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn full_year(year: i32) -> Vec<Session> {
        sessions(d(year, 1, 1), d(year, 12, 31))
    }

    #[test]
    fn easter_matches_known_dates() {
        assert_eq!(easter(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter(2025), Some(d(2025, 4, 20)));
        assert_eq!(easter(2019), Some(d(2019, 4, 21)));
        assert_eq!(easter(2038), Some(d(2038, 4, 25)));
    }

    #[test]
    fn published_2024_calendar() {
        let s = full_year(2024);
        assert_eq!(s.len(), 252);
        let expected = [
            d(2024, 1, 1),
            d(2024, 1, 15),
            d(2024, 2, 19),
            d(2024, 3, 29),
            d(2024, 5, 27),
            d(2024, 6, 19),
            d(2024, 7, 4),
            d(2024, 9, 2),
            d(2024, 11, 28),
            d(2024, 12, 25),
        ];
        let got: Vec<_> = holidays(2024)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(got, expected);
        let early: Vec<_> = s.iter().filter(|s| s.early_close).map(|s| s.date).collect();
        assert_eq!(early, [d(2024, 7, 3), d(2024, 11, 29), d(2024, 12, 24)]);
    }

    #[test]
    fn published_2025_calendar() {
        let s = full_year(2025);
        // 251 by rule, less the closure for President Carter's day of mourning.
        assert_eq!(s.len(), 250);
        let expected = [
            d(2025, 1, 1),
            d(2025, 1, 20),
            d(2025, 2, 17),
            d(2025, 4, 18),
            d(2025, 5, 26),
            d(2025, 6, 19),
            d(2025, 7, 4),
            d(2025, 9, 1),
            d(2025, 11, 27),
            d(2025, 12, 25),
        ];
        let got: Vec<_> = holidays(2025)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(got, expected);
        assert!(session(d(2025, 1, 9)).is_none());
        let early: Vec<_> = s.iter().filter(|s| s.early_close).map(|s| s.date).collect();
        assert_eq!(early, [d(2025, 7, 3), d(2025, 11, 28), d(2025, 12, 24)]);
    }

    #[test]
    fn weekend_holidays_move_by_the_rule() {
        // 2022: New Year's Day on a Saturday is not observed; Christmas on Sunday moves to Monday.
        assert!(session(d(2021, 12, 31)).is_some());
        assert!(session(d(2022, 12, 26)).is_none());
        // 2021: Independence Day on a Sunday moves to Monday July 5.
        assert!(session(d(2021, 7, 5)).is_none());
        // 2020: Independence Day on a Saturday moves to Friday July 3, which is then no early close.
        assert!(session(d(2020, 7, 3)).is_none());
        // 2027: Juneteenth on a Saturday moves to Friday June 18.
        assert!(session(d(2027, 6, 18)).is_none());
        // 2021: Christmas on a Saturday moves to Friday Dec 24, so there is no Christmas Eve close.
        assert!(session(d(2021, 12, 24)).is_none());
        // Juneteenth is a holiday only from 2022.
        assert!(session(d(2021, 6, 18)).is_some());
    }

    #[test]
    fn dates_outside_the_supported_years_have_no_sessions_and_never_panic() {
        let edges = [
            NaiveDate::MIN,
            d(1, 1, 1),
            d(1500, 1, 2),
            d(1997, 12, 31),
            d(2262, 1, 2),
            d(2262, 4, 11),
            d(9999, 12, 31),
            NaiveDate::MAX,
        ];
        for date in edges {
            assert_eq!(session(date), None, "{date}");
            assert_eq!(holidays(date.year()), None, "{date}");
            let _ = (closure(date), is_early_close(date), easter(date.year()));
        }
        assert!(sessions(NaiveDate::MIN, d(1997, 12, 31)).is_empty());
        assert!(sessions(d(2262, 1, 1), NaiveDate::MAX).is_empty());
        assert!(!sessions_overlapping(i64::MIN, i64::MAX).is_empty());
        // The ends of the range are whole years with sessions.
        assert_eq!(full_year(1998).first().map(|s| s.date), Some(d(1998, 1, 2)));
        assert!(full_year(2261).len() > 240);
    }

    #[test]
    fn sessions_follow_dst() {
        // Winter: 09:30 EST = 14:30 UTC; summer: 09:30 EDT = 13:30 UTC.
        let jan = session(d(2024, 1, 2)).unwrap();
        assert_eq!(
            crate::model::format_time(jan.open),
            "2024-01-02T14:30:00.000000000Z"
        );
        assert_eq!(jan.duration(), 390 * crate::model::NANOS_PER_MINUTE);
        let jul = session(d(2024, 7, 3)).unwrap();
        assert_eq!(
            crate::model::format_time(jul.open),
            "2024-07-03T13:30:00.000000000Z"
        );
        assert_eq!(
            crate::model::format_time(jul.close),
            "2024-07-03T17:00:00.000000000Z"
        );
        // The Monday after the March switch opens at 13:30 UTC.
        let mar = session(d(2024, 3, 11)).unwrap();
        assert_eq!(
            crate::model::format_time(mar.open),
            "2024-03-11T13:30:00.000000000Z"
        );
    }

    #[test]
    fn overlapping_sessions_respect_half_open_ranges() {
        let s = session(d(2024, 1, 2)).unwrap();
        assert_eq!(sessions_overlapping(s.open, s.open + 1), vec![s]);
        assert!(sessions_overlapping(s.close, s.close + 1).is_empty());
        assert!(sessions_overlapping(s.open - 10, s.open).is_empty());
        assert_eq!(sessions_overlapping(s.open - 10, s.close + 10).len(), 1);
    }
}

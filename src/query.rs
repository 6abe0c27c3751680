//! Queries over any [`Store`]: candles at any interval, trades in a range.
//!
//! Candles whose interval is a whole number of minutes roll up from the stored 1-minute
//! candles; sub-minute ones (and zones with sub-minute offsets) are computed from trades.
//! Both give identical candles (see the property test in `tests/candles.rs`).

use chrono::{DateTime, NaiveDate, TimeZone};
use chrono_tz::Tz;

use crate::candles::{self, Bucketing, CandleError, CandleRow, Fill, Interval};
use crate::model::{Nanos, Symbol, TradeColumns};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Candle(#[from] CandleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "invalid time {0:?}: expected RFC 3339 (2024-01-02T14:30:00Z) or a date (2024-01-02) in {range}",
        range = crate::calendar::supported_range()
    )]
    Time(String),
    #[error("no such time {0:?}: that day or time of day does not exist")]
    NoSuchTime(String),
    #[error("time {0:?} is outside {range}", range = crate::calendar::supported_range())]
    Unsupported(String),
    #[error("empty range: start {start} is not before end {end}")]
    Range { start: String, end: String },
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// What [`parse_time`] accepts the shape of, as a JSON Schema pattern: a date in
/// [`calendar::SUPPORTED_YEARS`](crate::calendar::SUPPORTED_YEARS), optionally followed by an
/// RFC 3339 time of day and offset. The OpenAPI document states it; a property test holds
/// [`is_time_shaped`] to it.
pub const TIME_PATTERN: &str = r"^(199[89]|2[01][0-9]{2}|22[0-5][0-9]|226[01])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?$";

/// The date alone of [`TIME_PATTERN`]: what a load's first and last day look like.
pub const DATE_PATTERN: &str =
    r"^(199[89]|2[01][0-9]{2}|22[0-5][0-9]|226[01])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// Two ASCII digits as a number.
fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

/// Whether `s` matches [`DATE_PATTERN`]: the day need not exist (2024-02-30 does not).
pub fn is_date_shaped(s: &str) -> bool {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = s.as_bytes() else {
        return false;
    };
    let year = two_digits(y0, y1)
        .zip(two_digits(y2, y3))
        .map(|(hi, lo)| hi * 100 + lo);
    year.and_then(|y| i32::try_from(y).ok())
        .is_some_and(|y| crate::calendar::SUPPORTED_YEARS.contains(&y))
        && two_digits(m0, m1).is_some_and(|m| (1..=12).contains(&m))
        && two_digits(d0, d1).is_some_and(|d| (1..=31).contains(&d))
}

/// Whether `s` matches [`TIME_PATTERN`].
pub fn is_time_shaped(s: &str) -> bool {
    let Some((date, time)) = s.split_at_checked(10) else {
        return false;
    };
    if !is_date_shaped(date) {
        return false;
    }
    if time.is_empty() {
        return true;
    }
    let &[sep, h0, h1, b':', n0, n1, b':', s0, s1, ref rest @ ..] = time.as_bytes() else {
        return false;
    };
    let hour = |a, b| two_digits(a, b).is_some_and(|h| h <= 23);
    let minute = |a, b| two_digits(a, b).is_some_and(|m| m <= 59);
    if !(matches!(sep, b'T' | b't' | b' ') && hour(h0, h1) && minute(n0, n1) && minute(s0, s1)) {
        return false;
    }
    let offset = match rest {
        [b'.', tail @ ..] => {
            let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return false;
            }
            tail.get(digits..).unwrap_or_default()
        }
        _ => rest,
    };
    match offset {
        [b'Z' | b'z'] => true,
        &[b'+' | b'-', h0, h1, b':', m0, m1] => hour(h0, h1) && minute(m0, m1),
        _ => false,
    }
}

/// Parses RFC 3339, or a date meaning its local midnight in `tz`, shaped as [`TIME_PATTERN`]
/// says: a string of another shape is [`QueryError::Time`]; one of that shape naming a day or
/// time that does not exist (2024-02-30, a midnight a DST change skips) is
/// [`QueryError::NoSuchTime`], and one whose offset takes it outside the supported years is
/// [`QueryError::Unsupported`].
pub fn parse_time(s: &str, tz: Tz) -> Result<Nanos> {
    if !is_time_shaped(s) {
        return Err(QueryError::Time(s.to_string()));
    }
    let no_such = || QueryError::NoSuchTime(s.to_string());
    let outside = || QueryError::Unsupported(s.to_string());
    let instant = if let Some((date, time)) = s.split_at_checked(10).filter(|(_, t)| !t.is_empty())
    {
        // RFC 3339 lets the separator and the Z be lower case, or the separator a space;
        // chrono reads the upper-case forms.
        let time = time.get(1..).unwrap_or_default().to_ascii_uppercase();
        let normal = format!("{date}T{time}");
        let t = DateTime::parse_from_rfc3339(&normal).map_err(|_| no_such())?;
        if !crate::calendar::is_supported(t.naive_utc().date()) {
            return Err(outside());
        }
        t.timestamp_nanos_opt().ok_or_else(outside)?
    } else {
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| no_such())?;
        tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .ok_or_else(no_such)?
            .timestamp_nanos_opt()
            .ok_or_else(outside)?
    };
    Ok(instant)
}

/// A page's cursor: the time of the first row of the next page, in nanoseconds, written as
/// [`format_cursor`] writes it.
pub fn parse_cursor(s: &str) -> Option<Nanos> {
    s.parse().ok()
}

pub fn format_cursor(t: Nanos) -> String {
    t.to_string()
}

/// A half-open time range, validated non-empty.
pub fn range(start: Nanos, end: Nanos) -> Result<(Nanos, Nanos)> {
    if start < end {
        Ok((start, end))
    } else {
        Err(QueryError::Range {
            start: crate::model::format_time(start),
            end: crate::model::format_time(end),
        })
    }
}

#[derive(Debug, Clone)]
pub struct CandleQuery {
    pub symbol: Symbol,
    pub interval: Interval,
    pub start: Nanos,
    pub end: Nanos,
    pub tz: Tz,
    pub fill: Fill,
}

/// The candles whose bucket starts in `[start, end)`, each computed over its whole bucket.
pub fn candles(store: &dyn Store, q: &CandleQuery) -> Result<Vec<CandleRow>> {
    range(q.start, q.end)?;
    let b = Bucketing::new(q.interval, q.tz);
    let first = b.first_start_at_or_after(q.start);
    if first >= q.end {
        return Ok(Vec::new());
    }
    let data_end = b.bucket(b.bucket(q.end - 1).0).1;
    const HOUR: Nanos = 3_600_000_000_000;
    let hourly = (q.interval.is_whole_hours() && first % HOUR == 0 && data_end % HOUR == 0)
        .then(|| -> Result<_> {
            let mut a = candles::Aggregator::new(&b).with_grain(HOUR);
            store.visit_hour_candles(&q.symbol, first, data_end, &mut |c| a.push_slice(c))?;
            Ok((!a.is_misaligned()).then(|| a.finish()))
        })
        .transpose()?
        .flatten();
    let candles = if let Some(c) = hourly {
        c
    } else if q.interval.is_whole_minutes() && b.offsets_whole_minutes(first, data_end) {
        let mut a = candles::Aggregator::new(&b);
        store.visit_minute_candles(&q.symbol, first, data_end, &mut |c| a.push_slice(c))?;
        a.finish()
    } else {
        candles::from_trades(&store.trades(&q.symbol, first, data_end, None)?, &b)
    };
    let previous = if q.fill == Fill::Previous {
        store.previous_close(&q.symbol, first)?
    } else {
        None
    };
    Ok(candles::fill(&candles, &b, first, q.end, q.fill, previous))
}

/// Trades of `symbol` in `[start, end)`, at most `limit`.
pub fn trades(
    store: &dyn Store,
    symbol: &Symbol,
    start: Nanos,
    end: Nanos,
    limit: Option<usize>,
) -> Result<TradeColumns> {
    range(start, end)?;
    Ok(store.trades(symbol, start, end, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    #[test]
    fn times_parse_as_rfc3339_or_local_dates() {
        assert_eq!(
            parse_time("2024-01-01T00:00:00.000000001Z", New_York).unwrap()
                - 1_704_067_200_000_000_000,
            1
        );
        let d = parse_time("2024-01-02", New_York).unwrap();
        assert_eq!(
            crate::model::format_time(d),
            "2024-01-02T05:00:00.000000000Z"
        );
        assert_eq!(
            parse_time("2024-01-02", chrono_tz::UTC).unwrap() + 5 * 3_600_000_000_000,
            d
        );
        for bad in [
            "",
            "2024-13-01",
            "yesterday",
            "2024-01-02T25:00:00Z",
            "2024-01-02 10:00",
        ] {
            assert!(
                matches!(parse_time(bad, New_York), Err(QueryError::Time(_))),
                "{bad:?}"
            );
        }
        // Times outside the supported years are refused, naming them.
        for outside in [
            "1500-01-01",
            "1997-12-31",
            "2262-01-01",
            "9999-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "1997-12-31T23:59:59Z",
        ] {
            let e = parse_time(outside, New_York).unwrap_err();
            assert!(
                e.to_string().contains("the supported years 1998 to 2261"),
                "{outside}: {e}"
            );
        }
        assert!(parse_time("1998-01-01T00:00:00Z", New_York).is_ok());
        assert!(parse_time("2261-12-31", New_York).is_ok());
        assert!(range(2, 1).is_err() && range(1, 1).is_err() && range(1, 2).is_ok());
    }
}

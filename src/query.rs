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
    #[error("invalid time {0:?}: expected RFC 3339 (2024-01-02T14:30:00Z) or a date (2024-01-02)")]
    Time(String),
    #[error("time {0:?} is outside {range}", range = crate::calendar::supported_range())]
    Unsupported(String),
    #[error("empty range: start {start} is not before end {end}")]
    Range { start: String, end: String },
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Parses RFC 3339, or a date meaning its local midnight in `tz`, within
/// [`calendar::SUPPORTED_YEARS`](crate::calendar::SUPPORTED_YEARS).
pub fn parse_time(s: &str, tz: Tz) -> Result<Nanos> {
    let err = || QueryError::Time(s.to_string());
    let outside = || QueryError::Unsupported(s.to_string());
    let instant = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        if !crate::calendar::is_supported(t.naive_utc().date()) {
            return Err(outside());
        }
        t.timestamp_nanos_opt()
    } else {
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| err())?;
        if !crate::calendar::is_supported(date) {
            return Err(outside());
        }
        tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .and_then(|t| t.timestamp_nanos_opt())
    };
    instant.ok_or_else(outside)
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

//! OHLCV candles: the engine that builds them from trades or rolls them up from 1-minute
//! candles, and the fill modes.
//!
//! open is the first trade by (time, trade_id), close the last; volume the sum of amounts;
//! vwap = sum(price * amount) / volume, kept as the exact integer `notional` (price units of
//! $0.001 x shares)
//! so that candles rolled up from 1-minute candles equal candles computed from trades, bit
//! for bit.

mod interval;

use std::str::FromStr;

use crate::calendar;
use crate::model::{Nanos, PRICE_UNITS_PER_DOLLAR, TradeColumns};
pub use interval::{Bucketing, INTERVAL_PATTERN, Interval, MAX_MULTIPLIER, Unit};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandleError {
    #[error(
        "invalid interval {0:?}: expected <n><unit> with n >= 1 and unit s, m, h, d, w or mo (e.g. 1m, 4h, 1mo)"
    )]
    Interval(String),
    #[error("invalid fill mode {0:?}: expected none, null or previous")]
    Fill(String),
    #[error("invalid time zone {0:?}: expected an IANA name such as America/New_York or UTC")]
    TimeZone(String),
}

pub type Result<T, E = CandleError> = std::result::Result<T, E>;

/// One candle over a bucket that holds at least one trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    /// The bucket's start.
    pub time: Nanos,
    /// Prices in units of $0.001 ([`crate::model::PRICE_UNITS_PER_DOLLAR`]).
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: u64,
    pub trades: u64,
    /// Sum of price (units of $0.001) x amount.
    pub notional: u128,
}

impl Candle {
    /// The candle of a single trade.
    #[inline]
    pub fn of_trade(time: Nanos, price: i64, amount: u32) -> Self {
        Self {
            time,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: amount as u64,
            trades: 1,
            notional: price as u128 * amount as u128,
        }
    }

    /// Extends this candle by `later`, which covers a later span of the same bucket.
    #[inline]
    pub fn absorb(&mut self, later: &Candle) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume += later.volume;
        self.trades += later.trades;
        self.notional += later.notional;
    }

    /// Volume-weighted average price in dollars.
    pub fn vwap(&self) -> f64 {
        self.notional as f64 / self.volume as f64 / PRICE_UNITS_PER_DOLLAR as f64
    }
}

/// Groups time-ordered candles (a trade is a candle of one) into the buckets of `bucketing`.
pub fn aggregate(parts: impl IntoIterator<Item = Candle>, bucketing: &Bucketing) -> Vec<Candle> {
    let mut a = Aggregator::new(bucketing);
    for part in parts {
        a.push(&part);
    }
    a.finish()
}

/// UTC 1-hour candles from UTC 1-minute candles: the coarser level of the rollup, 60 times
/// fewer candles to fold for intervals of an hour or more.
pub fn hour_candles(minutes: &[Candle]) -> Vec<Candle> {
    let hours = Bucketing::new(Interval::ONE_HOUR, chrono_tz::UTC);
    let mut a = Aggregator::new(&hours);
    a.push_slice(minutes);
    a.finish()
}

/// [`aggregate`] fed piecewise, in time order, by single candles or by slices.
pub struct Aggregator<'a> {
    bucketing: &'a Bucketing,
    out: Vec<Candle>,
    bucket_end: Nanos,
    day: (Nanos, Nanos),
    /// The span of the parts when they are coarser than one instant (1-hour candles): every
    /// bucket boundary must then be a multiple of it.
    grain: Option<Nanos>,
    misaligned: bool,
}

impl<'a> Aggregator<'a> {
    pub fn new(bucketing: &'a Bucketing) -> Self {
        Self {
            bucketing,
            out: Vec::new(),
            bucket_end: i64::MIN,
            day: (i64::MIN, i64::MIN),
            grain: None,
            misaligned: false,
        }
    }

    /// Parts span `grain` nanoseconds from their (aligned) time. A bucket boundary inside a
    /// part would split it, so the aggregator then stops and reports [`Self::is_misaligned`];
    /// checking each opened bucket's two ends finds any such boundary.
    pub fn with_grain(mut self, grain: Nanos) -> Self {
        self.grain = Some(grain);
        self
    }

    /// True when a bucket boundary fell inside a part: the result is unusable.
    pub fn is_misaligned(&self) -> bool {
        self.misaligned
    }

    #[inline]
    pub fn push(&mut self, part: &Candle) {
        if self.misaligned {
            return;
        }
        match self.out.last_mut() {
            Some(open) if part.time < self.bucket_end => open.absorb(part),
            _ => self.open(part),
        }
    }

    fn open(&mut self, part: &Candle) {
        if !(self.day.0..self.day.1).contains(&part.time) {
            self.day = self.bucketing.day(part.time);
        }
        let (start, end) = self.bucketing.bucket_in_day(part.time, self.day);
        if let Some(g) = self.grain
            && (start.rem_euclid(g) != 0 || end.rem_euclid(g) != 0)
        {
            self.misaligned = true;
        }
        self.bucket_end = end;
        self.out.push(Candle {
            time: start,
            ..*part
        });
    }

    /// Like pushing each candle of `parts`, but each bucket's run is found by binary search
    /// and folded in one tight loop: a year of minutes into days is a few hundred runs.
    pub fn push_slice(&mut self, mut parts: &[Candle]) {
        while let Some((first, rest)) = parts.split_first() {
            if self.misaligned {
                return;
            }
            if first.time >= self.bucket_end || self.out.is_empty() {
                self.open(first);
                parts = rest;
            }
            // Fine intervals open a bucket for nearly every part: skip the search then.
            let run = match parts.first() {
                Some(next) if next.time < self.bucket_end => {
                    parts.partition_point(|c| c.time < self.bucket_end)
                }
                _ => 0,
            };
            if let Some(open) = self.out.last_mut()
                && run > 0
            {
                let (bucket, rest) = parts.split_at(run);
                for c in bucket {
                    open.absorb(c);
                }
                parts = rest;
            }
        }
    }

    pub fn finish(self) -> Vec<Candle> {
        self.out
    }
}

/// Candles straight from trades ordered by (time, trade_id).
pub fn from_trades(trades: &TradeColumns, bucketing: &Bucketing) -> Vec<Candle> {
    let parts = trades
        .times
        .iter()
        .zip(&trades.prices)
        .zip(&trades.amounts)
        .map(|((&time, &price), &amount)| Candle::of_trade(time, price, amount));
    aggregate(parts, bucketing)
}

/// UTC 1-minute candles, the ones stored while loading.
pub fn minute_candles(trades: &TradeColumns) -> Vec<Candle> {
    from_trades(
        trades,
        &Bucketing::new(Interval::ONE_MINUTE, chrono_tz::UTC),
    )
}

/// What to emit for a bucket without trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// Omit it.
    #[default]
    None,
    /// Emit it with null prices, volume 0 and trades 0.
    Null,
    /// Emit it with open = high = low = close = the previous close, volume 0 and trades 0.
    Previous,
}

impl FromStr for Fill {
    type Err = CandleError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Fill::None),
            "null" => Ok(Fill::Null),
            "previous" => Ok(Fill::Previous),
            _ => Err(CandleError::Fill(s.to_string())),
        }
    }
}

pub fn parse_tz(s: &str) -> Result<chrono_tz::Tz> {
    s.parse().map_err(|_| CandleError::TimeZone(s.to_string()))
}

/// A candle as served: empty buckets, when filled, have no prices and no vwap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleRow {
    pub time: Nanos,
    /// open, high, low, close in units of $0.001.
    pub ohlc: Option<[i64; 4]>,
    pub volume: u64,
    pub trades: u64,
    pub vwap: Option<f64>,
}

impl From<&Candle> for CandleRow {
    fn from(c: &Candle) -> Self {
        Self {
            time: c.time,
            ohlc: Some([c.open, c.high, c.low, c.close]),
            volume: c.volume,
            trades: c.trades,
            vwap: Some(c.vwap()),
        }
    }
}

/// The starts of the buckets in `[start, end)` that overlap a trading session.
pub fn session_buckets(bucketing: &Bucketing, start: Nanos, end: Nanos) -> Vec<Nanos> {
    let mut out: Vec<Nanos> = Vec::new();
    for session in calendar::sessions_overlapping(start, end) {
        let mut t = bucketing.bucket(session.open).0;
        while t < session.close && t < end {
            if t >= start && out.last() != Some(&t) {
                out.push(t);
            }
            t = bucketing.bucket(t).1;
        }
    }
    out
}

/// Applies `fill` to the candles of `[start, end)`; `previous_close` is the close before the
/// first bucket, if any. Without one, `previous` leaves buckets before the first trade out.
pub fn fill(
    candles: &[Candle],
    bucketing: &Bucketing,
    start: Nanos,
    end: Nanos,
    mode: Fill,
    mut previous_close: Option<i64>,
) -> Vec<CandleRow> {
    if mode == Fill::None {
        return candles.iter().map(CandleRow::from).collect();
    }
    let empty = session_buckets(bucketing, start, end);
    let mut out = Vec::with_capacity(candles.len().max(empty.len()));
    let mut candles = candles.iter().peekable();
    let mut empty = empty.into_iter().peekable();
    loop {
        let next_empty = empty.peek().copied();
        match (candles.peek(), next_empty) {
            (Some(c), e) if e.is_none_or(|e| c.time <= e) => {
                if e == Some(c.time) {
                    empty.next();
                }
                previous_close = Some(c.close);
                out.push(CandleRow::from(*c));
                candles.next();
            }
            (_, Some(e)) => {
                empty.next();
                let ohlc = match mode {
                    Fill::Previous => match previous_close {
                        Some(p) => Some([p; 4]),
                        None => continue,
                    },
                    _ => None,
                };
                out.push(CandleRow {
                    time: e,
                    ohlc,
                    volume: 0,
                    trades: 0,
                    vwap: None,
                });
            }
            // (Some, None) is the first arm's; the compiler cannot see it.
            (None, None) | (Some(_), None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn trades(rows: &[(Nanos, i64, u32)]) -> TradeColumns {
        let mut t = TradeColumns::default();
        for (i, (time, price, amount)) in rows.iter().enumerate() {
            t.push(*time, i as u64, *price, *amount, true);
        }
        t
    }

    #[test]
    fn hour_candles_roll_up_exactly_where_boundaries_are_whole_hours() {
        // A trade every 7 minutes for three days around the 2024 US spring-forward.
        let start = 1_710_028_800_000_000_000; // 2024-03-10T00:00Z
        let rows: Vec<(Nanos, i64, u32)> = (0..3 * 24 * 60 / 7)
            .map(|i| {
                (
                    start + i * 7 * 60_000_000_000,
                    10_000 + (i * 37 % 101),
                    1 + (i % 5) as u32,
                )
            })
            .collect();
        let minutes = minute_candles(&trades(&rows));
        let hours = hour_candles(&minutes);
        assert!(
            hours.len() < minutes.len() && hours.iter().all(|h| h.time % 3_600_000_000_000 == 0)
        );
        for (interval, tz, aligned) in [
            ("1d", New_York, true),
            ("2h", chrono_tz::UTC, true),
            ("1d", chrono_tz::Asia::Kathmandu, false),
            ("1h", chrono_tz::Asia::Kolkata, false),
        ] {
            let b = Bucketing::new(interval.parse().unwrap(), tz);
            let mut a = Aggregator::new(&b).with_grain(3_600_000_000_000);
            a.push_slice(&hours);
            assert_eq!(!a.is_misaligned(), aligned, "{interval} {tz}");
            if aligned {
                assert_eq!(
                    a.finish(),
                    aggregate(minutes.iter().copied(), &b),
                    "{interval} {tz}"
                );
            }
        }
    }

    #[test]
    fn candle_math() {
        let m = 60_000_000_000;
        let t = trades(&[
            (0, 100, 1),
            (1, 105, 2),
            (2, 95, 3),
            (3, 101, 4),
            (m, 200, 10),
        ]);
        let c = from_trades(&t, &Bucketing::new(Interval::ONE_MINUTE, chrono_tz::UTC));
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].open, c[0].high, c[0].low, c[0].close),
            (100, 105, 95, 101)
        );
        assert_eq!((c[0].volume, c[0].trades), (10, 4));
        assert_eq!(c[0].notional, 100 + 210 + 285 + 404);
        // 999 units of $0.001 over 10 shares.
        assert!((c[0].vwap() - 0.0999).abs() < 1e-12);
        assert_eq!(c[1].time, m);
    }

    #[test]
    fn fill_modes_cover_only_sessions() {
        let s = calendar::session(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()).unwrap();
        let b = Bucketing::new("1h".parse().unwrap(), New_York);
        // One trade at 10:15; the day's session spans the hours 09:00 .. 15:00 (7 buckets).
        let t = trades(&[(s.open + 45 * 60_000_000_000, 100, 1)]);
        let c = from_trades(&t, &b);
        let (start, end) = (s.open - 86_400_000_000_000, s.close + 8 * 3_600_000_000_000);
        let none = fill(&c, &b, start, end, Fill::None, None);
        assert_eq!(none.len(), 1);
        let null = fill(&c, &b, start, end, Fill::Null, None);
        assert_eq!(null.len(), 7);
        assert!(null[0].ohlc.is_none() && null[2].ohlc.is_none());
        assert_eq!(null[1].ohlc, Some([100; 4]));
        let prev = fill(&c, &b, start, end, Fill::Previous, None);
        assert_eq!(prev.len(), 6, "no previous close before the first trade");
        assert!(prev[1..].iter().all(|r| r.ohlc == Some([100; 4])));
        assert_eq!(prev[1].volume, 0);
        let prev = fill(&c, &b, start, end, Fill::Previous, Some(90));
        assert_eq!(prev[0].ohlc, Some([90; 4]));
        assert_eq!(prev.len(), 7);
    }
}

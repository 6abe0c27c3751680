//! Candles served from the stored 1-minute candles equal candles computed straight from the
//! stored trades by brute force, for random intervals, zones and ranges.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono_tz::Tz;
use ohlcv::candles::{Bucketing, Candle, Fill, Interval, Unit};
use ohlcv::generator;
use ohlcv::model::{Nanos, Symbol, TradeColumns};
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::parquet::ParquetStore;
use proptest::prelude::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: ParquetStore,
    /// Every trade of the load, per symbol.
    trades: Vec<(Symbol, TradeColumns)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = common::small_config(300_000);
        common::load(dir.path(), &common::options(config.clone()));
        let store = ParquetStore::new(dir.path());
        common::assert_crosses_stored(&store, &config);
        // The brute force below then runs over half-cent prices too.
        common::assert_half_cents_stored(&store, &config);
        let trades = config
            .symbols
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    store.trades(s, i64::MIN, i64::MAX, None).unwrap(),
                )
            })
            .collect();
        Fixture {
            _dir: dir,
            store,
            trades,
        }
    })
}

/// The textbook definition, written independently of the engine: group by bucket, then take
/// the first and last trade by (time, trade_id), extremes and sums.
fn brute_force(trades: &TradeColumns, b: &Bucketing, start: Nanos, end: Nanos) -> Vec<Candle> {
    let mut buckets: BTreeMap<Nanos, Vec<usize>> = BTreeMap::new();
    for i in 0..trades.len() {
        buckets
            .entry(b.bucket(trades.times[i]).0)
            .or_default()
            .push(i);
    }
    buckets
        .into_iter()
        .filter(|(s, _)| (start..end).contains(s))
        .map(|(time, mut rows)| {
            rows.sort_by_key(|&i| (trades.times[i], trades.trade_ids[i]));
            let prices: Vec<i64> = rows.iter().map(|&i| trades.prices[i]).collect();
            Candle {
                time,
                open: prices[0],
                high: *prices.iter().max().unwrap(),
                low: *prices.iter().min().unwrap(),
                close: *prices.last().unwrap(),
                volume: rows.iter().map(|&i| trades.amounts[i] as u64).sum(),
                trades: rows.len() as u64,
                notional: rows
                    .iter()
                    .map(|&i| trades.prices[i] as u128 * trades.amounts[i] as u128)
                    .sum(),
            }
        })
        .collect()
}

fn interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        (1u32..=7200).prop_map(|n| Interval {
            n,
            unit: Unit::Second
        }),
        (1u32..=600).prop_map(|n| Interval {
            n,
            unit: Unit::Minute
        }),
        (1u32..=30).prop_map(|n| Interval {
            n,
            unit: Unit::Hour
        }),
        (1u32..=10).prop_map(|n| Interval { n, unit: Unit::Day }),
        (1u32..=3).prop_map(|n| Interval {
            n,
            unit: Unit::Week
        }),
        (1u32..=3).prop_map(|n| Interval {
            n,
            unit: Unit::Month
        }),
    ]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop_oneof![
        Just(chrono_tz::America::New_York),
        Just(chrono_tz::UTC),
        Just(chrono_tz::Europe::London),
        Just(chrono_tz::Asia::Kolkata),
        Just(chrono_tz::Asia::Kathmandu),
        Just(chrono_tz::Australia::Lord_Howe),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn served_candles_equal_brute_force(
        symbol in 0usize..3,
        interval in interval(),
        tz in zone(),
        // Anywhere in and around the load (2024-02-26 .. 2024-04-05), up to 12 days long.
        start_offset in 0i64..45 * 86_400,
        length in 1i64..12 * 86_400,
        start_nanos in 0i64..1_000_000_000,
    ) {
        let f = fixture();
        let (sym, trades) = &f.trades[symbol];
        let start = common_start() + start_offset * 1_000_000_000 + start_nanos;
        let end = start + length * 1_000_000_000;
        let q = CandleQuery { symbol: sym.clone(), interval, start, end, tz, fill: Fill::None };
        let served = query::candles(&f.store, &q).unwrap();
        let b = Bucketing::new(interval, tz);
        let want = brute_force(trades, &b, start, end);
        prop_assert_eq!(served.len(), want.len());
        for (s, w) in served.iter().zip(&want) {
            prop_assert_eq!(s, &ohlcv::candles::CandleRow::from(w));
        }
    }
}

/// 2024-02-20T00:00:00Z, a little before the load starts.
fn common_start() -> Nanos {
    1_708_387_200_000_000_000
}

#[test]
fn stored_minute_candles_equal_candles_from_trades() {
    let f = fixture();
    for (symbol, trades) in &f.trades {
        let stored = f.store.minute_candles(symbol, i64::MIN, i64::MAX).unwrap();
        assert_eq!(stored, ohlcv::candles::minute_candles(trades));
        assert_eq!(
            stored.iter().map(|c| c.trades).sum::<u64>(),
            trades.len() as u64
        );
        // A session's first minute opens at its opening cross's price and its last closes at
        // its closing cross's: the crosses are bucketed by their instants, inside the session.
        let config = common::small_config(300_000);
        for session in ohlcv::calendar::sessions(config.start, config.end) {
            let at = |t: Nanos| trades.prices[trades.times.binary_search(&t).unwrap()];
            let minute = |t: Nanos| stored.iter().find(|c| c.time == t).unwrap();
            let last_minute = session.close - ohlcv::model::NANOS_PER_MINUTE;
            assert_eq!(
                minute(session.open).open,
                at(generator::opening_cross_time(&session))
            );
            assert_eq!(
                minute(last_minute).close,
                at(generator::closing_cross_time(&session))
            );
        }
    }
}

#[test]
fn previous_fill_carries_the_close_across_days() {
    let f = fixture();
    let (symbol, trades) = &f.trades[0];
    let tz = chrono_tz::America::New_York;
    let day = query::parse_time("2024-03-05", tz).unwrap();
    let q = CandleQuery {
        symbol: symbol.clone(),
        interval: "10s".parse().unwrap(),
        start: day,
        end: day + 86_400_000_000_000,
        tz,
        fill: Fill::Previous,
    };
    let rows = query::candles(&f.store, &q).unwrap();
    // Every 10 seconds of the session, filled or not.
    assert_eq!(rows.len(), 2340);
    let before = trades.times.iter().rposition(|t| *t < day).unwrap();
    let i = rows
        .iter()
        .position(|r| r.trades == 0)
        .expect("some 10s buckets are empty");
    let expected = if i == 0 {
        trades.prices[before]
    } else {
        rows[i - 1].ohlc.unwrap()[3]
    };
    assert_eq!(rows[i].ohlc, Some([expected; 4]));
    assert_eq!((rows[i].volume, rows[i].vwap), (0, None));
    let nulls = query::candles(
        &f.store,
        &CandleQuery {
            fill: Fill::Null,
            ..q.clone()
        },
    )
    .unwrap();
    assert_eq!(nulls.len(), 2340);
    let none = query::candles(
        &f.store,
        &CandleQuery {
            fill: Fill::None,
            ..q
        },
    )
    .unwrap();
    assert_eq!(none.len(), nulls.iter().filter(|r| r.trades > 0).count());
}

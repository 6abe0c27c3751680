//! Line protocol for trades and 1-minute candles, appended to a reused buffer without a
//! per-point allocation.
//!
//! The default schema (docs/INFLUXDB.md; [`Schema`] has the variants): measurement `trade`, tags `side` and `symbol` (sorted by key,
//! as InfluxDB recommends), fields `price` (float), `amount` and `trade_id` (integers),
//! nanosecond timestamps; measurement `candle_1m`, tag `symbol`, fields `open`, `high`, `low`,
//! `close` (floats), `volume`, `trades`, `notional` (integers, notional = Σ price × shares with
//! prices in units of $0.001). A price float is written as its exact decimal (at most 3
//! fraction digits), which a float64 holds closely enough that reading it back and rounding
//! to the unit gives the same integer.
//! Beside them, a load's bookkeeping: its manifest, shard marks and claims.
//!
//! Each series key is escaped once per symbol by InfluxData's own `influxdb-line-protocol`
//! builder; the hot path then only appends numbers.

use influxdb_line_protocol::builder::LineProtocolBuilder;

use super::{Claim, Precision, Schema};
use crate::candles::Candle;
use crate::model::{Symbol, TradeColumns, push_int, push_price};

pub const TRADE: &str = "trade";
pub const CANDLE: &str = "candle_1m";
pub const MANIFEST: &str = "ohlcv_load";
/// One point per finished shard of a sharded load: the load is complete once every shard of
/// some count has one.
pub const SHARD: &str = "ohlcv_shard";
/// A load's claim on the target, written before its first trade (`ingest::influx` has the
/// protocol): tag `fingerprint`, field `load` (what it loads, for messages), at the time it
/// claimed.
pub const CLAIM: &str = "ohlcv_claim";

/// The escaped series keys of one symbol, with the separating space, and how its fields are
/// written: everything a schema decides, worked out once per symbol.
#[derive(Debug, Clone)]
pub struct SeriesKeys {
    buy: Vec<u8>,
    sell: Vec<u8>,
    candle: Vec<u8>,
    side_field: bool,
    integer_prices: bool,
    trade_ids: bool,
}

fn series_key(measurement: &str, tags: &[(&str, &str)]) -> Vec<u8> {
    let mut b = LineProtocolBuilder::new().measurement(measurement);
    for (k, v) in tags {
        b = b.tag(k, v);
    }
    // The builder insists on a field; take its bytes up to the field separator.
    let mut line = b.field("x", 0i64).close_line().build();
    let cut = line.len() - " x=0i\n".len();
    line.truncate(cut);
    line.push(b' ');
    line
}

impl SeriesKeys {
    pub fn new(symbol: &Symbol, schema: Schema) -> Self {
        let s = symbol.as_str();
        let symbol_tag = schema.symbol_tag().then_some(("symbol", s));
        // Tags sorted by key: `side` before `symbol`.
        let trade_key = |side: &str| {
            let tags: Vec<(&str, &str)> = schema
                .side_tag()
                .then_some(("side", side))
                .into_iter()
                .chain(symbol_tag)
                .collect();
            series_key(&schema.trade_measurement(symbol), &tags)
        };
        let candle_tags: Vec<(&str, &str)> = symbol_tag.into_iter().collect();
        Self {
            buy: trade_key("buy"),
            sell: trade_key("sell"),
            candle: series_key(&schema.candle_measurement(symbol), &candle_tags),
            side_field: !schema.side_tag(),
            integer_prices: schema.integer_prices(),
            trade_ids: schema.trade_ids(),
        }
    }

    fn push_price(&self, out: &mut Vec<u8>, units: i64) {
        if self.integer_prices {
            push_int(out, units);
            out.push(b'i');
        } else {
            push_price(out, units);
        }
    }
}

/// Appends trade `i` of `trades` as one line, its time in `precision`.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "a row index below `trades.len()`, as every caller iterates `0..len()`; the columns have equal lengths"
)]
pub fn push_trade(
    out: &mut Vec<u8>,
    keys: &SeriesKeys,
    trades: &TradeColumns,
    i: usize,
    precision: Precision,
) {
    let buy = trades.buys[i];
    out.extend_from_slice(if buy { &keys.buy } else { &keys.sell });
    if keys.side_field {
        out.extend_from_slice(if buy {
            b"side=\"buy\","
        } else {
            b"side=\"sell\","
        });
    }
    out.extend_from_slice(b"price=");
    keys.push_price(out, trades.prices[i]);
    out.extend_from_slice(b",amount=");
    push_int(out, trades.amounts[i]);
    if keys.trade_ids {
        out.extend_from_slice(b"i,trade_id=");
        push_int(out, trades.trade_ids[i]);
    }
    out.extend_from_slice(b"i ");
    push_int(out, precision.of(trades.times[i]));
    out.push(b'\n');
}

/// Appends a 1-minute candle as one line, its time in `precision` (a whole minute is a whole
/// unit of each).
pub fn push_candle(out: &mut Vec<u8>, keys: &SeriesKeys, c: &Candle, precision: Precision) {
    out.extend_from_slice(&keys.candle);
    for (name, price) in [
        (&b"open="[..], c.open),
        (b",high=", c.high),
        (b",low=", c.low),
        (b",close=", c.close),
    ] {
        out.extend_from_slice(name);
        keys.push_price(out, price);
    }
    out.extend_from_slice(b",volume=");
    push_int(out, c.volume);
    out.extend_from_slice(b"i,trades=");
    push_int(out, c.trades);
    out.extend_from_slice(b"i,notional=");
    // Σ units × shares of one minute stays far below 2^63 for any realistic tape ($1,000 ×
    // 10^9 shares is 10^16).
    push_int(out, i64::try_from(c.notional).unwrap_or(i64::MAX));
    out.extend_from_slice(b"i ");
    push_int(out, precision.of(c.time));
    out.push(b'\n');
}

/// The manifest point: the load's settings as a JSON string field. Same series and time on
/// every write, so a rewrite overwrites it.
pub fn manifest_line(json: &str, time: i64) -> Vec<u8> {
    LineProtocolBuilder::new()
        .measurement(MANIFEST)
        .field("json", json)
        .timestamp(time)
        .close_line()
        .build()
}

/// The mark a shard leaves when all its chunks are acknowledged. Tagged by shard, so the marks
/// of a load's shards are distinct points.
pub fn shard_line(index: u32, count: u32, time: i64) -> Vec<u8> {
    LineProtocolBuilder::new()
        .measurement(SHARD)
        .tag("shard", &format!("{index}/{count}"))
        .field("index", index as i64)
        .field("count", count as i64)
        .timestamp(time)
        .close_line()
        .build()
}

/// The point of `claim`.
pub fn claim_line(claim: &Claim) -> Vec<u8> {
    LineProtocolBuilder::new()
        .measurement(CLAIM)
        .tag("fingerprint", &claim.fingerprint)
        .field("load", claim.load.as_str())
        .field("lease_until", claim.lease_until)
        .timestamp(claim.time)
        .close_line()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PRICE_UNITS_PER_DOLLAR;
    use influxdb_line_protocol::{FieldValue, parse_lines};

    #[test]
    fn trades_and_candles_parse_back_exactly() {
        let symbol = Symbol::new("BRK.B").unwrap();
        let keys = SeriesKeys::new(&symbol, Schema::Tags);
        let mut t = TradeColumns::default();
        t.push(1_704_205_800_000_001_000, 42, 185_640, 100, true);
        t.push(1_704_205_800_000_002_000, 43, 50, 1, false);
        // A half-cent midpoint print.
        t.push(1_704_205_800_000_003_000, 44, 187_125, 3, true);
        let mut out = Vec::new();
        push_trade(&mut out, &keys, &t, 0, Precision::Ns);
        push_trade(&mut out, &keys, &t, 1, Precision::Ns);
        push_trade(&mut out, &keys, &t, 2, Precision::Ns);
        push_candle(
            &mut out,
            &keys,
            &Candle {
                time: 60,
                open: 100,
                high: 250,
                low: 1,
                close: 99,
                volume: 7,
                trades: 2,
                notional: 700,
            },
            Precision::Ns,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "trade,side=buy,symbol=BRK.B price=185.64,amount=100i,trade_id=42i 1704205800000001000"
        );
        let lines: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].field_set[0].1, FieldValue::F64(0.05));
        assert!(text.contains(" price=187.125,amount=3i,"), "{text}");
        // Read back as the stores read it: the float times 1,000, rounded.
        for (line, units) in lines.iter().zip(&t.prices) {
            let FieldValue::F64(price) = line.field_set[0].1 else {
                panic!("price is a float");
            };
            assert_eq!(
                (price * PRICE_UNITS_PER_DOLLAR as f64).round() as i64,
                *units
            );
        }
        assert_eq!(
            lines[1].series.tag_set.as_ref().unwrap()[1].1.as_str(),
            "BRK.B"
        );
        assert_eq!(lines[3].timestamp, Some(60));
        assert_eq!(lines[3].field_set[6].1, FieldValue::I64(700));
    }

    #[test]
    fn each_schema_writes_the_line_it_describes() {
        let mut t = TradeColumns::default();
        t.push(1_704_205_800_000_001_000, 1, 185_640, 100, true);
        for schema in Schema::ALL {
            let mut out = Vec::new();
            let keys = SeriesKeys::new(&Symbol::new("AAPL").unwrap(), schema);
            push_trade(&mut out, &keys, &t, 0, Precision::Ns);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{} 1704205800000001000\n", schema.describe()),
                "{schema}"
            );
        }
    }

    #[test]
    fn a_claim_parses_back() {
        let claim = Claim {
            fingerprint: "00ff00ff00ff00ff".into(),
            load: r#"20000 trades, "AAPL", seed 2"#.into(),
            time: 1_704_205_800_000_000_001,
            lease_until: 1_704_205_860_000_000_001,
        };
        let line = String::from_utf8(claim_line(&claim)).unwrap();
        let parsed: Vec<_> = parse_lines(&line).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed[0].series.measurement.as_str(), CLAIM);
        assert_eq!(
            parsed[0].series.tag_set.as_ref().unwrap()[0],
            ("fingerprint".into(), "00ff00ff00ff00ff".into())
        );
        assert_eq!(
            parsed[0].field_set[0].1,
            FieldValue::String(claim.load.as_str().into())
        );
        assert_eq!(parsed[0].timestamp, Some(claim.time));
    }

    #[test]
    fn keys_and_strings_are_escaped() {
        let key = series_key("my measurement", &[("a tag", "x,y=z")]);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r"my\ measurement,a\ tag=x\,y\=z "
        );
        let line = String::from_utf8(manifest_line(r#"{"a":"b \"c\""}"#, 5)).unwrap();
        let parsed: Vec<_> = parse_lines(&line).collect::<Result<_, _>>().unwrap();
        match &parsed[0].field_set[0].1 {
            FieldValue::String(s) => assert!(s.contains("\"a\"")),
            other => panic!("{other:?}"),
        }
    }
}

//! Output shapes shared by the CLI (and the HTTP API): csv, json and an aligned table.
//!
//! csv and json times are RFC 3339 UTC with nanoseconds; prices have two decimals, or as many
//! as a sub-penny price needs (`187.125`), always a plain number; vwap four.

use std::io::{self, Write};

use crate::candles::{CandleRow, Interval};
use crate::model::{Nanos, Symbol, TradeColumns, format_time, push_int, push_price, write_price};

pub const CANDLES_CSV_HEADER: &str = "time,symbol,open,high,low,close,volume,trades,vwap";
pub const TRADES_CSV_HEADER: &str = "time,symbol,side,price,amount,trade_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Table,
}

fn price_text(units: i64) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_price(&mut s, units);
    s
}

fn candle_fields(symbol: &Symbol, c: &CandleRow) -> [String; 9] {
    let [open, high, low, close] = c.ohlc.map(|p| p.map(price_text)).unwrap_or_default();
    [
        format_time(c.time),
        symbol.to_string(),
        open,
        high,
        low,
        close,
        c.volume.to_string(),
        c.trades.to_string(),
        c.vwap.map(|v| format!("{v:.4}")).unwrap_or_default(),
    ]
}

/// One candle as the JSON output shows it. Written by hand ([`CandlesPage::to_json`]): prices
/// go out as exact decimals of their units, and times without a trip through chrono's
/// formatter, which made up most of a page's cost.
#[derive(Debug, Clone, Copy, PartialEq, utoipa::ToSchema)]
pub struct CandleJson {
    /// Start of the bucket, RFC 3339 in UTC.
    #[schema(value_type = String, format = DateTime, example = "2024-03-11T13:30:00.000000000Z")]
    pub time: Nanos,
    #[schema(value_type = Option<f64>, example = 172.94)]
    pub open: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub high: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub low: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub close: Option<i64>,
    pub volume: u64,
    pub trades: u64,
    /// Volume-weighted average price, to 4 decimals; null for an empty (filled) bucket.
    pub vwap: Option<f64>,
}

impl From<&CandleRow> for CandleJson {
    fn from(c: &CandleRow) -> Self {
        let [open, high, low, close] = c.ohlc.map_or([None; 4], |p| p.map(Some));
        Self {
            time: c.time,
            open,
            high,
            low,
            close,
            volume: c.volume,
            trades: c.trades,
            vwap: c.vwap,
        }
    }
}

/// A page of candles: the API's JSON body, and `ohlcv candles --format json`.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct CandlesPage {
    pub symbol: String,
    pub interval: String,
    pub tz: String,
    pub candles: Vec<CandleJson>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl CandlesPage {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.candles.len() * 200);
        out.extend_from_slice(b"{\"symbol\":");
        push_str(&mut out, &self.symbol);
        out.extend_from_slice(b",\"interval\":");
        push_str(&mut out, &self.interval);
        out.extend_from_slice(b",\"tz\":");
        push_str(&mut out, &self.tz);
        out.extend_from_slice(b",\"candles\":[");
        for (i, c) in self.candles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"time\":\"");
            push_time(&mut out, c.time);
            for (name, price) in [
                (&b"\",\"open\":"[..], c.open),
                (b",\"high\":", c.high),
                (b",\"low\":", c.low),
                (b",\"close\":", c.close),
            ] {
                out.extend_from_slice(name);
                match price {
                    Some(p) => push_price(&mut out, p),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.extend_from_slice(b",\"volume\":");
            push_int(&mut out, c.volume);
            out.extend_from_slice(b",\"trades\":");
            push_int(&mut out, c.trades);
            out.extend_from_slice(b",\"vwap\":");
            match c.vwap {
                Some(v) => push_fixed4(&mut out, v),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"next_cursor\":");
        match &self.next_cursor {
            Some(c) => push_str(&mut out, c),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A number to 4 decimals, as csv's vwap column has it.
fn push_fixed4(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let scaled = (v * 10_000.0).round() as i64;
    if scaled < 0 {
        out.push(b'-');
    }
    let abs = scaled.unsigned_abs();
    push_int(out, abs / 10_000);
    out.push(b'.');
    let frac = abs % 10_000;
    for div in [1000, 100, 10, 1] {
        out.push(b'0' + (frac / div % 10) as u8);
    }
}

/// Appends `t` as [`format_time`] does (RFC 3339, UTC, 9 fraction digits), without chrono's
/// formatter for times from 1970 on.
pub fn push_time(out: &mut Vec<u8>, t: Nanos) {
    if t < 0 {
        out.extend_from_slice(format_time(t).as_bytes());
        return;
    }
    let secs = t / 1_000_000_000;
    let nanos = (t % 1_000_000_000) as u32;
    let (days, rem) = (secs / 86_400, (secs % 86_400) as u32);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    let mut buf = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for k in (at..at + width).rev() {
            if let Some(digit) = buf.get_mut(k) {
                *digit = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 9, nanos);
    out.extend_from_slice(&buf);
}

pub fn write_candles(
    out: &mut impl Write,
    format: Format,
    symbol: &Symbol,
    interval: Interval,
    tz: &str,
    rows: &[CandleRow],
) -> io::Result<()> {
    match format {
        Format::Csv => {
            writeln!(out, "{CANDLES_CSV_HEADER}")?;
            for c in rows {
                writeln!(out, "{}", candle_fields(symbol, c).join(","))?;
            }
        }
        Format::Json => {
            let page = CandlesPage {
                symbol: symbol.to_string(),
                interval: interval.to_string(),
                tz: tz.to_string(),
                candles: rows.iter().map(CandleJson::from).collect(),
                next_cursor: None,
            };
            out.write_all(&page.to_json())?;
            writeln!(out)?;
        }
        Format::Table => {
            let body: Vec<[String; 9]> = rows.iter().map(|c| candle_fields(symbol, c)).collect();
            write_table(
                out,
                &CANDLES_CSV_HEADER.split(',').collect::<Vec<_>>(),
                &body,
            )?;
        }
    }
    Ok(())
}

#[allow(
    clippy::indexing_slicing,
    reason = "a row index below `trades.len()`, as every caller iterates `0..len()`; the columns have equal lengths"
)]
fn trade_fields(symbol: &Symbol, trades: &TradeColumns, i: usize) -> [String; 6] {
    [
        format_time(trades.times[i]),
        symbol.to_string(),
        if trades.buys[i] { "buy" } else { "sell" }.to_string(),
        price_text(trades.prices[i]),
        trades.amounts[i].to_string(),
        trades.trade_ids[i].to_string(),
    ]
}

/// One trade as the JSON output shows it.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct TradeJson {
    #[schema(value_type = String, format = DateTime, example = "2024-03-11T13:30:00.001234000Z")]
    pub time: Nanos,
    #[schema(value_type = String, example = "AAPL")]
    pub symbol: Symbol,
    /// `buy` or `sell`: the aggressor's side.
    #[schema(example = "buy")]
    pub side: &'static str,
    #[schema(value_type = f64, example = 172.94)]
    pub price: i64,
    pub amount: u32,
    pub trade_id: u64,
}

impl TradeJson {
    /// Trade `i` of `trades`; panics past the end, as slice indexing does.
    #[allow(
        clippy::indexing_slicing,
        reason = "a row index below `trades.len()`, as every caller iterates `0..len()`; the columns have equal lengths"
    )]
    pub fn new(symbol: &Symbol, trades: &TradeColumns, i: usize) -> Self {
        Self {
            time: trades.times[i],
            symbol: symbol.clone(),
            side: if trades.buys[i] { "buy" } else { "sell" },
            price: trades.prices[i],
            amount: trades.amounts[i],
            trade_id: trades.trade_ids[i],
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        push_time(out, self.time);
        out.extend_from_slice(b"\",\"symbol\":");
        push_str(out, self.symbol.as_str());
        out.extend_from_slice(b",\"side\":\"");
        out.extend_from_slice(self.side.as_bytes());
        out.extend_from_slice(b"\",\"price\":");
        push_price(out, self.price);
        out.extend_from_slice(b",\"amount\":");
        push_int(out, self.amount);
        out.extend_from_slice(b",\"trade_id\":");
        push_int(out, self.trade_id);
        out.push(b'}');
    }
}

fn push_trades(out: &mut Vec<u8>, trades: &[TradeJson]) {
    out.push(b'[');
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        t.write(out);
    }
    out.push(b']');
}

/// A page of trades: the API's JSON body.
#[derive(Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct TradesPage {
    pub symbol: String,
    pub trades: Vec<TradeJson>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl TradesPage {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.trades.len() * 130);
        out.extend_from_slice(b"{\"symbol\":");
        push_str(&mut out, &self.symbol);
        out.extend_from_slice(b",\"trades\":");
        push_trades(&mut out, &self.trades);
        out.extend_from_slice(b",\"next_cursor\":");
        match &self.next_cursor {
            Some(c) => push_str(&mut out, c),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }
}

pub fn write_trades(
    out: &mut impl Write,
    format: Format,
    symbol: &Symbol,
    trades: &TradeColumns,
) -> io::Result<()> {
    match format {
        Format::Csv => {
            writeln!(out, "{TRADES_CSV_HEADER}")?;
            for i in 0..trades.len() {
                writeln!(out, "{}", trade_fields(symbol, trades, i).join(","))?;
            }
        }
        Format::Json => {
            let rows: Vec<TradeJson> = (0..trades.len())
                .map(|i| TradeJson::new(symbol, trades, i))
                .collect();
            let mut json = Vec::with_capacity(rows.len() * 130 + 2);
            push_trades(&mut json, &rows);
            out.write_all(&json)?;
            writeln!(out)?;
        }
        Format::Table => {
            let body: Vec<[String; 6]> = (0..trades.len())
                .map(|i| trade_fields(symbol, trades, i))
                .collect();
            write_table(
                out,
                &TRADES_CSV_HEADER.split(',').collect::<Vec<_>>(),
                &body,
            )?;
        }
    }
    Ok(())
}

/// Columns aligned to the right under `header`, two spaces apart.
pub fn write_table<R: AsRef<[String]>>(
    out: &mut impl Write,
    header: &[&str],
    rows: &[R],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(
            out,
            "{}",
            line(row.as_ref().iter().map(String::as_str).collect())
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn push_time_writes_what_format_time_writes(t in -100_000_000_000_000_000i64..i64::MAX) {
            let mut out = Vec::new();
            push_time(&mut out, t);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format_time(t));
        }
    }

    #[test]
    fn pages_are_json_with_exact_prices() {
        let page = CandlesPage {
            symbol: "BRK.B".into(),
            interval: "1m".into(),
            tz: "America/New_York".into(),
            candles: vec![
                CandleJson {
                    time: 1_710_163_800_000_000_000,
                    open: Some(185_600),
                    high: Some(186_055),
                    low: Some(-50),
                    close: Some(70),
                    volume: 1_200,
                    trades: 9,
                    vwap: Some(185.812_46),
                },
                CandleJson {
                    time: 1_710_163_860_000_000_000,
                    open: None,
                    high: None,
                    low: None,
                    close: None,
                    volume: 0,
                    trades: 0,
                    vwap: None,
                },
            ],
            next_cursor: Some("1710163920000000000".into()),
        };
        let text = String::from_utf8(page.to_json()).unwrap();
        assert!(
            text.contains(r#""open":185.60,"high":186.055,"low":-0.05,"close":0.07"#),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["candles"][0]["time"], "2024-03-11T13:30:00.000000000Z");
        assert_eq!(v["candles"][0]["vwap"], 185.8125);
        assert_eq!(v["candles"][1]["open"], serde_json::Value::Null);
        assert_eq!(v["next_cursor"], "1710163920000000000");

        let symbol = Symbol::new("AAPL").unwrap();
        let mut t = TradeColumns::default();
        t.push(1_710_163_800_001_234_000, 42, 172_940, 100, false);
        let page = TradesPage {
            symbol: "AAPL".into(),
            trades: vec![TradeJson::new(&symbol, &t, 0)],
            next_cursor: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&page.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"symbol": "AAPL", "trades": [{"time": "2024-03-11T13:30:00.001234000Z",
                "symbol": "AAPL", "side": "sell", "price": 172.94, "amount": 100, "trade_id": 42}],
                "next_cursor": null})
        );
    }
}

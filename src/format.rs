//! Output shapes shared by the CLI (and the HTTP API): csv, json and an aligned table.
//!
//! csv times are RFC 3339 UTC with nanoseconds; prices have exactly two decimals; vwap four.

use std::io::{self, Write};

use serde::Serialize;

use crate::candles::{CandleRow, Interval};
use crate::model::{Symbol, TradeColumns, format_time, write_cents};

pub const CANDLES_CSV_HEADER: &str = "time,symbol,open,high,low,close,volume,trades,vwap";
pub const TRADES_CSV_HEADER: &str = "time,symbol,side,price,amount,trade_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Table,
}

fn cents(c: i64) -> String {
    let mut s = String::new();
    write_cents(&mut s, c).expect("writing to a String");
    s
}

fn candle_fields(symbol: &Symbol, c: &CandleRow) -> [String; 9] {
    let price = |i: usize| c.ohlc.map(|p| cents(p[i])).unwrap_or_default();
    [
        format_time(c.time),
        symbol.to_string(),
        price(0),
        price(1),
        price(2),
        price(3),
        c.volume.to_string(),
        c.trades.to_string(),
        c.vwap.map(|v| format!("{v:.4}")).unwrap_or_default(),
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CandleJson {
    /// Start of the bucket, RFC 3339 in UTC.
    pub time: String,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: Option<f64>,
    pub volume: u64,
    pub trades: u64,
    /// Volume-weighted average price; null for an empty (filled) bucket.
    pub vwap: Option<f64>,
}

impl From<&CandleRow> for CandleJson {
    fn from(c: &CandleRow) -> Self {
        let price = |i: usize| c.ohlc.map(|p| p[i] as f64 / 100.0);
        Self {
            time: format_time(c.time),
            open: price(0),
            high: price(1),
            low: price(2),
            close: price(3),
            volume: c.volume,
            trades: c.trades,
            vwap: c.vwap.map(|v| (v * 10_000.0).round() / 10_000.0),
        }
    }
}

#[derive(Serialize)]
struct CandlesJson<'a> {
    symbol: &'a str,
    interval: String,
    tz: &'a str,
    candles: Vec<CandleJson>,
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
            let doc = CandlesJson {
                symbol: symbol.as_str(),
                interval: interval.to_string(),
                tz,
                candles: rows.iter().map(CandleJson::from).collect(),
            };
            serde_json::to_writer(&mut *out, &doc)?;
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

fn trade_fields(symbol: &Symbol, trades: &TradeColumns, i: usize) -> [String; 6] {
    [
        format_time(trades.times[i]),
        symbol.to_string(),
        if trades.buys[i] { "buy" } else { "sell" }.to_string(),
        cents(trades.prices[i]),
        trades.amounts[i].to_string(),
        trades.trade_ids[i].to_string(),
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TradeJson {
    pub time: String,
    pub symbol: String,
    pub side: &'static str,
    pub price: f64,
    pub amount: u32,
    pub trade_id: u64,
}

pub fn trade_json(symbol: &Symbol, trades: &TradeColumns, i: usize) -> TradeJson {
    TradeJson {
        time: format_time(trades.times[i]),
        symbol: symbol.to_string(),
        side: if trades.buys[i] { "buy" } else { "sell" },
        price: trades.prices[i] as f64 / 100.0,
        amount: trades.amounts[i],
        trade_id: trades.trade_ids[i],
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
                .map(|i| trade_json(symbol, trades, i))
                .collect();
            serde_json::to_writer(&mut *out, &rows)?;
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

fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
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
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

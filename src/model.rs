//! The trade: what the generator produces, the stores keep and the candles are built from.
//!
//! Prices are whole tenths of a cent (`i64` units of $0.001, [`PRICE_UNITS_PER_DOLLAR`]), so
//! quotes on the $0.01 tick and off-exchange midpoint prints on the half cent are exact
//! integers alike, and sums such as `price * amount` are exact. Timestamps are nanoseconds
//! since the Unix epoch, UTC.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Nanoseconds since 1970-01-01T00:00:00Z.
pub type Nanos = i64;

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

/// Price units in a cent and in a dollar: a price is a whole number of $0.001. The finest
/// price the generator makes is the half cent of a midpoint print; a decimal column's scale
/// is a power of ten, so three decimals is the narrowest that holds it exactly, and each
/// decimal more would widen every price delta Parquet stores by 3.3 bits (docs/STORAGE.md
/// has the measurement).
pub const PRICE_UNITS_PER_CENT: i64 = 10;
pub const PRICE_UNITS_PER_DOLLAR: i64 = 100 * PRICE_UNITS_PER_CENT;
/// Fraction digits of a price in dollars.
pub const PRICE_DECIMALS: u32 = 3;

/// The granularity of a load's timestamps: whole microseconds unless a load is too dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeResolution {
    Micros,
    Nanos,
}

impl TimeResolution {
    pub fn nanos(self) -> i64 {
        match self {
            TimeResolution::Micros => 1_000,
            TimeResolution::Nanos => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "invalid symbol {0:?}: expected 1-10 characters A-Z, 0-9, '.' or '-', starting with a letter"
    )]
    Symbol(String),
    #[error("invalid side {0:?}: expected buy or sell")]
    Side(String),
    #[error("invalid price {0:?}: expected a positive amount of dollars with at most 3 decimals")]
    Price(String),
    #[error("invalid amount {0}: expected a whole number of shares >= 1")]
    Amount(i64),
    #[error("invalid timestamp {0}: outside the range this system represents")]
    Timestamp(i64),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What [`Symbol::new`] accepts, as a JSON Schema pattern (the OpenAPI document states it; a
/// property test holds the validator to it).
pub const SYMBOL_PATTERN: &str = "^[A-Z][A-Z0-9.-]{0,9}$";

/// A ticker symbol such as `AAPL` or `BRK.B`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(Arc<str>);

impl Symbol {
    pub fn new(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let valid = (1..=10).contains(&bytes.len())
            && bytes.first().is_some_and(u8::is_ascii_uppercase)
            && bytes
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-');
        if valid {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ModelError::Symbol(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Symbol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for Symbol {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.0.to_string()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The aggressor's side of a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl FromStr for Side {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            _ => Err(ModelError::Side(s.to_string())),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A price in whole units of $0.001 ([`PRICE_UNITS_PER_DOLLAR`]), always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

impl Price {
    pub fn from_units(units: i64) -> Result<Self> {
        if units > 0 {
            Ok(Self(units))
        } else {
            Err(ModelError::Price(format!("{units} units of $0.001")))
        }
    }

    pub fn units(self) -> i64 {
        self.0
    }
}

/// Writes a price in units of $0.001 as decimal dollars: two fraction digits for a price on
/// the cent, three below it, e.g. `185.64`, `187.125`, `0.001`. A
/// reader of the whole-cent prices of earlier versions sees the same text, and a sub-penny
/// price is never rounded.
pub fn write_price(out: &mut impl fmt::Write, units: i64) -> fmt::Result {
    let mut buf = Vec::with_capacity(24);
    push_price(&mut buf, units);
    // push_price writes only ASCII digits, '-' and '.'.
    out.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
}

/// Appends an integer's decimal digits.
#[inline]
pub fn push_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a price in units of $0.001 as [`write_price`] writes it, e.g. `185.64`, `187.125`
/// or `-0.05`: the byte-writing twin for line protocol and JSON, without a float on the way.
#[inline]
pub fn push_price(out: &mut Vec<u8>, units: i64) {
    if units < 0 {
        out.push(b'-');
    }
    let abs = units.unsigned_abs();
    push_int(out, abs / PRICE_UNITS_PER_DOLLAR as u64);
    let frac = (abs % PRICE_UNITS_PER_DOLLAR as u64) as u16;
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    // Two digits always; the third only when it is not a zero.
    let keep = if frac.is_multiple_of(10) { 2 } else { 3 };
    out.push(b'.');
    out.extend_from_slice(digits.get(..keep).unwrap_or(&digits));
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_price(f, self.0)
    }
}

impl FromStr for Price {
    type Err = ModelError;
    /// Parses `185`, `185.6`, `185.64` or `187.125`; more than three fraction digits is finer
    /// than a price can be.
    fn from_str(s: &str) -> Result<Self> {
        let err = || ModelError::Price(s.to_string());
        let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) || frac.len() > PRICE_DECIMALS as usize {
            return Err(err());
        }
        let whole: i64 = whole.parse().map_err(|_| err())?;
        let frac_units: i64 =
            frac.parse::<i64>().map_err(|_| err())? * 10i64.pow(PRICE_DECIMALS - frac.len() as u32);
        let units = whole
            .checked_mul(PRICE_UNITS_PER_DOLLAR)
            .and_then(|c| c.checked_add(frac_units))
            .ok_or_else(err)?;
        Price::from_units(units).map_err(|_| err())
    }
}

/// One executed trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    pub symbol: Symbol,
    pub side: Side,
    pub price: Price,
    /// Whole shares, >= 1.
    pub amount: u32,
    pub time: Nanos,
    /// Increases with time within a symbol, starting at 0 for the first trade of a load.
    pub trade_id: u64,
}

impl Trade {
    /// Builds a trade, rejecting a non-positive price or amount.
    pub fn new(
        symbol: Symbol,
        side: Side,
        price_units: i64,
        amount: i64,
        time: Nanos,
        trade_id: u64,
    ) -> Result<Self> {
        let price = Price::from_units(price_units)?;
        let amount = u32::try_from(amount)
            .ok()
            .filter(|a| *a >= 1)
            .ok_or(ModelError::Amount(amount))?;
        if time_to_datetime(time).is_none() {
            return Err(ModelError::Timestamp(time));
        }
        Ok(Self {
            symbol,
            side,
            price,
            amount,
            time,
            trade_id,
        })
    }
}

/// Trades of one symbol in columns, the shape the generator fills and the stores read and
/// write without a per-trade allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradeColumns {
    pub times: Vec<Nanos>,
    pub trade_ids: Vec<u64>,
    /// In units of $0.001.
    pub prices: Vec<i64>,
    pub amounts: Vec<u32>,
    /// `true` for a buy.
    pub buys: Vec<bool>,
}

impl TradeColumns {
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    pub fn with_capacity(n: usize) -> Self {
        let mut t = Self::default();
        t.reserve(n);
        t
    }

    pub fn clear(&mut self) {
        self.times.clear();
        self.trade_ids.clear();
        self.prices.clear();
        self.amounts.clear();
        self.buys.clear();
    }

    /// Keeps the first `n` trades.
    pub fn truncate(&mut self, n: usize) {
        self.times.truncate(n);
        self.trade_ids.truncate(n);
        self.prices.truncate(n);
        self.amounts.truncate(n);
        self.buys.truncate(n);
    }

    pub fn reserve(&mut self, n: usize) {
        self.times.reserve(n);
        self.trade_ids.reserve(n);
        self.prices.reserve(n);
        self.amounts.reserve(n);
        self.buys.reserve(n);
    }

    pub fn push(&mut self, time: Nanos, trade_id: u64, price: i64, amount: u32, buy: bool) {
        self.times.push(time);
        self.trade_ids.push(trade_id);
        self.prices.push(price);
        self.amounts.push(amount);
        self.buys.push(buy);
    }

    /// The `i`-th trade as a row; panics past the end, as slice indexing does.
    #[allow(
        clippy::indexing_slicing,
        reason = "a row index below `trades.len()`, as every caller iterates `0..len()`; the columns have equal lengths"
    )]
    pub fn trade(&self, symbol: &Symbol, i: usize) -> Trade {
        Trade {
            symbol: symbol.clone(),
            side: if self.buys[i] { Side::Buy } else { Side::Sell },
            price: Price(self.prices[i]),
            amount: self.amounts[i],
            time: self.times[i],
            trade_id: self.trade_ids[i],
        }
    }
}

pub fn time_to_datetime(t: Nanos) -> Option<DateTime<Utc>> {
    Some(DateTime::from_timestamp_nanos(t)).filter(|d| d.timestamp_nanos_opt() == Some(t))
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2024-01-02T14:30:00.000001000Z`.
pub fn format_time(t: Nanos) -> String {
    DateTime::from_timestamp_nanos(t).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_validated() {
        for ok in ["AAPL", "BRK.B", "A", "BF-B", "X1"] {
            assert_eq!(Symbol::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "aapl",
            "1ABC",
            "TOOLONGSYMBOL",
            "A B",
            "A,B",
            "A=B",
            "AÄ",
        ] {
            assert!(Symbol::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prices_parse_to_three_decimals() {
        assert_eq!("185.64".parse::<Price>().unwrap().units(), 185_640);
        assert_eq!("185.6".parse::<Price>().unwrap().units(), 185_600);
        assert_eq!("185".parse::<Price>().unwrap().units(), 185_000);
        assert_eq!("187.125".parse::<Price>().unwrap().units(), 187_125);
        assert_eq!("0.001".parse::<Price>().unwrap().units(), 1);
        for bad in [
            "185.6451",
            "0.000",
            "-1",
            "0",
            "",
            ".5",
            "1e3",
            "abc",
            "1.",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Price>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prices_print_two_decimals_unless_sub_penny() {
        for (units, text) in [
            (185_640, "185.64"),
            (185_000, "185.00"),
            (187_125, "187.125"),
            (50, "0.05"),
            (5, "0.005"),
            (1, "0.001"),
        ] {
            assert_eq!(Price::from_units(units).unwrap().to_string(), text);
            assert_eq!(text.parse::<Price>().unwrap().units(), units);
            let mut bytes = Vec::new();
            push_price(&mut bytes, units);
            assert_eq!(bytes, text.as_bytes());
        }
        let mut bytes = Vec::new();
        push_price(&mut bytes, -50);
        assert_eq!(bytes, b"-0.05");
    }

    #[test]
    fn trade_constructor_rejects_bad_values() {
        let s = Symbol::new("AAPL").unwrap();
        assert!(Trade::new(s.clone(), Side::Buy, 185_640, 100, 0, 0).is_ok());
        assert_eq!(
            Trade::new(s.clone(), Side::Buy, 0, 100, 0, 0),
            Err(ModelError::Price("0 units of $0.001".into()))
        );
        assert_eq!(
            Trade::new(s.clone(), Side::Buy, 100, 0, 0, 0),
            Err(ModelError::Amount(0))
        );
        assert_eq!(
            Trade::new(s, Side::Sell, 100, 1 << 40, 0, 0),
            Err(ModelError::Amount(1 << 40))
        );
        assert!("short".parse::<Side>().is_err());
    }

    #[test]
    fn times_format_with_nanoseconds() {
        assert_eq!(format_time(1), "1970-01-01T00:00:00.000000001Z");
    }
}

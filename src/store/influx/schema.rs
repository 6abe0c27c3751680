//! The data model of trades and 1-minute candles in InfluxDB: which measurement a point goes
//! to, which of its values are tags and which fields, and how a price is held. One value of
//! [`Schema`] decides it for writes (`line_protocol`) and reads (`influxql`, `flux`) alike; it
//! is a setting of the target (`--influxdb-schema`), like the bucket, so a load is read with
//! the schema it was written with. docs/INFLUXDB.md has the trade-offs.

use serde::{Deserialize, Serialize};

use super::line_protocol::{CANDLE, TRADE};
use crate::model::Symbol;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Schema {
    /// `trade,side=buy,symbol=AAPL price=185.64,amount=100i,trade_id=123i`: the default.
    #[default]
    Tags,
    /// `trade,symbol=AAPL side="buy",price=185.64,...`: one series per symbol instead of two.
    SideField,
    /// `trade,side=buy,symbol=AAPL price=185640i,...`: prices (and candle prices) as integer
    /// units of $0.001, exact without rounding a float.
    IntegerPrice,
    /// `trade_AAPL,side=buy price=185.64,...` and `candle_1m_AAPL`: a measurement per symbol,
    /// no symbol tag.
    PerSymbol,
    /// `trade,side=buy,symbol=AAPL price=185.64,amount=100i`: no `trade_id` field. A trade's
    /// id is its position in its symbol's tape (what the generator numbers it), so reads
    /// number the trades they return from the load's plan and a count of the trades before
    /// them; a point is still told apart by its series and time alone, as in every schema.
    NoTradeId,
}

impl Schema {
    pub const ALL: [Schema; 5] = [
        Schema::Tags,
        Schema::SideField,
        Schema::IntegerPrice,
        Schema::PerSymbol,
        Schema::NoTradeId,
    ];

    /// As flags and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Schema::Tags => "tags",
            Schema::SideField => "side_field",
            Schema::IntegerPrice => "integer_price",
            Schema::PerSymbol => "per_symbol",
            Schema::NoTradeId => "no_trade_id",
        }
    }

    /// A trade's line in this schema, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Schema::Tags => "trade,side=buy,symbol=AAPL price=185.64,amount=100i,trade_id=1i",
            Schema::SideField => {
                "trade,symbol=AAPL side=\"buy\",price=185.64,amount=100i,trade_id=1i"
            }
            Schema::IntegerPrice => {
                "trade,side=buy,symbol=AAPL price=185640i,amount=100i,trade_id=1i"
            }
            Schema::PerSymbol => "trade_AAPL,side=buy price=185.64,amount=100i,trade_id=1i",
            Schema::NoTradeId => "trade,side=buy,symbol=AAPL price=185.64,amount=100i",
        }
    }

    /// The measurement of `symbol`'s trades.
    pub fn trade_measurement(self, symbol: &Symbol) -> String {
        self.measurement(TRADE, symbol)
    }

    /// The measurement of `symbol`'s 1-minute candles.
    pub fn candle_measurement(self, symbol: &Symbol) -> String {
        self.measurement(CANDLE, symbol)
    }

    /// The measurement of `symbol`'s points of kind `base` ([`TRADE`] or [`CANDLE`]).
    pub fn measurement(self, base: &str, symbol: &Symbol) -> String {
        match self {
            Schema::PerSymbol => format!("{base}_{}", symbol.as_str()),
            _ => base.to_string(),
        }
    }

    /// Whether points carry the symbol as a tag (otherwise the measurement names it).
    pub fn symbol_tag(self) -> bool {
        self != Schema::PerSymbol
    }

    /// Whether a trade's side is a tag (otherwise a string field).
    pub fn side_tag(self) -> bool {
        self != Schema::SideField
    }

    /// Whether trades carry their id as the `trade_id` field (otherwise reads number them).
    pub fn trade_ids(self) -> bool {
        self != Schema::NoTradeId
    }

    /// The field every trade has, which counts of trades count.
    pub fn counted_field(self) -> &'static str {
        if self.trade_ids() {
            "trade_id"
        } else {
            "amount"
        }
    }

    /// Whether prices are integer units of $0.001 (otherwise floats).
    pub fn integer_prices(self) -> bool {
        self == Schema::IntegerPrice
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

//! The [`Store`] read side in InfluxQL, through `/query`: InfluxDB 1.x, 2.x (v1 compatibility
//! API, a bucket read as the database of its name) and 3.x.

use serde_json::Value;

use super::client::{Client, quote_ident, quote_string};
use super::line_protocol::{CANDLE, CLAIM, MANIFEST, SHARD, TRADE};
use super::{Claim, InfluxConfig, InfluxError, Schema};
use crate::candles::Candle;
use crate::model::{Nanos, PRICE_UNITS_PER_DOLLAR, Symbol, TradeColumns};
use crate::store::{Manifest, Result, Store};

/// Trades and 1-minute candles in InfluxDB, read with InfluxQL.
pub struct InfluxqlStore {
    client: Client,
}

/// Ranges counted per request by [`Store::count_trades`]: one statement each.
const COUNTS_PER_QUERY: usize = 200;

/// Column `i` of a row the server sent; a short row is the server's error, not a panic.
fn col(row: &[Value], i: usize) -> Result<&Value> {
    row.get(i)
        .ok_or_else(|| InfluxError::Protocol(format!("a row without column {i}")).into())
}

fn int(row: &[Value], i: usize) -> Result<i64> {
    let v = col(row, i)?;
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .ok_or_else(|| InfluxError::Protocol(format!("expected an integer, got {v}")).into())
}

fn text(row: &[Value], i: usize) -> Result<String> {
    let v = col(row, i)?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| InfluxError::Protocol(format!("expected a string, got {v}")).into())
}

/// A price float back in units of $0.001: exact, as the float is the nearest to a decimal
/// of at most 3 fraction digits (`line_protocol`).
fn price_units(row: &[Value], i: usize) -> Result<i64> {
    let v = col(row, i)?;
    v.as_f64()
        .map(|f| (f * PRICE_UNITS_PER_DOLLAR as f64).round() as i64)
        .ok_or_else(|| InfluxError::Protocol(format!("expected a price, got {v}")).into())
}

/// `FROM <measurement> WHERE <the symbol> AND <the time range>` for the points of kind `base`
/// ([`TRADE`] or [`CANDLE`]) of `symbol`, wherever `schema` puts them; `end` is exclusive,
/// and `None` for `start` reads from the beginning.
pub fn from_where(
    schema: Schema,
    base: &str,
    symbol: &Symbol,
    start: Option<Nanos>,
    end: Nanos,
) -> String {
    let mut conditions = Vec::with_capacity(3);
    if schema.symbol_tag() {
        conditions.push(format!("\"symbol\" = {}", quote_string(symbol.as_str())));
    }
    if let Some(start) = start {
        conditions.push(format!("time >= {start}"));
    }
    conditions.push(format!("time < {end}"));
    format!(
        "FROM {} WHERE {}",
        quote_ident(&schema.measurement(base, symbol)),
        conditions.join(" AND ")
    )
}

impl InfluxqlStore {
    pub fn new(config: InfluxConfig) -> super::Result<Self> {
        Ok(Self {
            client: Client::new(config)?,
        })
    }

    fn schema(&self) -> Schema {
        self.client.config().schema
    }

    /// Column `i` as a price in units of $0.001, as the schema holds it.
    fn price(&self, row: &[Value], i: usize) -> Result<i64> {
        if self.schema().integer_prices() {
            int(row, i)
        } else {
            price_units(row, i)
        }
    }

    /// Every load's claim on the database (see [`Claim`]).
    pub fn claims(&self) -> Result<Vec<Claim>> {
        let q = format!(
            "SELECT \"load\", \"fingerprint\", \"lease_until\" FROM {}",
            quote_ident(CLAIM)
        );
        self.rows(&q)?
            .iter()
            .map(|r| {
                let time = int(r, 0)?;
                Ok(Claim {
                    time,
                    load: text(r, 1)?,
                    fingerprint: text(r, 2)?,
                    // A claim without a lease says nothing of a load still running.
                    lease_until: int(r, 3).unwrap_or(time),
                })
            })
            .collect()
    }

    /// Rows of `q` against the load's database.
    fn rows(&self, q: &str) -> Result<Vec<Vec<Value>>> {
        let db = self.client.config().read_database();
        Ok(self.client.influxql(q, Some(db))?)
    }

    /// Calls `each(statement id, row)` for every row of `q`; the first error `each` returns
    /// ends the read.
    fn each_row(&self, q: &str, mut each: impl FnMut(usize, &[Value]) -> Result<()>) -> Result<()> {
        let db = self.client.config().read_database();
        let mut failure = None;
        self.client.influxql_each(q, Some(db), |id, rows| {
            for row in &rows {
                if failure.is_none()
                    && let Err(e) = each(id, row)
                {
                    failure = Some(e);
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }
}

impl Store for InfluxqlStore {
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> Result<TradeColumns> {
        let schema = self.schema();
        let mut q = format!(
            "SELECT \"price\", \"amount\", \"side\"{} {}",
            if schema.trade_ids() {
                ", \"trade_id\""
            } else {
                ""
            },
            from_where(schema, TRADE, symbol, Some(start), end)
        );
        if let Some(n) = limit {
            q.push_str(&format!(" LIMIT {n}"));
        }
        let mut out = TradeColumns::default();
        self.each_row(&q, |_, row| {
            let amount =
                u32::try_from(int(row, 2)?).map_err(|_| InfluxError::Protocol("amount".into()))?;
            let id = if schema.trade_ids() { int(row, 4)? } else { 0 };
            out.push(
                int(row, 0)?,
                id as u64,
                self.price(row, 1)?,
                amount,
                col(row, 3)? == "buy",
            );
            Ok(())
        })?;
        if !schema.trade_ids() {
            super::number_trades(self, symbol, start, &mut out)?;
        }
        Ok(out)
    }

    fn minute_candles(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Candle>> {
        let q = format!(
            "SELECT \"open\", \"high\", \"low\", \"close\", \"volume\", \"trades\", \"notional\" {}",
            from_where(self.schema(), CANDLE, symbol, Some(start), end)
        );
        self.rows(&q)?
            .iter()
            .map(|r| {
                Ok(Candle {
                    time: int(r, 0)?,
                    open: self.price(r, 1)?,
                    high: self.price(r, 2)?,
                    low: self.price(r, 3)?,
                    close: self.price(r, 4)?,
                    volume: int(r, 5)? as u64,
                    trades: int(r, 6)? as u64,
                    notional: int(r, 7)? as u128,
                })
            })
            .collect()
    }

    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>> {
        let q = format!(
            "SELECT \"close\" {} ORDER BY time DESC LIMIT 1",
            from_where(self.schema(), CANDLE, symbol, None, before)
        );
        self.rows(&q)?.first().map(|r| self.price(r, 1)).transpose()
    }

    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; ranges.len()];
        // Many statements per request: one round trip per batch of ranges.
        for (batch_index, batch) in ranges.chunks(COUNTS_PER_QUERY).enumerate() {
            let q: Vec<String> = batch
                .iter()
                .map(|(start, end)| {
                    format!(
                        "SELECT count({}) {}",
                        quote_ident(self.schema().counted_field()),
                        from_where(self.schema(), TRADE, symbol, Some(*start), *end)
                    )
                })
                .collect();
            self.each_row(&q.join("; "), |id, row| {
                let slot = counts
                    .get_mut(batch_index * COUNTS_PER_QUERY + id)
                    .ok_or_else(|| InfluxError::Protocol(format!("unexpected statement {id}")))?;
                *slot += int(row, 1)? as u64;
                Ok(())
            })?;
        }
        Ok(counts)
    }

    fn manifest(&self) -> Result<Manifest> {
        let q = format!("SELECT last(\"json\") FROM {}", quote_ident(MANIFEST));
        let json = self
            .rows(&q)?
            .first()
            .and_then(|r| r.get(1))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        super::manifest(self.client.config(), json, || {
            let q = format!("SELECT \"index\", \"count\" FROM {}", quote_ident(SHARD));
            self.rows(&q)?
                .iter()
                .map(|r| Ok((int(r, 1)? as u32, int(r, 2)? as u32)))
                .collect()
        })
    }
}

//! The [`Store`] read side over InfluxQL.

use serde_json::Value;

use super::line_protocol::{CANDLE, MANIFEST, TRADE};
use super::{InfluxConfig, InfluxError, blocking_client, influxql, influxql_each, quote_ident};
use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TradeColumns};
use crate::store::{Manifest, Result, Store, StoreError};

/// Trades and 1-minute candles in InfluxDB, read with InfluxQL through `/query`.
pub struct InfluxStore {
    config: InfluxConfig,
    client: reqwest::blocking::Client,
}

fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn int(v: &Value) -> Result<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .ok_or_else(|| InfluxError::Protocol(format!("expected an integer, got {v}")).into())
}

fn cents(v: &Value) -> Result<i64> {
    v.as_f64()
        .map(|f| (f * 100.0).round() as i64)
        .ok_or_else(|| InfluxError::Protocol(format!("expected a price, got {v}")).into())
}

impl InfluxStore {
    pub fn new(config: InfluxConfig) -> Result<Self> {
        Ok(Self {
            client: blocking_client()?,
            config,
        })
    }

    fn db(&self) -> &str {
        match self.config.api {
            super::Api::V1 => &self.config.database,
            super::Api::V2 => &self.config.bucket,
        }
    }

    fn range_filter(symbol: &Symbol, start: Nanos, end: Nanos) -> String {
        format!(
            "\"symbol\" = {} AND time >= {start} AND time < {end}",
            quote_string(symbol.as_str())
        )
    }
}

impl Store for InfluxStore {
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> Result<TradeColumns> {
        let mut q = format!(
            "SELECT \"price\", \"amount\", \"trade_id\", \"side\" FROM {} WHERE {}",
            quote_ident(TRADE),
            Self::range_filter(symbol, start, end)
        );
        if let Some(n) = limit {
            q.push_str(&format!(" LIMIT {n}"));
        }
        let mut out = TradeColumns::default();
        let mut failure = None;
        influxql_each(
            &self.client,
            &self.config,
            &q,
            Some(self.db()),
            |_, rows| {
                for row in rows {
                    let parsed = (|| -> Result<()> {
                        let amount = u32::try_from(int(&row[2])?)
                            .map_err(|_| InfluxError::Protocol("amount".into()))?;
                        out.push(
                            int(&row[0])?,
                            int(&row[3])? as u64,
                            cents(&row[1])?,
                            amount,
                            row[4] == "buy",
                        );
                        Ok(())
                    })();
                    if let Err(e) = parsed {
                        failure.get_or_insert(e);
                    }
                }
            },
        )?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn minute_candles(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Candle>> {
        let q = format!(
            "SELECT \"open\", \"high\", \"low\", \"close\", \"volume\", \"trades\", \"notional\" FROM {} WHERE {}",
            quote_ident(CANDLE),
            Self::range_filter(symbol, start, end)
        );
        influxql(&self.client, &self.config, &q, Some(self.db()))?
            .iter()
            .map(|r| {
                Ok(Candle {
                    time: int(&r[0])?,
                    open: cents(&r[1])?,
                    high: cents(&r[2])?,
                    low: cents(&r[3])?,
                    close: cents(&r[4])?,
                    volume: int(&r[5])? as u64,
                    trades: int(&r[6])? as u64,
                    notional: int(&r[7])? as u128,
                })
            })
            .collect()
    }

    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>> {
        let q = format!(
            "SELECT \"close\" FROM {} WHERE \"symbol\" = {} AND time < {before} ORDER BY time DESC LIMIT 1",
            quote_ident(CANDLE),
            quote_string(symbol.as_str())
        );
        let rows = influxql(&self.client, &self.config, &q, Some(self.db()))?;
        rows.first().map(|r| cents(&r[1])).transpose()
    }

    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; ranges.len()];
        // Many statements per request: one round trip per 200 ranges.
        for (batch_index, batch) in ranges.chunks(200).enumerate() {
            let q: Vec<String> = batch
                .iter()
                .map(|(start, end)| {
                    format!(
                        "SELECT count(\"trade_id\") FROM {} WHERE {}",
                        quote_ident(TRADE),
                        Self::range_filter(symbol, *start, *end)
                    )
                })
                .collect();
            let mut failure = None;
            influxql_each(
                &self.client,
                &self.config,
                &q.join("; "),
                Some(self.db()),
                |id, rows| {
                    for row in rows {
                        match int(&row[1]) {
                            Ok(n) => counts[batch_index * 200 + id] += n as u64,
                            Err(e) => {
                                failure.get_or_insert(e);
                            }
                        }
                    }
                },
            )?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(counts)
    }

    fn manifest(&self) -> Result<Manifest> {
        let q = format!("SELECT last(\"json\") FROM {}", quote_ident(MANIFEST));
        let rows = influxql(&self.client, &self.config, &q, Some(self.db()))?;
        let json = rows
            .first()
            .and_then(|r| r.get(1))
            .and_then(|v| v.as_str())
            .ok_or_else(|| StoreError::Empty(self.config.target().into()))?;
        serde_json::from_str(json).map_err(|source| StoreError::Manifest {
            path: self.config.target().into(),
            source,
        })
    }
}

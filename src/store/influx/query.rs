//! The [`Store`] read side, in InfluxQL or in Flux ([`super::flux`]).

use serde_json::Value;

use super::flux::Flux;
use super::line_protocol::{CANDLE, MANIFEST, SHARD, TRADE};
use super::{
    InfluxConfig, InfluxError, QueryLanguage, blocking_client, influxql, influxql_each, quote_ident,
};
use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TradeColumns};
use crate::store::{Manifest, Result, Store, StoreError};

/// Trades and 1-minute candles in InfluxDB, read with InfluxQL through `/query` or with Flux
/// through `/api/v2/query`, as the config's query language says.
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

    fn flux(&self) -> Option<Flux<'_>> {
        (self.config.query_language == QueryLanguage::Flux).then(|| Flux {
            config: &self.config,
            client: &self.client,
            bucket: self.db(),
        })
    }

    fn manifest_json(&self) -> Result<Option<String>> {
        if let Some(flux) = self.flux() {
            return Ok(flux.manifest_json()?);
        }
        let q = format!("SELECT last(\"json\") FROM {}", quote_ident(MANIFEST));
        let rows = influxql(&self.client, &self.config, &q, Some(self.db()))?;
        Ok(rows
            .first()
            .and_then(|r| r.get(1))
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }

    /// (index, count) of every finished shard of a sharded load.
    fn shards_done(&self) -> Result<Vec<(u32, u32)>> {
        if let Some(flux) = self.flux() {
            return Ok(flux.shards_done()?);
        }
        let q = format!("SELECT \"index\", \"count\" FROM {}", quote_ident(SHARD));
        influxql(&self.client, &self.config, &q, Some(self.db()))?
            .iter()
            .map(|r| Ok((int(&r[1])? as u32, int(&r[2])? as u32)))
            .collect()
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
        if let Some(flux) = self.flux() {
            return Ok(flux.trades(symbol, start, end, limit)?);
        }
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
        if let Some(flux) = self.flux() {
            return Ok(flux.minute_candles(symbol, start, end)?);
        }
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
        if let Some(flux) = self.flux() {
            return Ok(flux.previous_close(symbol, before)?);
        }
        let q = format!(
            "SELECT \"close\" FROM {} WHERE \"symbol\" = {} AND time < {before} ORDER BY time DESC LIMIT 1",
            quote_ident(CANDLE),
            quote_string(symbol.as_str())
        );
        let rows = influxql(&self.client, &self.config, &q, Some(self.db()))?;
        rows.first().map(|r| cents(&r[1])).transpose()
    }

    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>> {
        if let Some(flux) = self.flux() {
            return Ok(flux.count_trades(symbol, ranges)?);
        }
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
        let json = self
            .manifest_json()?
            .ok_or_else(|| StoreError::Empty(self.config.target().into()))?;
        let mut manifest: Manifest =
            serde_json::from_str(&json).map_err(|source| StoreError::Manifest {
                path: self.config.target().into(),
                source,
            })?;
        if !manifest.complete {
            manifest.complete = every_shard_done(&self.shards_done()?);
        }
        Ok(manifest)
    }
}

/// True when, for some shard count N, every shard 0..N has finished.
fn every_shard_done(done: &[(u32, u32)]) -> bool {
    let mut by_count: std::collections::HashMap<u32, std::collections::HashSet<u32>> =
        Default::default();
    for &(index, count) in done {
        if index < count {
            by_count.entry(count).or_default().insert(index);
        }
    }
    by_count
        .iter()
        .any(|(&count, indexes)| indexes.len() == count as usize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sharded_load_is_complete_when_all_shards_of_one_count_are() {
        use super::every_shard_done as done;
        assert!(!done(&[]));
        assert!(!done(&[(0, 2)]));
        assert!(done(&[(1, 2), (0, 2)]));
        assert!(!done(&[(0, 2), (1, 3), (2, 3)]));
        assert!(done(&[(0, 2), (1, 3), (2, 3), (0, 3)]));
    }
}

//! InfluxDB as a store, over its HTTP APIs.
//!
//! - [`config`]: where the server is, the API version, org and bucket (or database),
//!   credentials as [`Secret`]s, and the URLs and headers that follow;
//! - [`error`]: [`InfluxError`], and which [`StoreError`](crate::store::StoreError) kind each
//!   failure is;
//! - [`client`]: the blocking client, with both query transports (InfluxQL, Flux);
//! - [`write`]: the async write path with batching, retries, 413 splitting and a breaker;
//! - [`admin`]: `ohlcv influx setup`, deleting a load, withdrawing a claim;
//! - [`schema`]: the data model of trades and candles, and its variants;
//! - [`line_protocol`]: how trades, candles, the manifest and claims are encoded;
//! - [`influxql`] and [`flux`]: the two [`Store`] implementations, one per query language,
//!   chosen once by [`open`]; each also reads the loads' [`Claim`]s ([`claims`]).

pub mod admin;
pub mod client;
pub mod config;
pub mod error;
pub mod flux;
pub mod influxql;
pub mod line_protocol;
pub mod schema;
pub mod write;

pub use admin::{SetupOutcome, clear, drop_target, setup, withdraw_claim};
pub use config::{Api, InfluxConfig, Precision, QueryLanguage, Secret};
pub use error::{InfluxError, Result, error_message, transport_error};
pub use flux::FluxStore;
pub use influxql::InfluxqlStore;
pub use schema::Schema;

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::generator::MarketPlan;
use crate::model::{Nanos, Symbol, TradeColumns};
use crate::store::{self, Manifest, Store, StoreError};

/// The store reading `config`'s target in its query language.
pub fn open(config: InfluxConfig) -> Result<Box<dyn Store>> {
    Ok(match config.query_language {
        QueryLanguage::Influxql => Box::new(InfluxqlStore::new(config)?),
        QueryLanguage::Flux => Box::new(FluxStore::new(config)?),
    })
}

/// A load's claim on the target: the point a load writes before its first trade, so that two
/// different loads starting together see each other, and writes again while it runs, so that a
/// `--replace` can tell a running load from one that ended or died (`ingest::influx` has the
/// protocol). Reads of trades, candles and the manifest never look at claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// [`Manifest::fingerprint`] of the load: the same for every shard of it.
    pub fingerprint: String,
    /// What the load loads, as [`Manifest::describe`] says it.
    pub load: String,
    /// When it was written: the clock of the machine that did, in nanoseconds.
    pub time: Nanos,
    /// Until when the load says it is writing: it renews the claim before then while it runs,
    /// and writes one with no lease (`lease_until == time`) when it stops.
    pub lease_until: Nanos,
}

impl Claim {
    /// Whether the load that wrote this claim, its latest, was writing at `now`.
    pub fn is_live(&self, now: Nanos) -> bool {
        self.lease_until > now
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t: Nanos| {
            DateTime::<Utc>::from_timestamp_nanos(t).to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        write!(f, "{}, claimed {}", self.load, at(self.time))?;
        if self.lease_until > self.time {
            write!(f, ", writing until at least {}", at(self.lease_until))?;
        }
        Ok(())
    }
}

/// The latest claim of each load other than `fingerprint`'s whose lease had not run out at
/// `now`: the loads writing the target.
pub fn live_claims(claims: &[Claim], fingerprint: &str, now: Nanos) -> Vec<Claim> {
    let mut latest: Vec<&Claim> = Vec::new();
    for claim in claims.iter().filter(|c| c.fingerprint != fingerprint) {
        match latest
            .iter_mut()
            .find(|c| c.fingerprint == claim.fingerprint)
        {
            Some(seen) if seen.time < claim.time => *seen = claim,
            Some(_) => {}
            None => latest.push(claim),
        }
    }
    latest
        .into_iter()
        .filter(|c| c.is_live(now))
        .cloned()
        .collect()
}

/// Every claim in `config`'s target, read in its query language, oldest first.
pub fn claims(config: &InfluxConfig) -> store::Result<Vec<Claim>> {
    let mut claims = match config.query_language {
        QueryLanguage::Influxql => InfluxqlStore::new(config.clone())?.claims()?,
        QueryLanguage::Flux => FluxStore::new(config.clone())?.claims()?,
    };
    claims.sort_by_key(|c| c.time);
    Ok(claims)
}

/// Numbers `trades`, the trades of `symbol` that `store` returned from `start` on, in a
/// schema without the `trade_id` field ([`Schema::NoTradeId`]). The generator numbers a
/// symbol's trades from 0 in time order, so the first one's id is the first id of its
/// session in the load's plan plus the trades stored in that session before `start`; a
/// trade missing before them shifts every id, which `verify` then reports.
fn number_trades(
    store: &dyn Store,
    symbol: &Symbol,
    start: Nanos,
    trades: &mut TradeColumns,
) -> store::Result<()> {
    if trades.is_empty() {
        return Ok(());
    }
    let manifest = store.manifest()?;
    let plan = MarketPlan::new(manifest.load)
        .map_err(|e| InfluxError::Protocol(format!("the load's manifest: {e}")))?;
    let Some(s) = plan.symbols().iter().position(|p| &p.symbol == symbol) else {
        return Err(InfluxError::Protocol(format!("{symbol} is not in the load")).into());
    };
    let Some(d) = plan
        .sessions()
        .iter()
        .position(|session| session.close > start)
    else {
        return Err(
            InfluxError::Protocol(format!("{symbol} has trades after the load's end")).into(),
        );
    };
    let (open, first) = (
        plan.sessions().get(d).map_or(start, |session| session.open),
        plan.chunk(s, d).first_trade_id,
    );
    let before = if start > open {
        store
            .count_trades(symbol, &[(open, start)])?
            .first()
            .copied()
            .unwrap_or(0)
    } else {
        0
    };
    for (id, slot) in (first + before..).zip(trades.trade_ids.iter_mut()) {
        *slot = id;
    }
    Ok(())
}

/// The manifest point's `json` (none if no load was written), completed by the shard marks
/// `shards_done` reads when the manifest itself does not say the load is complete.
fn manifest(
    config: &InfluxConfig,
    json: Option<String>,
    shards_done: impl FnOnce() -> store::Result<Vec<(u32, u32)>>,
) -> store::Result<Manifest> {
    let json = json.ok_or_else(|| StoreError::Empty(config.target()))?;
    let mut manifest = Manifest::parse(json.as_bytes(), config.target())?;
    if !manifest.complete {
        manifest.complete = every_shard_done(&shards_done()?);
    }
    Ok(manifest)
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
    fn a_load_writes_while_its_latest_claim_is_leased() {
        use super::{Claim, live_claims};
        let claim = |fingerprint: &str, time, lease_until| Claim {
            fingerprint: fingerprint.into(),
            load: format!("load {fingerprint}"),
            time,
            lease_until,
        };
        let claims = [
            claim("a", 10, 100),
            claim("a", 20, 20), // a ended: its latest claim has no lease
            claim("b", 5, 50),
            claim("b", 40, 140), // b renewed
            claim("c", 30, 60),  // c died: its lease runs out at 60
            claim("ours", 35, 1_000),
        ];
        let live = |now| -> Vec<String> {
            live_claims(&claims, "ours", now)
                .into_iter()
                .map(|c| c.fingerprint)
                .collect()
        };
        assert_eq!(live(45), ["b", "c"]);
        assert_eq!(live(60), ["b"]);
        assert_eq!(live(140), Vec::<String>::new());
        assert!(claims[3].to_string().contains("writing until at least"));
        assert!(!claims[1].to_string().contains("writing until"));
    }

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

//! Where trades and 1-minute candles live once generated.
//!
//! [`Store`] is the read side every query goes through; the embedded Parquet dataset
//! ([`parquet::ParquetStore`]) is the default store and also has the partition writer the load
//! pipeline uses.

pub mod influx;
pub mod manifest;
pub mod parquet;

use std::path::PathBuf;

use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TradeColumns};
pub use manifest::{Manifest, Partition};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no load found in {0}: run `ohlcv load` first")]
    Empty(PathBuf),
    #[error("{dir} holds a different load ({existing}); pass --replace to delete it and load anew")]
    DifferentLoad { dir: PathBuf, existing: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    #[error("{path}: unexpected content: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Influx(#[from] influx::InfluxError),
    #[error("{path}: bad manifest: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// The read side of a store.
///
/// Contract: every range is half-open, `[start, end)`, in UTC nanoseconds; results are ordered
/// by time (and trade id); a symbol the store does not hold yields an empty result, not an
/// error. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// Trades of `symbol` with `start <= time < end`, at most `limit` of them (the first ones).
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> Result<TradeColumns>;

    /// Stored UTC 1-minute candles of `symbol` whose minute starts in `[start, end)`.
    fn minute_candles(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Candle>>;

    /// The same candles as [`Store::minute_candles`], handed to `visit` in time-ordered
    /// slices; a store that holds them in memory lends them instead of copying.
    fn visit_minute_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        visit(&self.minute_candles(symbol, start, end)?);
        Ok(())
    }

    /// UTC 1-hour candles of `symbol` whose hour starts in `[start, end)`, both whole UTC
    /// hours, rolled up from the 1-minute candles, in time-ordered slices.
    fn visit_hour_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        visit(&crate::candles::hour_candles(
            &self.minute_candles(symbol, start, end)?,
        ));
        Ok(())
    }

    /// The close of the last 1-minute candle of `symbol` that starts before `before`.
    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>>;

    /// How many trades of `symbol` fall in each of `ranges` (sorted and disjoint), counted
    /// from the stored trades themselves.
    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>>;

    /// What was loaded.
    fn manifest(&self) -> Result<Manifest>;
}

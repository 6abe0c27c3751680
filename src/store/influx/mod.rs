//! InfluxDB as a store, over its HTTP APIs.
//!
//! - [`config`]: where the server is, the API version, org and bucket (or database),
//!   credentials as [`Secret`]s, and the URLs and headers that follow;
//! - [`error`]: [`InfluxError`], and which [`StoreError`](crate::store::StoreError) kind each
//!   failure is;
//! - [`client`]: the blocking client, with both query transports (InfluxQL, Flux);
//! - [`write`]: the async write path with batching, retries, 413 splitting and a breaker;
//! - [`admin`]: `ohlcv influx setup` and deleting a load;
//! - [`line_protocol`]: how trades, candles and the manifest are encoded;
//! - [`influxql`] and [`flux`]: the two [`Store`] implementations, one per query language,
//!   chosen once by [`open`].

pub mod admin;
pub mod client;
pub mod config;
pub mod error;
pub mod flux;
pub mod influxql;
pub mod line_protocol;
pub mod write;

pub use admin::{SetupOutcome, clear, setup};
pub use config::{Api, InfluxConfig, QueryLanguage, Secret};
pub use error::{InfluxError, Result, error_message, transport_error};
pub use flux::FluxStore;
pub use influxql::InfluxqlStore;

use crate::store::{self, Manifest, Store, StoreError};

/// The store reading `config`'s target in its query language.
pub fn open(config: InfluxConfig) -> Result<Box<dyn Store>> {
    Ok(match config.query_language {
        QueryLanguage::Influxql => Box::new(InfluxqlStore::new(config)?),
        QueryLanguage::Flux => Box::new(FluxStore::new(config)?),
    })
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
    fn a_sharded_load_is_complete_when_all_shards_of_one_count_are() {
        use super::every_shard_done as done;
        assert!(!done(&[]));
        assert!(!done(&[(0, 2)]));
        assert!(done(&[(1, 2), (0, 2)]));
        assert!(!done(&[(0, 2), (1, 3), (2, 3)]));
        assert!(done(&[(0, 2), (1, 3), (2, 3), (0, 3)]));
    }
}

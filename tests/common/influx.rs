//! What the InfluxDB suites share, whichever server they run against: a configuration per API,
//! load options around a suite's write settings, running a load, serving one through the API,
//! and a load split into shards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ohlcv::api::AppState;
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::influx::{
    self, BatchStats, InfluxLoadOptions, InfluxLoadSummary, Shard, WriteOptions,
};
use ohlcv::ingest::jobs::Target;
use ohlcv::ingest::{IngestError, Progress};
use ohlcv::store::Store;
use ohlcv::store::influx::{Api, InfluxConfig, InfluxStore, QueryLanguage, Secret};

/// The organisation the test servers know.
pub const ORG: &str = "ohlcv-poc";

/// `bucket` at `url` (also the v1 database of that name), read in the API's own query
/// language: InfluxQL for v1, Flux for v2.
pub fn config(url: &str, api: Api, token: Option<&str>, bucket: &str) -> InfluxConfig {
    InfluxConfig {
        url: InfluxConfig::parse_url(url).unwrap(),
        api,
        token: token.map(Secret::new),
        org: ORG.into(),
        bucket: bucket.into(),
        database: bucket.into(),
        username: None,
        password: None,
        retention_days: 3650,
        query_language: match api {
            Api::V1 => QueryLanguage::Influxql,
            Api::V2 => QueryLanguage::Flux,
        },
    }
}

/// Loads `load` into `influx` with a suite's `write` settings, checkpointing in `checkpoints`.
pub fn options(
    load: GeneratorConfig,
    influx: InfluxConfig,
    write: WriteOptions,
    checkpoints: &Path,
) -> InfluxLoadOptions {
    InfluxLoadOptions {
        config: load,
        influx,
        write,
        shard: Shard::ALL,
        resume: false,
        replace: false,
        checkpoint_dir: checkpoints.to_path_buf(),
        threads: 2,
        retention_days: 3650,
        now: chrono::Utc::now(),
    }
}

pub type Outcome = (Result<InfluxLoadSummary, IngestError>, Arc<BatchStats>);

/// Runs the load `o`, returning its outcome and the statistics of its writes.
pub fn run(o: &InfluxLoadOptions) -> Outcome {
    run_with(o, &Progress::default())
}

/// Runs the load `o` reporting to `progress`, which another thread may watch.
pub fn run_with(o: &InfluxLoadOptions, progress: &Progress) -> Outcome {
    let stats = Arc::new(BatchStats::default());
    (influx::load(o, progress, &stats), stats)
}

/// Jobs loading into `influx` with `write` settings, checkpointing in `checkpoints`.
pub fn target(influx: InfluxConfig, write: WriteOptions, checkpoints: &Path) -> Target {
    Target::Influx {
        config: Box::new(influx),
        write,
        checkpoint_dir: checkpoints.to_path_buf(),
    }
}

/// `ohlcv serve`'s state reading `influx` and loading into it, `defaults` by default.
pub fn app_state(
    influx: InfluxConfig,
    write: WriteOptions,
    checkpoints: &Path,
    defaults: GeneratorConfig,
    timeout: Duration,
) -> AppState {
    super::app_state_over(
        Arc::new(InfluxStore::new(influx.clone()).unwrap()),
        target(influx, write, checkpoints),
        defaults,
        timeout,
    )
}

/// Loads `o` as `count` shards one after the other, each through `load_shard`, and asserts
/// that `store` reads the load as complete once all have run, and not before.
pub fn load_in_shards(
    store: &dyn Store,
    o: &InfluxLoadOptions,
    count: u32,
    mut load_shard: impl FnMut(InfluxLoadOptions),
) {
    for index in 0..count {
        // No shard knows whether the others finished: the load is complete once all of them
        // have left their mark.
        assert!(!store.manifest().is_ok_and(|m| m.complete));
        load_shard(InfluxLoadOptions {
            shard: Shard { index, count },
            ..o.clone()
        });
    }
    assert!(store.manifest().unwrap().complete);
}

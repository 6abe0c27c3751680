//! What the InfluxDB suites share, whichever server they run against: a configuration per API,
//! load options around a suite's write settings, running a load, serving one through the API,
//! and a load split into shards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ohlcv::api::AppState;
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::{
    self, BatchStats, IngestError, LoadSpec, LoadSummary, Progress, Shard, Target, WriteOptions,
};
use ohlcv::store::influx::{self, Api, Claim, InfluxConfig, QueryLanguage, Schema, Secret};
use ohlcv::store::{Manifest, Store};

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
        schema: Schema::Tags,
    }
}

/// A load into InfluxDB: where, with which write settings, and what.
#[derive(Debug, Clone)]
pub struct InfluxLoad {
    pub target: Target,
    pub spec: LoadSpec,
}

impl InfluxLoad {
    /// The write settings of the target.
    pub fn write(&mut self) -> &mut WriteOptions {
        match &mut self.target {
            Target::Influx { write, .. } => write,
            Target::Parquet { .. } => unreachable!("an InfluxDB load"),
        }
    }

    /// The same load with `--replace`.
    pub fn replacing(self) -> Self {
        Self {
            spec: LoadSpec {
                replace: true,
                ..self.spec
            },
            ..self
        }
    }
}

/// Loads `load` into `influx` with a suite's `write` settings, checkpointing in `checkpoints`.
pub fn options(
    load: GeneratorConfig,
    influx: InfluxConfig,
    write: WriteOptions,
    checkpoints: &Path,
) -> InfluxLoad {
    InfluxLoad {
        target: target(influx, write, checkpoints),
        spec: super::options(load),
    }
}

pub type Outcome = (Result<LoadSummary, IngestError>, Arc<BatchStats>);

/// Runs the load `o`, returning its outcome and the statistics of its writes.
pub fn run(o: &InfluxLoad) -> Outcome {
    run_with(o, &Progress::default())
}

/// Runs the load `o` reporting to `progress`, which another thread may watch.
pub fn run_with(o: &InfluxLoad, progress: &Progress) -> Outcome {
    let stats = Arc::new(BatchStats::default());
    (ingest::run(&o.target, &o.spec, progress, &stats), stats)
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
        Arc::from(influx::open(influx.clone()).unwrap()),
        target(influx, write, checkpoints),
        defaults,
        timeout,
    )
}

/// Loads `o` as `count` shards one after the other, each through `load_shard`, and asserts
/// that `store` reads the load as complete once all have run, and not before.
pub fn load_in_shards(
    store: &dyn Store,
    o: &InfluxLoad,
    count: u32,
    mut load_shard: impl FnMut(InfluxLoad),
) {
    for index in 0..count {
        // No shard knows whether the others finished: the load is complete once all of them
        // have left their mark.
        assert!(!store.manifest().is_ok_and(|m| m.complete));
        let mut shard = o.clone();
        shard.spec.shard = Shard { index, count };
        load_shard(shard);
    }
    assert!(store.manifest().unwrap().complete);
}

/// The claim the load of `load` (in any shard) writes when it starts, as `ingest` builds it:
/// now, leased for the next ten minutes.
pub fn claim_of(load: &GeneratorConfig) -> Claim {
    let manifest = Manifest::new(load.clone());
    let time = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    Claim {
        fingerprint: manifest.fingerprint(),
        load: manifest.describe(),
        time,
        lease_until: time + 600_000_000_000,
    }
}

/// The last claim of a load of `load` that died an hour ago: its lease has run out.
pub fn expired_claim_of(load: &GeneratorConfig) -> Claim {
    let claim = claim_of(load);
    let hour = 3_600_000_000_000;
    Claim {
        time: claim.time - hour,
        lease_until: claim.lease_until - hour,
        ..claim
    }
}

/// The loads that claimed `influx`, each once, by their fingerprints, in the order of their
/// first claims.
pub fn claimants(influx: &InfluxConfig) -> Vec<String> {
    let mut loads: Vec<String> = Vec::new();
    for claim in influx::claims(influx).unwrap() {
        if !loads.contains(&claim.fingerprint) {
            loads.push(claim.fingerprint);
        }
    }
    loads
}

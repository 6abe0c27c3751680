//! Against a real InfluxDB 1.x started by the harness: the v1 write and query APIs that
//! InfluxDB 2.x and 3.x serve too.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::influxd::Influxd;
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::influx::{
    self, BatchStats, InfluxLoadOptions, RetryPolicy, Shard, WriteOptions,
};
use ohlcv::ingest::{IngestError, Progress};
use ohlcv::store::influx::{Api, InfluxConfig, InfluxStore, QueryLanguage, SetupOutcome, setup};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::{Store, StoreError};
use ohlcv::verify;

fn config(server: &Influxd, database: &str) -> InfluxConfig {
    InfluxConfig {
        url: InfluxConfig::parse_url(&server.url()).unwrap(),
        api: Api::V1,
        token: None,
        org: "ohlcv-poc".into(),
        bucket: database.into(),
        database: database.into(),
        username: None,
        password: None,
        retention_days: 3650,
        query_language: QueryLanguage::Influxql,
    }
}

fn options(load: GeneratorConfig, influx: InfluxConfig, checkpoints: &Path) -> InfluxLoadOptions {
    InfluxLoadOptions {
        config: load,
        influx,
        write: WriteOptions {
            batch_lines: 5_000,
            retry: RetryPolicy {
                interval: Duration::from_millis(50),
                max_delay: Duration::from_millis(500),
                max_time: Duration::from_secs(60),
                ..RetryPolicy::default()
            },
            ..WriteOptions::default()
        },
        shard: Shard::ALL,
        resume: false,
        replace: false,
        checkpoint_dir: checkpoints.to_path_buf(),
        threads: 2,
        retention_days: 3650,
        now: chrono::Utc::now(),
    }
}

fn run(options: &InfluxLoadOptions) -> Result<influx::InfluxLoadSummary, IngestError> {
    influx::load(
        options,
        &Progress::default(),
        &Arc::new(BatchStats::default()),
    )
}

#[test]
fn round_trip_counts_candles_and_verify_match_the_embedded_store() {
    let server = Influxd::start();
    let influx = config(&server, "trades");
    assert_eq!(setup(&influx).unwrap(), SetupOutcome::Created);
    assert_eq!(
        setup(&influx).unwrap(),
        SetupOutcome::Exists,
        "setup is idempotent"
    );

    let load = common::small_config(40_000);
    let checkpoints = tempfile::tempdir().unwrap();
    let summary = run(&options(load.clone(), influx.clone(), checkpoints.path())).unwrap();
    assert_eq!(summary.written, 40_000);
    assert!(summary.batches.batches >= 8);

    let store = InfluxStore::new(influx.clone()).unwrap();
    let report = verify::verify(&store, 200, 3).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
    assert_eq!(report.trades_counted, 40_000);

    // The same seed in the embedded store gives the same trades and candles.
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(load.clone()));
    let parquet = ParquetStore::new(dir.path());
    let ny = chrono_tz::America::New_York;
    common::assert_same_data(
        &store,
        &parquet,
        &load,
        &[("1m", ny), ("1h", ny), ("1d", ny), ("1w", ny), ("7s", ny)],
        ("2024-02-20", "2024-04-10"),
    );

    // Loading again rewrites the same points: still exactly N.
    run(&options(load, influx, checkpoints.path())).unwrap();
    assert!(verify::verify(&store, 50, 4).unwrap().ok());
}

#[test]
fn a_missing_database_and_an_empty_one_are_reported() {
    let server = Influxd::start();
    let influx = config(&server, "nowhere");
    let checkpoints = tempfile::tempdir().unwrap();
    let err = run(&options(
        common::small_config(1_000),
        influx.clone(),
        checkpoints.path(),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    setup(&influx).unwrap();
    let store = InfluxStore::new(influx).unwrap();
    assert!(matches!(store.manifest(), Err(StoreError::Empty(_))));
}

#[test]
fn a_load_survives_the_server_being_killed_and_restarted() {
    let mut server = Influxd::start();
    let influx = config(&server, "trades");
    setup(&influx).unwrap();
    let load = GeneratorConfig {
        trades: 300_000,
        ..common::small_config(0)
    };
    let checkpoints = tempfile::tempdir().unwrap();
    let options = options(load, influx.clone(), checkpoints.path());
    let progress = Progress::default();
    let stats = Arc::new(BatchStats::default());

    let summary = std::thread::scope(|scope| {
        let loader = scope.spawn(|| influx::load(&options, &progress, &stats));
        // Kill the server once a tenth is acknowledged, start it again on the same data.
        common::poll_until(
            "a tenth of the load acknowledged (or the load over)",
            common::DEADLINE,
            || (progress.done.load(Ordering::Relaxed), loader.is_finished()),
            |&(acknowledged, finished)| acknowledged >= 30_000 || finished,
        );
        server.kill();
        server.restart();
        loader.join().unwrap()
    })
    .unwrap();
    assert_eq!(summary.written, 300_000);
    assert!(
        stats.summary().retried > 0,
        "writes failed while the server was down"
    );
    let store = InfluxStore::new(influx).unwrap();
    let report = verify::verify(&store, 300, 5).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
    assert_eq!(report.trades_counted, 300_000);
}

#[test]
fn shards_and_resume_write_each_chunk_exactly_once() {
    let server = Influxd::start();
    let influx = config(&server, "trades");
    setup(&influx).unwrap();
    let load = common::small_config(30_000);
    let checkpoints = tempfile::tempdir().unwrap();
    let store = InfluxStore::new(influx.clone()).unwrap();
    let mut total = 0;
    for index in 0..3 {
        let shard = Shard { index, count: 3 };
        let o = InfluxLoadOptions {
            shard,
            ..options(load.clone(), influx.clone(), checkpoints.path())
        };
        // No shard knows whether the others finished: the load is complete once all three
        // have left their mark.
        assert!(!store.manifest().is_ok_and(|m| m.complete));
        total += run(&o).unwrap().written;
        // The same shard resumed finds everything acknowledged.
        let again = run(&InfluxLoadOptions { resume: true, ..o }).unwrap();
        assert_eq!(again.written, 0);
    }
    assert_eq!(total, 30_000);
    assert!(store.manifest().unwrap().complete);
    let report = verify::verify(&store, 100, 6).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
    assert_eq!(report.trades_counted, 30_000);
}

/// A load started through the API into the real influxd, watched to the end with its batch
/// statistics, then served back by the same server.
#[test]
fn an_api_ingestion_writes_into_influxdb_and_is_served_back() {
    let server = Influxd::start();
    let influx = config(&server, "trades");
    setup(&influx).unwrap();
    let checkpoints = tempfile::tempdir().unwrap();
    let state = ohlcv::api::AppState::new(
        Arc::new(InfluxStore::new(influx.clone()).unwrap()),
        Arc::new(ohlcv::ingest::jobs::Jobs::new(
            ohlcv::ingest::jobs::Target::Influx {
                config: Box::new(influx),
                write: WriteOptions::default(),
                checkpoint_dir: checkpoints.path().to_path_buf(),
            },
        )),
        ohlcv::api::LoadDefaults {
            config: common::small_config(25_000),
            threads: 2,
            retention_days: 3650,
            replace: false,
            resume: false,
            shard: ohlcv::ingest::influx::Shard::ALL,
        },
        Duration::from_secs(30),
    );
    let (url, _rt) = common::serve(state);
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{url}/api/v1/ingestions"))
        .json(&serde_json::json!({"store": "influxdb"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let status = common::watch_to_the_end(&format!("{url}/api/v1/ingestions/1"));
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(status["processed"], 25_000);
    assert!(
        status["batches"]["batches"].as_u64().unwrap() >= 3,
        "{status}"
    );
    assert!(status["batches"]["bytes_sent"].as_u64().unwrap() > 1_000_000);
    let symbols: serde_json::Value = client
        .get(format!("{url}/api/v1/symbols"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let total: u64 = symbols["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["trades"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 25_000);
    let candles: serde_json::Value = client
        .get(format!(
            "{url}/api/v1/candles?symbol=AAPL&interval=1d&start=2024-03-01&end=2024-03-08"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(candles["candles"].as_array().unwrap().len(), 5, "{candles}");
}

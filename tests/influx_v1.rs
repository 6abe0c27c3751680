//! Against a real InfluxDB 1.x started by the harness: the v1 write and query APIs that
//! InfluxDB 2.x and 3.x serve too.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::influx::InfluxLoad;
use common::influx::{claim_of, claimants, expired_claim_of, load_in_shards, run, run_with};
use common::influxd::Influxd;
use common::{DEADLINE, assert_verifies, poll_until};
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::{IngestError, Progress};
use ohlcv::ingest::{RetryPolicy, WriteOptions};
use ohlcv::store::StoreError;
use ohlcv::store::influx::client::Client;
use ohlcv::store::influx::{self, Api, Claim, InfluxConfig, SetupOutcome, line_protocol, setup};
use ohlcv::verify;

fn config(server: &Influxd, database: &str) -> InfluxConfig {
    common::influx::config(&server.url(), Api::V1, None, database)
}

/// A fresh influxd holding the empty database `trades`.
fn with_trades_database() -> (Influxd, InfluxConfig) {
    let server = Influxd::start();
    let influx = config(&server, "trades");
    setup(&influx).unwrap();
    (server, influx)
}

/// Writes `claim` into `database` as a load does, through the v1 write API.
fn write_claim(server: &Influxd, database: &str, claim: &Claim) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/write?db={database}&precision=ns", server.url()))
        .body(line_protocol::claim_line(claim))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// Trades stored in `influx`, counted by the server.
fn trades_stored(influx: &InfluxConfig) -> u64 {
    let rows = Client::new(influx.clone())
        .unwrap()
        .influxql(
            "SELECT count(\"trade_id\") FROM \"trade\"",
            Some(&influx.database),
        )
        .unwrap();
    rows.first().map_or(0, |r| r[1].as_u64().unwrap())
}

/// The load's error, if it is the refusal of a store another load writes.
fn refused(outcome: &Result<ohlcv::ingest::LoadSummary, IngestError>) -> Option<String> {
    match outcome {
        Err(IngestError::Store(StoreError::Locked { holder, .. })) => Some(holder.clone()),
        _ => None,
    }
}

/// Retries patient enough to outlast a restart of influxd.
fn options(
    load: GeneratorConfig,
    influx: InfluxConfig,
    checkpoints: &std::path::Path,
) -> InfluxLoad {
    let write = WriteOptions {
        batch_lines: 5_000,
        retry: RetryPolicy {
            interval: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            max_time: Duration::from_secs(60),
            ..RetryPolicy::default()
        },
        ..WriteOptions::default()
    };
    common::influx::options(load, influx, write, checkpoints)
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
    let summary = run(&options(load.clone(), influx.clone(), checkpoints.path()))
        .0
        .unwrap();
    assert_eq!(summary.written, 40_000);
    assert!(summary.batches.unwrap().batches >= 8);

    let store = influx::open(influx.clone()).unwrap();
    assert_verifies(&*store, (200, 3), 40_000);

    // The same seed in the embedded store gives the same trades and candles.
    let (_dir, parquet) = common::embedded(&load);
    let ny = chrono_tz::America::New_York;
    common::assert_same_data(
        &*store,
        &parquet,
        &load,
        &[("1m", ny), ("1h", ny), ("1d", ny), ("1w", ny), ("7s", ny)],
        ("2024-02-20", "2024-04-10"),
    );

    // Loading again rewrites the same points: still exactly N.
    run(&options(load, influx, checkpoints.path())).0.unwrap();
    assert!(verify::verify(&*store, 50, 4).unwrap().ok());
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
    .0
    .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    setup(&influx).unwrap();
    let store = influx::open(influx).unwrap();
    assert!(matches!(store.manifest(), Err(StoreError::Empty(_))));
}

#[test]
fn a_load_survives_the_server_being_killed_and_restarted() {
    let (mut server, influx) = with_trades_database();
    let load = GeneratorConfig {
        trades: 300_000,
        ..common::small_config(0)
    };
    let checkpoints = tempfile::tempdir().unwrap();
    let options = options(load, influx.clone(), checkpoints.path());
    let progress = Progress::default();

    let (result, stats) = std::thread::scope(|scope| {
        let loader = scope.spawn(|| run_with(&options, &progress));
        // Kill the server once a tenth is acknowledged, start it again on the same data.
        poll_until(
            "a tenth of the load acknowledged (or the load over)",
            DEADLINE,
            || (progress.done.load(Ordering::Relaxed), loader.is_finished()),
            |&(acknowledged, finished)| acknowledged >= 30_000 || finished,
        );
        server.kill();
        server.restart();
        loader.join().unwrap()
    });
    let summary = result.unwrap();
    assert_eq!(summary.written, 300_000);
    assert!(
        stats.summary().retried > 0,
        "writes failed while the server was down"
    );
    let store = influx::open(influx).unwrap();
    assert_verifies(&*store, (300, 5), 300_000);
}

#[test]
fn shards_and_resume_write_each_chunk_exactly_once() {
    let (_server, influx) = with_trades_database();
    let load = common::small_config(30_000);
    let checkpoints = tempfile::tempdir().unwrap();
    let store = influx::open(influx.clone()).unwrap();
    let mut total = 0;
    load_in_shards(
        &*store,
        &options(load, influx, checkpoints.path()),
        3,
        |o| {
            total += run(&o).0.unwrap().written;
            // The same shard resumed finds everything acknowledged.
            let again = run(&InfluxLoad {
                spec: ohlcv::ingest::LoadSpec {
                    resume: true,
                    ..o.spec
                },
                ..o
            })
            .0
            .unwrap();
            assert_eq!(again.written, 0);
        },
    );
    assert_eq!(total, 30_000);
    assert_verifies(&*store, (100, 6), 30_000);
}

/// A load started through the API into the real influxd, watched to the end with its batch
/// statistics, then served back by the same server.
#[test]
fn an_api_ingestion_writes_into_influxdb_and_is_served_back() {
    let (_server, influx) = with_trades_database();
    let checkpoints = tempfile::tempdir().unwrap();
    let state = common::influx::app_state(
        influx,
        WriteOptions::default(),
        checkpoints.path(),
        common::small_config(25_000),
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

/// A different load claims the database (it has not written its manifest yet): a load is
/// refused before it writes anything, and takes its own claim back.
#[test]
fn a_load_is_refused_while_a_different_load_claims_the_database() {
    let (server, influx) = with_trades_database();
    let writing = GeneratorConfig {
        seed: 11,
        ..common::small_config(20_000)
    };
    let claim = claim_of(&writing);
    write_claim(&server, "trades", &claim);

    let checkpoints = tempfile::tempdir().unwrap();
    let (outcome, stats) = run(&options(
        common::small_config(20_000),
        influx.clone(),
        checkpoints.path(),
    ));
    let holder = refused(&outcome).unwrap_or_else(|| panic!("{outcome:?}"));
    assert!(holder.contains("seed 11"), "{holder}");
    let text = outcome.unwrap_err().to_string();
    assert!(
        text.starts_with("another load is writing ") && text.contains("try again"),
        "{text}"
    );
    assert_eq!(trades_stored(&influx), 0);
    assert_eq!(stats.summary().batches, 1, "the claim, and nothing else");
    let store = influx::open(influx.clone()).unwrap();
    assert!(matches!(store.manifest(), Err(StoreError::Empty(_))));
    assert_eq!(influx::claims(&influx).unwrap(), vec![claim]);
}

/// Shards of one load running at once on several machines share the load's claim.
#[test]
fn shards_of_one_load_running_together_do_not_refuse_each_other() {
    let (_server, influx) = with_trades_database();
    let load = common::small_config(30_000);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let start = std::sync::Barrier::new(2);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let shards: Vec<_> = (0..2)
            .map(|index| {
                let mut shard = options(load.clone(), influx.clone(), dirs[index as usize].path());
                shard.spec.shard = ohlcv::ingest::Shard { index, count: 2 };
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    run(&shard).0
                })
            })
            .collect();
        shards.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let written: u64 = outcomes.into_iter().map(|o| o.unwrap().written).sum();
    assert_eq!(written, 30_000);
    // Both shards claimed (a claim and its end each), as one load.
    let claims = influx::claims(&influx).unwrap();
    assert_eq!(claims.len(), 4, "{claims:?}");
    assert_eq!(claimants(&influx), vec![claim_of(&load).fingerprint]);
    let store = influx::open(influx).unwrap();
    assert_verifies(&*store, (100, 7), 30_000);
}

/// A claim left by a load that died before its manifest refuses other loads until --replace
/// deletes it with the rest, once its lease has run out; the replacing load then holds the
/// only claim.
#[test]
fn replace_deletes_a_dead_loads_claim_and_claims_anew() {
    let (server, influx) = with_trades_database();
    write_claim(
        &server,
        "trades",
        &expired_claim_of(&GeneratorConfig {
            seed: 11,
            ..common::small_config(20_000)
        }),
    );
    let load = common::small_config(20_000);
    let checkpoints = tempfile::tempdir().unwrap();
    let o = options(load.clone(), influx.clone(), checkpoints.path());
    assert!(refused(&run(&o).0).is_some());

    let replace = o.replacing();
    assert_eq!(run(&replace).0.unwrap().written, 20_000);
    assert_eq!(claimants(&influx), vec![claim_of(&load).fingerprint]);
    let store = influx::open(influx).unwrap();
    assert_verifies(&*store, (100, 8), 20_000);
}

/// Two different loads started together: whatever the interleaving, they never both write.
/// Either one wins and the store holds exactly its trades, or both back off having written
/// nothing and taken their claims back.
#[test]
fn two_different_loads_started_together_never_both_write() {
    let (_server, influx) = with_trades_database();
    let loads = [
        common::small_config(20_000),
        GeneratorConfig {
            seed: 12,
            ..common::small_config(25_000)
        },
    ];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let start = std::sync::Barrier::new(2);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let o = options(loads[i].clone(), influx.clone(), dirs[i].path());
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    run(&o).0
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..2).filter(|&i| outcomes[i].is_ok()).collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Err(e) = outcome {
            // Refused by the other's claim, or by its manifest if it got that far first.
            assert!(
                refused(outcome).is_some()
                    || matches!(e, IngestError::Store(StoreError::DifferentLoad { .. })),
                "load {i}: {e}"
            );
        }
    }
    match winners[..] {
        [winner] => {
            let store = influx::open(influx.clone()).unwrap();
            assert_eq!(store.manifest().unwrap().load, loads[winner]);
            assert_verifies(&*store, (100, 9), loads[winner].trades);
            assert_eq!(
                claimants(&influx),
                vec![claim_of(&loads[winner]).fingerprint]
            );
        }
        [] => {
            assert_eq!(trades_stored(&influx), 0);
            assert_eq!(claimants(&influx), Vec::<String>::new());
        }
        _ => panic!("both loads wrote"),
    }
}

/// A --replace started while a different load is writing is refused before it deletes or
/// writes anything, since the running load's claim is leased; once that load has ended, the
/// same --replace goes ahead and the store holds exactly its trades.
#[test]
fn replace_waits_for_a_different_load_still_writing() {
    let (_server, influx) = with_trades_database();
    let checkpoints = tempfile::tempdir().unwrap();
    let running = options(
        GeneratorConfig {
            seed: 11,
            ..common::small_config(3_000_000)
        },
        influx.clone(),
        checkpoints.path(),
    );
    let load = common::small_config(20_000);
    let o = options(load.clone(), influx.clone(), checkpoints.path());
    let replace = o.replacing();
    let progress = Progress::default();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| run_with(&running, &progress).0);
        poll_until(
            "the first load to write",
            DEADLINE,
            || progress.done.load(Ordering::Relaxed),
            |done| *done > 0,
        );
        let outcome = run(&replace).0;
        let holder = refused(&outcome).unwrap_or_else(|| panic!("{outcome:?}"));
        assert!(
            holder.contains("seed 11") && holder.contains("writing until"),
            "{holder}"
        );
        // The first load was left alone, and finishes whole.
        assert_eq!(first.join().unwrap().unwrap().written, 3_000_000);
    });
    assert_eq!(trades_stored(&influx), 3_000_000);

    assert_eq!(run(&replace).0.unwrap().written, 20_000);
    let store = influx::open(influx.clone()).unwrap();
    assert_verifies(&*store, (100, 8), 20_000);
    assert_eq!(claimants(&influx), vec![claim_of(&load).fingerprint]);
}

#[test]
fn a_load_older_than_the_retention_fails_saying_why() {
    let server = Influxd::start();
    let checkpoints = tempfile::tempdir().unwrap();

    // Refused up front when the configured retention does not reach back to the load.
    let short = InfluxConfig {
        retention_days: 30,
        ..config(&server, "short")
    };
    setup(&short).unwrap();
    let err = run(&options(
        common::small_config(1_000),
        short.clone(),
        checkpoints.path(),
    ))
    .0
    .unwrap_err();
    assert!(
        matches!(err, IngestError::BeyondRetention { days: 30, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("30 days") && message.contains("--influxdb-retention"),
        "{message}"
    );
    assert_eq!(trades_stored(&short), 0);

    // A target whose own retention is shorter than configured: the server's refusal ends it.
    let created_short = InfluxConfig {
        retention_days: 1,
        ..config(&server, "created_short")
    };
    setup(&created_short).unwrap();
    let err = run(&options(
        common::small_config(1_000),
        InfluxConfig {
            retention_days: 3650,
            ..created_short.clone()
        },
        checkpoints.path(),
    ))
    .0
    .unwrap_err();
    let chain = ohlcv::telemetry::chain(&err);
    assert!(chain.contains("beyond retention policy"), "{chain}");
    assert_eq!(trades_stored(&created_short), 0);
}

/// The commands a user types against InfluxDB 1.x: setup, load, verify, candles, each a
/// process of its own.
#[test]
fn the_cli_loads_verifies_and_reads_influxdb() {
    let server = Influxd::start();
    let dir = tempfile::tempdir().unwrap();
    let ohlcv = |args: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ohlcv"))
            .args(["--data-dir"])
            .arg(dir.path())
            .args(["--store", "influxdb", "--influxdb-api", "v1"])
            .args(["--influxdb-url", &server.url()])
            .args(args.split_whitespace())
            .env_remove("INFLUXDB_TOKEN")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args}: {text}");
        text
    };
    assert!(ohlcv("influx setup").contains("created"));
    let summary = ohlcv(
        "load --trades 5000 --symbols AAPL,MSFT --start 2024-03-04 --end 2024-03-08 --batch-lines 1000",
    );
    assert!(summary.contains("trades          5000"), "{summary}");
    assert!(summary.contains("chunks"), "{summary}");
    assert!(ohlcv("verify --sample 50").contains("OK"));
    let candles = ohlcv(
        "candles --symbol AAPL --interval 1d --start 2024-03-04 --end 2024-03-09 --format csv",
    );
    assert_eq!(candles.lines().count(), 6, "{candles}");
}

//! `ohlcv bench influx` against a real influxd 1.x started by the harness, with small loads:
//! every schema variant loads, reads back and verifies; the report's figures are present and
//! agree with each other and with the server's data directory; a configuration that cannot
//! hold the trades is reported rejected with its reason while the rest of the matrix runs.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::influxd::Influxd;
use ohlcv::bench::server::Probe;
use ohlcv::bench::workload::{self, CandlePath};
use ohlcv::bench::{self, BenchOptions, Matrix, Vary};
use ohlcv::ingest::Progress;
use ohlcv::store::influx::client::Client;
use ohlcv::store::influx::{Api, Precision, Schema};

const TRADES: u64 = 20_000;

fn options(server: &Influxd, scratch: &std::path::Path) -> BenchOptions {
    BenchOptions {
        load: common::small_config(TRADES),
        matrix: Matrix {
            schemas: Schema::ALL.to_vec(),
            batch_lines: vec![2_000],
            writers: vec![2],
            gzip: vec![false, true],
            precision: vec![Precision::Ns, Precision::Ms, Precision::Us],
            vary: Vary::One,
        },
        query_runs: 2,
        verify_sample: 100,
        threads: 2,
        prefix: "bench_test".into(),
        server_pid: Some(server.pid()),
        server_data_dirs: server.data_dirs(),
        scratch: scratch.join("checkpoints"),
        // The harness's server snapshots its WAL only after 10 minutes without writes.
        compaction_wait: Duration::from_secs(1),
    }
}

#[test]
fn every_schema_verifies_figures_agree_and_a_colliding_precision_is_rejected() {
    let server = Influxd::start();
    let config = common::influx::config(&server.url(), Api::V1, None, "unused");
    let scratch = tempfile::tempdir().unwrap();
    let mut heard = Vec::new();
    let report = bench::run(
        &config,
        &options(&server, scratch.path()),
        &Progress::default(),
        |run| heard.push(run.settings.label()),
    )
    .unwrap();

    assert_eq!(report.server.version.as_deref(), Some("1.6.7~rc0"));
    assert_eq!(report.server.url, format!("{}/", server.url()));
    // Every schema, gzip, then ms (rejected) and us: the matrix went on after the rejection.
    let n = Schema::ALL.len();
    assert_eq!(report.runs.len(), n + 3, "{heard:?}");
    assert_eq!(heard.len(), n + 3);
    let schemas: Vec<Schema> = report.runs.iter().take(n).map(|r| r.schema).collect();
    assert_eq!(schemas, Schema::ALL);
    let ms = &report.runs[n + 1];
    assert_eq!(ms.settings.precision, Precision::Ms);
    let reason = ms.rejected.as_deref().unwrap();
    assert!(
        reason.contains("precision ms would cut the times of"),
        "{reason}"
    );
    assert!(!ms.verified && ms.trades_per_second.is_none() && ms.disk_bytes.is_none());
    assert_eq!(report.runs[n + 2].settings.precision, Precision::Us);

    for run in report.runs.iter().filter(|r| r.rejected.is_none()) {
        let label = run.settings.label();
        assert!(run.verified, "{label}");
        assert_eq!(run.trades, Some(TRADES), "{label}");
        let (seconds, rate) = (run.seconds.unwrap(), run.trades_per_second.unwrap());
        assert!((rate * seconds - TRADES as f64).abs() < 1.0, "{label}");
        let latency = run.write_latency_ms.unwrap();
        assert!(0.0 < latency.p50 && latency.p50 <= latency.p99, "{label}");
        assert!(run.server_cpu_seconds.unwrap() >= 0.0, "{label}");
        assert!(run.server_peak_rss_bytes.unwrap() > 0, "{label}");
        // The server counts its TSM files and WAL; the directory also holds the database's
        // series file and index.
        let (disk, dir) = (run.disk_bytes.unwrap(), run.data_dir_bytes.unwrap());
        assert!(0 < disk && disk <= dir, "{label}: {disk} {dir}");
        assert_eq!(run.bytes_per_trade, Some(disk as f64 / TRADES as f64));
        assert_eq!(
            run.disk_bytes_compacted, None,
            "{label}: not compacted within 1 s"
        );
        assert!(run.bytes_sent.unwrap() > 0);

        // Every query answered, and each candle query returns as many candles on every path.
        let mut rows: HashMap<&str, u64> = HashMap::new();
        for q in run
            .queries
            .iter()
            .filter(|q| q.name != workload::DOWNSAMPLE)
        {
            assert_eq!(q.error, None, "{label}: {}", q.name);
            assert!(
                q.cold_ms.is_some() && q.p50_ms <= q.p99_ms,
                "{label}: {q:?}"
            );
            let seen = *rows.entry(q.name.as_str()).or_insert(q.rows.unwrap());
            assert_eq!(
                Some(seen),
                q.rows,
                "{label}: {} on {:?}",
                q.name,
                q.candle_path
            );
        }
        assert_eq!(rows.get("last 100 trades"), Some(&100));
        assert!(rows["1m candles, a day"] > 0 && rows["1d candles, the load"] > 0);
        for path in [
            CandlePath::Stored1m,
            CandlePath::ServerGroupBy,
            CandlePath::Downsampled,
        ] {
            assert_eq!(
                run.queries.iter().filter(|q| q.candle_path == path).count(),
                if path == CandlePath::Downsampled {
                    4
                } else {
                    3
                },
                "{label}: {path:?}"
            );
        }
    }

    // Every database the benchmark created is dropped.
    let databases = Client::new(config.clone())
        .unwrap()
        .influxql("SHOW DATABASES", None)
        .unwrap();
    assert!(
        !databases
            .iter()
            .any(|row| row[0].as_str().unwrap().starts_with("bench_test")),
        "{databases:?}"
    );

    // The files: a figure that could not be read is null, not 0.
    let dir = scratch.path().join("report");
    report.write(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs[0]["schema"], "tags");
    assert_eq!(runs[0]["settings"]["precision"], "ns");
    assert_eq!(runs[0]["candle_path"], "stored_1m");
    assert_eq!(runs[n - 1]["schema"], "no_trade_id");
    assert!(runs[n + 1]["trades_per_second"].is_null() && runs[n + 1]["rejected"].is_string());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("rejected: precision ms"), "{md}");
    assert!(md.contains("| throughput |"), "{md}");
    for chart in ["throughput.svg", "bytes_per_trade.svg", "query_latency.svg"] {
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{chart}");
    }
}

/// On a server that compacts a second after the last write, the disk after compaction is
/// read once the WAL is snapshotted into TSM files, which hold the trades in less than the
/// WAL did; without waiting it is not read.
#[test]
fn the_disk_after_compaction_is_read_once_the_server_has_compacted() {
    let server = Influxd::start_compacting();
    let config = common::influx::config(&server.url(), Api::V1, None, "unused");
    let scratch = tempfile::tempdir().unwrap();
    let base = options(&server, scratch.path());
    let one = |compaction_wait| BenchOptions {
        matrix: Matrix {
            schemas: vec![Schema::Tags],
            gzip: vec![false],
            precision: vec![Precision::Ns],
            ..base.matrix.clone()
        },
        compaction_wait,
        ..base.clone()
    };
    let compacted = |options: &BenchOptions| {
        let report = bench::run(&config, options, &Progress::default(), |_| {}).unwrap();
        let run = report.runs.into_iter().next().unwrap();
        assert!(run.verified);
        run
    };
    let run = compacted(&one(Duration::from_secs(120)));
    let (after, before) = (run.disk_bytes_compacted.unwrap(), run.disk_bytes.unwrap());
    assert!(0 < after && after < before, "{after} {before}");
    assert_eq!(
        run.bytes_per_trade_compacted,
        Some(after as f64 / TRADES as f64)
    );
    let unmeasured = compacted(&one(Duration::ZERO));
    assert_eq!(unmeasured.disk_bytes_compacted, None);
    assert_eq!(unmeasured.bytes_per_trade_compacted, None);
}

#[test]
fn without_the_pid_memory_comes_from_debug_vars_and_cpu_is_unknown() {
    let server = Influxd::start();
    let config = common::influx::config(&server.url(), Api::V1, None, "unused");
    let probe = Probe::new(&config, None, Vec::new()).unwrap();
    assert!(probe.memory_bytes().unwrap() > 0);
    assert_eq!(probe.cpu_seconds(), None, "1.x publishes no CPU figure");
    assert_eq!(probe.data_dir_bytes("unused"), None);
    assert_eq!(probe.disk_bytes(&config), None, "no such database");
    let local = Probe::new(&config, Some(server.pid()), server.data_dirs()).unwrap();
    assert!(local.cpu_seconds().is_some());
}

/// The command as a user runs it: a matrix file and flags for a one-configuration matrix
/// plus a precision the trades do not fit, the flags winning over the file; a report on disk,
/// a line per configuration, and the report's path.
#[test]
fn the_command_writes_its_report_and_names_each_configuration() {
    let server = Influxd::start();
    let report = tempfile::tempdir().unwrap();
    let matrix = report.path().join("matrix.toml");
    std::fs::write(
        &matrix,
        "schema = [\"no_trade_id\"]\nwriters = [3]\nprecision = [\"ns\", \"ms\"]\n",
    )
    .unwrap();
    let data_dirs: Vec<String> = server
        .data_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ohlcv"))
        .args(["--store", "influxdb", "--influxdb-api", "v1"])
        .args(["--influxdb-url", &server.url()])
        .args([
            "bench",
            "influx",
            "--trades",
            "5000",
            "--symbols",
            "AAPL,MSFT",
        ])
        .args(["--start", "2024-03-04", "--end", "2024-03-08"])
        .arg("--matrix")
        .arg(&matrix)
        .args(["--batch-lines", "2000", "--writers", "1"])
        .args(["--gzip", "false", "--query-runs", "2"])
        .args([
            "--verify-sample",
            "50",
            "--server-pid",
            &server.pid().to_string(),
        ])
        .args(["--server-data-dir", &data_dirs.join(",")])
        .arg("--report")
        .arg(report.path())
        .env_remove("INFLUXDB_URL")
        .env_remove("INFLUXDB_TOKEN")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 configurations; report in"), "{stdout}");
    assert!(stderr.contains("trades/s, verified: true"), "{stderr}");
    assert!(stderr.contains("rejected:"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path().join("report.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{json}");
    assert_eq!(runs[0]["schema"], "no_trade_id", "from the file");
    assert_eq!(runs[0]["settings"]["writers"], 1, "the flag over the file");
    assert_eq!(runs[1]["settings"]["precision"], "ms", "from the file");
    assert!(report.path().join("report.md").is_file());
}

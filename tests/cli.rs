//! The `ohlcv` binary end to end on small loads in temporary directories.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use ohlcv::store::publish::{DirLock, Holder};

/// `ohlcv --data-dir DIR ARGS`, with `args` written as on a command line: no value here holds
/// a space.
fn command(dir: &Path, args: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ohlcv"));
    c.arg("--data-dir")
        .arg(dir)
        .args(args.split_whitespace())
        .env_remove("OHLCV_DATA_DIR")
        // Set for the real-2.x suite, it would choose InfluxDB for every command here.
        .env_remove("INFLUXDB_URL");
    c
}

fn ohlcv(dir: &Path, args: &str) -> Output {
    command(dir, args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ohlcv runs")
}

/// `command` on the embedded store whatever the environment selects, logging warnings only.
fn parquet_command(dir: &Path, args: &str) -> Command {
    let mut c = command(dir, args);
    c.args(["--store", "parquet"])
        .env_remove("OHLCV_STORE")
        .env_remove("INFLUXDB_URL")
        .env("RUST_LOG", "warn");
    c
}

/// Waits until `child` has written itself into `dir`'s lock file, i.e. holds the lock; fails
/// if it exits first.
fn wait_until_it_holds_the_lock(dir: &Path, child: &mut Child) -> Holder {
    let pid = child.id();
    let (holder, exited) = common::poll_until(
        "the load to hold the data directory's lock",
        common::DEADLINE,
        || (DirLock::holder(dir), child.try_wait().unwrap()),
        |(holder, exited)| holder.as_ref().is_some_and(|h| h.pid == pid) || exited.is_some(),
    );
    assert_eq!(
        exited, None,
        "the load ended before it was seen holding the lock"
    );
    holder.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

const SMALL: &str =
    "load --trades 20000 --symbols AAPL,MSFT --start 2024-03-01 --end 2024-03-31 --seed 3";

#[test]
fn load_query_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = ohlcv(dir.path(), SMALL);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    for field in [
        "trades          20000",
        "seconds",
        "trades/s",
        "peak RSS",
        "bytes on disk",
    ] {
        assert!(summary.contains(field), "{summary}");
    }

    let candles = ohlcv(
        dir.path(),
        "candles --symbol AAPL --interval 1d --start 2024-03-01 --end 2024-04-01",
    );
    assert!(candles.status.success(), "{}", stderr(&candles));
    let text = stdout(&candles);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("time,symbol,open,high,low,close,volume,trades,vwap")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        20,
        "March 2024 has 20 sessions (Good Friday the 29th)"
    );
    assert!(rows[0].starts_with("2024-03-01T05:00:00.000000000Z,AAPL,"));
    let trades_in_candles: u64 = rows
        .iter()
        .map(|r| r.split(',').nth(7).unwrap().parse::<u64>().unwrap())
        .sum();

    let trades = ohlcv(
        dir.path(),
        "trades --symbol AAPL --start 2024-03-01 --end 2024-04-01",
    );
    assert!(trades.status.success());
    let text = stdout(&trades);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("time,symbol,side,price,amount,trade_id"));
    let csv_rows: Vec<&str> = lines.collect();
    assert_eq!(csv_rows.len() as u64, trades_in_candles);
    // The csv prices are the stored ones exactly, half cents with their third decimal.
    let store = ohlcv::store::parquet::ParquetStore::new(dir.path());
    let stored = ohlcv::store::Store::trades(
        &store,
        &ohlcv::model::Symbol::new("AAPL").unwrap(),
        0,
        i64::MAX / 2,
        None,
    )
    .unwrap();
    let printed: Vec<String> = stored
        .prices
        .iter()
        .map(|p| ohlcv::model::Price::from_units(*p).unwrap().to_string())
        .collect();
    let csv_prices: Vec<&str> = csv_rows
        .iter()
        .map(|r| r.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(csv_prices, printed);
    assert!(
        csv_prices
            .iter()
            .any(|p| p.ends_with('5') && p.len() - p.find('.').unwrap() == 4),
        "no half-cent price in the csv"
    );
    let json = ohlcv(
        dir.path(),
        "trades --symbol AAPL --start 2024-03-01 --end 2024-04-01 --format json",
    );
    let json_text = stdout(&json);
    let json_prices: Vec<&str> = json_text
        .split("\"price\":")
        .skip(1)
        .map(|s| s.split(',').next().unwrap())
        .collect();
    assert_eq!(json_prices, printed, "JSON prices are the exact decimals");

    let limited = ohlcv(
        dir.path(),
        "trades --symbol AAPL --start 2024-03-01 --end 2024-04-01 --limit 2 --format json",
    );
    let json: serde_json::Value = serde_json::from_slice(&limited.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["trade_id"], 0);
    assert!(json[0]["side"] == "buy" || json[0]["side"] == "sell");

    let json = ohlcv(
        dir.path(),
        concat!(
            "candles --symbol MSFT --interval 1h --start 2024-03-04 --end 2024-03-05",
            " --format json --fill null",
        ),
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["symbol"], "MSFT");
    assert_eq!(doc["interval"], "1h");
    assert_eq!(doc["tz"], "America/New_York");
    assert_eq!(doc["candles"].as_array().unwrap().len(), 7);

    let table = ohlcv(
        dir.path(),
        "candles --symbol MSFT --interval 1mo --start 2024-01-01 --end 2025-01-01 --format table",
    );
    assert_eq!(stdout(&table).lines().count(), 2);

    // The realism report: a table by default, csv and JSON one row per symbol.
    let table = ohlcv(dir.path(), "stats");
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("20000 trades, AAPL,MSFT,"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("realised_vol")),
        "{text}"
    );
    let csv = stdout(&ohlcv(dir.path(), "stats --format csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(
        lines[0],
        concat!(
            "symbol,sessions,trades,volume,volume_share,trade_share,mean_size,realised_vol,",
            "kurtosis_5m,kurtosis_30m,kurtosis_1d,kurtosis_5d,acf_5m,acf_abs_5m,acf_30m,acf_1d,",
            "acf_abs_1d,leverage_1d,volume_vol_5m,volume_vol_1d,u_open,u_close,size_p10,size_p50,",
            "size_p90,size_p99,odd_lot_share,roll_spread_cents,roll_spread_bps,open_auction_share,",
            "close_auction_share"
        )
    );
    assert!(lines[1].starts_with("AAPL,20,") && lines[2].starts_with("MSFT,20,"));
    let json = ohlcv(dir.path(), "stats --symbols MSFT --format json");
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["symbols"].as_array().unwrap().len(), 1);
    assert_eq!(doc["symbols"][0]["symbol"], "MSFT");
    assert!(doc["symbols"][0]["realised_vol"].as_f64().unwrap() > 0.0);
    let from_env = command(dir.path(), "stats --format csv")
        .env("OHLCV_STATS_SYMBOLS", "MSFT")
        .output()
        .unwrap();
    assert_eq!(stdout(&from_env).lines().count(), 2);

    let verify = ohlcv(dir.path(), "verify --sample 300");
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("OK"));

    // The same load again is a no-op.
    let again = ohlcv(dir.path(), SMALL);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("written         0 "),
        "{}",
        stdout(&again)
    );

    // A different one is refused with a clear message, then replaced when asked.
    let other = SMALL.replace("--seed 3", "--seed 4");
    let refused = ohlcv(dir.path(), &other);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--replace"),
        "{}",
        stderr(&refused)
    );
    assert!(
        ohlcv(dir.path(), &format!("{other} --replace"))
            .status
            .success()
    );
    assert!(ohlcv(dir.path(), "verify --sample 50").status.success());
}

#[test]
fn verify_fails_on_a_tampered_manifest() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ohlcv(dir.path(), SMALL).status.success());
    let path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"seed\": 3", "\"seed\": 5")).unwrap();
    let out = ohlcv(dir.path(), "verify --sample 100");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("MISMATCH"), "{}", stdout(&out));
}

#[test]
fn bad_arguments_get_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ohlcv(dir.path(), SMALL).status.success());
    let cases = [
        "load --trades -5",
        "load --trades 0",
        "load --symbols aapl",
        "load --start 2024-02-30",
        "load --start 2024-03-02 --end 2024-03-03",
        "load --start 2024-03-05 --end 2024-03-01",
        "load --store influxdb --influxdb-retention forever",
        "load --trades 1000 --start 1500-01-01 --end 1500-02-01",
        "load --trades 1000 --start 1997-01-01 --end 1997-02-01",
        "load --trades 1000 --start 0001-01-01 --end 0001-02-01",
        "load --trades 1000 --start 9999-01-01 --end 9999-02-01",
        "load --trades 1000 --start 2262-01-01 --end 2262-02-01",
        "load --trades 1000 --start 0001-01-01T00:00:00Z",
        "candles --symbol AAPL --interval 1m --start 1500-01-01 --end 2024-03-02",
        "candles --symbol AAPL --interval 0m --start 2024-03-01 --end 2024-03-02",
        "candles --symbol AAPL --interval 1y --start 2024-03-01 --end 2024-03-02",
        "candles --symbol AAPL --interval 1m --start yesterday --end 2024-03-02",
        "candles --symbol AAPL --interval 1m --start 2024-03-02 --end 2024-03-01",
        "candles --symbol AAPL --interval 1m --start 2024-03-01 --end 2024-03-02 --tz Mars/Olympus",
        "candles --symbol AAPL --interval 1m --start 2024-03-01 --end 2024-03-02 --fill zero",
        "candles --symbol AAPL --interval 1m --start 2024-03-01 --end 2024-03-02 --format xml",
        "trades --symbol AAPL --start 2024-03-01",
        "trades --symbol A;B --start 2024-03-01 --end 2024-03-02",
        "stats --symbols aapl",
        "stats --symbols AAPL,NVDA",
        "stats --format xml",
        "serve --port 0 --start 2024-12-25 --end 2024-12-25",
        "frobnicate",
    ];
    for args in cases {
        let out = ohlcv(dir.path(), args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args.contains("1500-")
            || args.contains("0001-")
            || args.contains("199")
            || args.contains("2262-")
            || args.contains("9999-")
        {
            assert!(
                err.contains("the supported years 1998 to 2261"),
                "{args:?}: {err}"
            );
        }
    }
    // Reading an empty directory says what to do.
    let empty = tempfile::tempdir().unwrap();
    for args in ["verify", "stats"] {
        let out = ohlcv(empty.path(), args);
        assert!(
            stderr(&out).contains("run `ohlcv load` first"),
            "{args}: {}",
            stderr(&out)
        );
    }
}

/// A matrix file with an unknown key or a bad value stops `bench influx` before it reaches
/// the server, with one line naming the file, the line and the problem.
#[test]
fn a_bad_matrix_file_gets_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "gzip = [true]\nwriter = [2]\n",
            "line 2: unknown field `writer`",
        ),
        (
            "schema = [\"tags\", \"tag\"]\n",
            "line 1: unknown variant `tag`",
        ),
        ("writers = [0]\n", "writers: 0 is not in 1..=256"),
    ];
    for (i, (text, want)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("matrix{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = command(
            dir.path(),
            "--store influxdb --influxdb-api v1 --influxdb-url http://127.0.0.1:9 bench influx",
        )
        .arg("--matrix")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{text:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{text:?}: {err}");
        assert!(
            err.contains(&format!("the matrix file {}: {want}", file.display())),
            "{text:?}: {err}"
        );
    }
    let out = command(
        dir.path(),
        "--store influxdb bench influx --matrix nowhere.toml",
    )
    .env("RUST_LOG", "warn")
    .output()
    .unwrap();
    assert!(
        stderr(&out).contains("cannot read the matrix file nowhere.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_killed_load_leaves_only_complete_partitions_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        "load --trades 3000000 --symbols AAPL --start 2024-01-01 --end 2024-12-31 --threads 1";
    let mut child = command(dir.path(), args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the manifest lists its first published partition; a load that ends first,
    // however it ends, leaves the assertions below to say what it left.
    let listed = || {
        ohlcv::store::Manifest::read(dir.path())
            .ok()
            .flatten()
            .map_or(0, |m| m.partitions.len())
    };
    common::poll_until(
        "the manifest to list a partition",
        common::DEADLINE,
        || (listed(), child.try_wait().unwrap()),
        |(partitions, exited)| *partitions > 0 || exited.is_some(),
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let manifest = ohlcv::store::Manifest::read(dir.path()).unwrap().unwrap();
    assert!(!manifest.partitions.is_empty());
    if !status.success() {
        assert!(!manifest.complete, "killed before the end, so not complete");
        // Whatever is listed is readable and exact.
        let out = ohlcv(
            dir.path(),
            "trades --symbol AAPL --start 2024-01-01 --end 2024-02-01 --limit 1",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let resumed = ohlcv(dir.path(), args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let verify = ohlcv(dir.path(), "verify --sample 200");
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("trades counted       3000000"));
}

#[test]
fn influx_credentials_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: every command fails, and says why without the token.
    let port = common::free_port();
    let secret = "tok-3f9a-never-print-me";
    let run = |args: &str| {
        command(dir.path(), args)
            .env("OHLCV_STORE", "influxdb")
            .env("INFLUXDB_URL", format!("http://127.0.0.1:{port}"))
            .env("INFLUXDB_TOKEN", secret)
            .env("INFLUXDB_PASSWORD", secret)
            .env("OHLCV_MAX_RETRY_TIME_MS", "0")
            .output()
            .unwrap()
    };
    let commands = [
        "influx setup",
        "load --trades 1000 --symbols AAPL --start 2024-03-01 --end 2024-03-05",
        "candles --symbol AAPL --interval 1m --start 2024-03-01 --end 2024-03-02",
        "verify",
        "--help",
        "load --help",
    ];
    for args in commands {
        let out = run(args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !text.contains(secret),
            "{args:?} printed the secret: {text}"
        );
        if !args.split_whitespace().any(|a| a == "--help") {
            assert!(!out.status.success(), "{args:?}");
            assert!(
                text.contains("unreachable") || text.contains("InfluxDB"),
                "{args:?}: {text}"
            );
        }
    }
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ohlcv"))
        .args(
            "--store influxdb --influxdb-url http://127.0.0.1:9 --influxdb-token-file"
                .split_whitespace(),
        )
        .arg(dir.path().join("missing-token"))
        .args(["influx", "setup"])
        .env_remove("INFLUXDB_TOKEN")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("cannot read the token file"),
        "{}",
        stderr(&out)
    );
}

/// The scenario: a second load, with --replace, into a directory another load is
/// writing. It is started once the first holds the lock, so the race always goes the same way.
#[test]
fn a_second_load_into_a_directory_being_written_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let load = "load --trades 4000000 --symbols AAPL,MSFT --start 2024-01-01 --end 2024-12-31";
    let mut winner = parquet_command(dir.path(), &format!("{load} --seed 1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let holder = wait_until_it_holds_the_lock(dir.path(), &mut winner);
    assert_eq!(holder.command, "ohlcv load");

    let loser = parquet_command(dir.path(), &format!("{load} --seed 2 --replace"))
        .output()
        .unwrap();
    let err = stderr(&loser);
    assert_eq!(loser.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: another load is writing "), "{err}");
    assert!(
        err.contains(&format!("pid {} (ohlcv load) started ", winner.id())),
        "{err}"
    );
    // It gave up without waiting for the lock: the winner is still loading.
    assert_eq!(winner.try_wait().unwrap(), None);

    let won = winner.wait_with_output().unwrap();
    assert!(won.status.success(), "{}", stderr(&won));
    assert!(stdout(&won).contains("written         4000000 "));
    let verify = parquet_command(dir.path(), "verify --sample 200")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("trades counted       4000000"));
    let manifest = ohlcv::store::Manifest::read(dir.path()).unwrap().unwrap();
    assert_eq!(manifest.load.seed, 1);
}

/// SIGKILL gives a load no chance to unlock: the kernel releases the lock with the process,
/// so the next load proceeds although the lock file still names the dead one.
#[test]
fn a_killed_load_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut killed = parquet_command(
        dir.path(),
        "load --trades 3000000 --symbols AAPL --start 2024-01-01 --end 2024-12-31 --seed 1",
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = wait_until_it_holds_the_lock(dir.path(), &mut killed).pid;
    killed.kill().unwrap();
    assert!(!killed.wait().unwrap().success());
    assert_eq!(DirLock::holder(dir.path()).map(|h| h.pid), Some(pid));

    let next = parquet_command(dir.path(), &format!("{SMALL} --replace"))
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", stderr(&next));
    let verify = parquet_command(dir.path(), "verify --sample 100")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("trades counted       20000"));
}

#[test]
fn a_second_signal_ends_a_load_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A server that accepts connections and never answers: the first signal's clean stop
    // waits on a request in flight, so only the second can end the load now.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let log = dir.path().join("load.log");
    let mut child = command(
        dir.path(),
        "load --trades 1000 --symbols AAPL --start 2024-03-01 --end 2024-03-05",
    )
    .env("OHLCV_STORE", "influxdb")
    .env(
        "INFLUXDB_URL",
        format!("http://{}", silent.local_addr().unwrap()),
    )
    .env("INFLUXDB_TOKEN", "t")
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let signal = |child: &Child| {
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    let log_once = |what: &str, text: &str| {
        common::poll_until(
            what,
            common::DEADLINE,
            || std::fs::read_to_string(&log).unwrap(),
            |log| log.contains(text),
        );
    };
    // Signals are heard once the load runs under watch, which logs its progress.
    log_once("the load to report progress", "load progress");
    signal(&child);
    log_once(
        "the load to start stopping",
        "a second signal exits at once",
    );
    signal(&child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("second signal: exiting now")
    );
    drop(silent);
}

#[test]
fn a_second_signal_ends_the_server_at_once_while_a_load_is_stuck() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mut server = common::process::ServeProcess::start(
        &[
            ("INFLUXDB_URL", &url),
            ("INFLUXDB_TOKEN", "t"),
            ("RUST_LOG", "info"),
        ],
        &[],
    );
    let started = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/ingestions", server.url))
        .json(&serde_json::json!({"trades": 1000, "symbols": ["AAPL"], "start": "2024-03-01", "end": "2024-03-05"}))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    // The load waits on a server that never answers, so the clean stop cannot finish.
    server.signal("TERM");
    server.wait_for_log("a second signal exits at once");
    server.signal("TERM");
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", server.log());
    drop(silent);
}

/// Two processes, each a shard of one load, write one directory at once; each says what it
/// wrote, and the dataset verifies once both have published.
#[test]
fn shard_processes_build_one_dataset_together() {
    let dir = tempfile::tempdir().unwrap();
    let load =
        "load --trades 600000 --symbols AAPL,MSFT --start 2024-01-01 --end 2024-06-30 --seed 4";
    let shards: Vec<_> = (0..2)
        .map(|k| {
            parquet_command(dir.path(), &format!("{load} --shard {k}/2 --threads 1"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut written = 0;
    for shard in shards {
        let out = shard.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(" (3 partitions, 0 already on disk)"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("written")).unwrap();
        written += line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(written, 600_000);
    let verify = parquet_command(dir.path(), "verify --sample 100")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("trades counted       600000"));
}

//! The dataset on object storage: a real S3-compatible server (moto, `tests/common/s3.rs`)
//! holds it, written by one loader or by shards at once, read through ranged reads.

mod common;

use std::sync::Arc;

use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::{self, IngestError, LoadSpec, Progress, Shard, Target};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::{DataDir, Manifest, Store, StoreError};

use common::s3::S3Server;

fn load_into(dir: &DataDir, spec: &LoadSpec) -> Result<ingest::LoadSummary, IngestError> {
    let target = Target::Parquet { dir: dir.clone() };
    ingest::run(&target, spec, &Progress::default(), &Arc::default())
}

#[test]
fn a_load_on_object_storage_reads_as_the_same_load_on_disk() {
    let Some(s3) = S3Server::start("a_load_on_object_storage_reads_as_the_same_load_on_disk")
    else {
        return;
    };
    let config = common::small_config(40_000);
    let dir = s3.data_dir(&s3.bucket("ohlcv-round-trip", "datasets/one"));
    let summary = load_into(&dir, &common::options(config.clone())).unwrap();
    assert_eq!((summary.written, summary.skipped), (40_000, 0));
    assert!(summary.bytes_on_disk.is_some_and(|b| b > 0));

    let (local, reference) = common::embedded(&config);
    let remote = ParquetStore::new(dir.clone());
    assert_eq!(
        remote.manifest().unwrap(),
        Manifest::read(local.path()).unwrap().unwrap()
    );
    assert_eq!(
        remote.bytes_on_disk().unwrap(),
        reference.bytes_on_disk().unwrap()
    );
    common::assert_same_data(
        &remote,
        &reference,
        &config,
        &[
            ("1m", chrono_tz::UTC),
            ("1h", chrono_tz::America::New_York),
            ("1d", chrono_tz::America::New_York),
        ],
        ("2024-02-26", "2024-04-06"),
    );
    common::assert_verifies(&remote, (100, 1), 40_000);

    // The same load again writes nothing; a different one is refused, naming the URL.
    let again = load_into(&dir, &common::options(config.clone())).unwrap();
    assert_eq!((again.written, again.skipped), (0, 3));
    let other = GeneratorConfig {
        seed: 9,
        ..config.clone()
    };
    let err = load_into(&dir, &common::options(other.clone())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s3://ohlcv-round-trip/datasets/one holds a different load"),
        "{err}"
    );

    // --replace swaps the new load in and removes the old one's objects.
    let replace = LoadSpec {
        replace: true,
        ..common::options(other)
    };
    assert_eq!(load_into(&dir, &replace).unwrap().written, 40_000);
    // A new reader: one that has read the manifest looks for a new one only once a second.
    let remote = ParquetStore::new(dir.clone());
    let manifest = remote.manifest().unwrap();
    assert_eq!((manifest.load.seed, manifest.complete), (9, true));
    assert!(!manifest.root.is_empty());
    common::assert_verifies(&remote, (100, 1), 40_000);
    assert_eq!(
        ParquetStore::new(s3.data_dir("s3://ohlcv-round-trip/datasets/one"))
            .bytes_on_disk()
            .unwrap(),
        0,
        "the replaced load's objects are gone"
    );
}

#[test]
fn shards_loading_into_one_prefix_at_once_build_one_complete_dataset() {
    let Some(s3) =
        S3Server::start("shards_loading_into_one_prefix_at_once_build_one_complete_dataset")
    else {
        return;
    };
    let config = GeneratorConfig {
        end: common::date(2024, 6, 28),
        ..common::small_config(60_000)
    };
    let dir = s3.data_dir(&s3.bucket("ohlcv-shards", "shared"));
    let summaries: Vec<_> = std::thread::scope(|scope| {
        let shards: Vec<_> = (0..3)
            .map(|index| {
                let spec = LoadSpec {
                    shard: Shard { index, count: 3 },
                    threads: 1,
                    ..common::options(config.clone())
                };
                let dir = dir.clone();
                scope.spawn(move || load_into(&dir, &spec).unwrap())
            })
            .collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(summaries.iter().map(|s| s.written).sum::<u64>(), 60_000);
    let store = ParquetStore::new(dir);
    let manifest = store.manifest().unwrap();
    assert!(manifest.complete);
    assert_eq!(
        manifest.partitions.len(),
        summaries.iter().map(|s| s.units).sum::<usize>()
    );
    common::assert_verifies(&store, (100, 1), 60_000);
}

#[test]
fn a_missing_bucket_or_wrong_endpoint_is_one_line_naming_the_bucket() {
    let Some(s3) =
        S3Server::start("a_missing_bucket_or_wrong_endpoint_is_one_line_naming_the_bucket")
    else {
        return;
    };
    let dir = s3.data_dir("s3://no-such-bucket/prefix");
    let err = load_into(&dir, &common::options(common::small_config(1_000))).unwrap_err();
    assert!(
        matches!(err, IngestError::Store(StoreError::Missing(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("s3://no-such-bucket/prefix"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains(common::s3::SECRET), "{text}");
    let read = ParquetStore::new(dir).manifest().unwrap_err();
    assert!(read.to_string().contains("no-such-bucket"), "{read}");
}

#[test]
fn the_cli_loads_and_verifies_a_dataset_given_by_url() {
    let Some(s3) = S3Server::start("the_cli_loads_and_verifies_a_dataset_given_by_url") else {
        return;
    };
    let url = s3.bucket("ohlcv-cli", "data");
    let work = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = |args: &str| {
        let out = common::process::ohlcv(work.path(), &env)
            .args(["--data-dir", &url, "--store", "parquet"])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args}: {err}");
        assert!(!text.contains(common::s3::SECRET) && !err.contains(common::s3::SECRET));
        text
    };
    let loaded =
        run("load --trades 20000 --symbols AAPL,MSFT --start 2024-03-01 --end 2024-03-31 --seed 3");
    assert!(loaded.contains("written         20000 "), "{loaded}");
    assert!(run("verify --sample 50").contains("trades counted       20000"));
    let candles = run("candles --symbol AAPL --interval 1d --start 2024-03-01 --end 2024-04-01");
    assert_eq!(
        candles.lines().count(),
        21,
        "a header and March 2024's 20 sessions"
    );
    assert!(
        !work.path().join("data").exists(),
        "nothing was written locally"
    );
}

/// What pyarrow, reading the dataset from the S3 server itself, makes of each symbol's UTC
/// days: `SYMBOL DAY trades volume high low`, prices in dollars as the decimal column reads.
const PYARROW_DAILY: &str = r#"
import sys
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as fs

endpoint, key, secret, path = sys.argv[1:]
s3 = fs.S3FileSystem(access_key=key, secret_key=secret, region="us-east-1",
                     endpoint_override=endpoint.split("://")[1], scheme="http")
trades = ds.dataset(path + "/trades", filesystem=s3, format="parquet",
                    partitioning="hive").to_table()
day = pc.strftime(trades["time"], format="%Y-%m-%d")
trades = trades.append_column("day", day)
# Grouped min and max have no kernel for decimal64: the same values as decimal128.
price = trades.schema.get_field_index("price")
trades = trades.set_column(price, "price", pc.cast(trades["price"], pa.decimal128(18, 3)))
# Each file has its own symbol dictionary; grouping needs one.
symbol = trades.schema.get_field_index("symbol")
trades = trades.set_column(symbol, "symbol", pc.cast(trades["symbol"], pa.string()))
daily = trades.group_by(["symbol", "day"]).aggregate(
    [("trade_id", "count"), ("amount", "sum"), ("price", "max"), ("price", "min")])
for row in sorted(daily.to_pylist(), key=lambda r: (r["symbol"], r["day"])):
    print(row["symbol"], row["day"], row["trade_id_count"], row["amount_sum"],
          row["price_max"], row["price_min"])
"#;

#[test]
fn pyarrow_reads_from_the_server_the_counts_and_daily_candles_ohlcv_serves() {
    let test = "pyarrow_reads_from_the_server_the_counts_and_daily_candles_ohlcv_serves";
    let Some(s3) = S3Server::start(test) else {
        return;
    };
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow.fs"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyarrow {
        println!("{test}: skipped, pyarrow is not installed (scripts/test.sh installs it)");
        return;
    }
    let config = common::small_config(20_000);
    let url = s3.bucket("ohlcv-engines", "data");
    let dir = s3.data_dir(&url);
    load_into(&dir, &common::options(config.clone())).unwrap();

    let out = std::process::Command::new("python3")
        .args(["-c", PYARROW_DAILY, &s3.endpoint])
        .args([common::s3::KEY_ID, common::s3::SECRET, "ohlcv-engines/data"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();

    let store = ParquetStore::new(dir);
    let dollars = |units: i64| format!("{}.{:03}", units / 1000, units % 1000);
    let mut ours = String::new();
    for symbol in &config.symbols {
        let q = ohlcv::query::CandleQuery {
            symbol: symbol.clone(),
            interval: "1d".parse().unwrap(),
            start: ohlcv::query::parse_time("2024-01-01", chrono_tz::UTC).unwrap(),
            end: ohlcv::query::parse_time("2025-01-01", chrono_tz::UTC).unwrap(),
            tz: chrono_tz::UTC,
            fill: ohlcv::candles::Fill::None,
        };
        for c in ohlcv::query::candles(&store, &q).unwrap() {
            let [_, high, low, _] = c.ohlc.unwrap();
            let day = chrono::DateTime::from_timestamp_nanos(c.time).format("%Y-%m-%d");
            ours.push_str(&format!(
                "{symbol} {day} {} {} {} {}\n",
                c.trades,
                c.volume,
                dollars(high),
                dollars(low)
            ));
        }
    }
    assert_eq!(theirs, ours);
    assert_eq!(
        theirs
            .lines()
            .map(|l| l.split(' ').nth(2).unwrap().parse::<u64>().unwrap())
            .sum::<u64>(),
        20_000
    );
}

/// Reads every `.parquet` object listed under `url` on the server whole, as a reader of the
/// store would, until `stop`; checks each is a complete Parquet file (its footer parses and
/// its row groups decode to the rows the footer states). Returns how many distinct objects
/// (name and size) it checked.
fn check_listed_objects_whole(
    s3: &S3Server,
    url: &str,
    stop: &std::sync::atomic::AtomicBool,
) -> usize {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let remote = ohlcv::store::remote::Remote::open_with(url, s3.env()).unwrap();
    let mut checked = std::collections::HashSet::new();
    loop {
        // The last pass starts after `stop`, so it sees the final listing.
        let last = stop.load(std::sync::atomic::Ordering::SeqCst);
        for (name, size) in remote.list("").unwrap() {
            if !name.ends_with(".parquet") || checked.contains(&(name.clone(), size)) {
                continue;
            }
            let Some((bytes, _)) = remote.get(&name).unwrap() else {
                continue;
            };
            assert_eq!(bytes.len() as u64, size, "{name}: listed size");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap_or_else(|e| panic!("{name} ({size} bytes) is listed but partial: {e}"));
            let stated = reader.metadata().file_metadata().num_rows();
            let decoded: usize = reader
                .build()
                .unwrap()
                .map(|batch| batch.unwrap().num_rows())
                .sum();
            assert_eq!(decoded as i64, stated, "{name}");
            checked.insert((name, size));
        }
        if last {
            return checked.len();
        }
    }
}

struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_loader_killed_mid_upload_leaves_no_partial_object_and_resumes() {
    let test = "a_loader_killed_mid_upload_leaves_no_partial_object_and_resumes";
    let Some(s3) = S3Server::start(test) else {
        return;
    };
    let url = s3.bucket("ohlcv-killed", "data");
    // The loader reaches the server through a proxy that can hold its bytes mid-request; the
    // test watches the server itself.
    let proxy = common::proxy::Proxy::start(&s3.endpoint);
    let mut env = s3.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    let staging = tempfile::tempdir().unwrap();
    env.push(("TMPDIR".into(), staging.path().display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let work = tempfile::tempdir().unwrap();
    // A year of three symbols: twelve partitions, one a month.
    let load = |cmd: &mut std::process::Command| {
        cmd.args(["--data-dir", &url, "--store", "parquet", "load"])
            .args(["--trades", "240000", "--symbols", "AAPL,MSFT,ZZ.B"])
            .args([
                "--start",
                "2024-01-01",
                "--end",
                "2024-12-31",
                "--seed",
                "5",
            ])
            .args(["--threads", "1"]);
    };
    let direct = s3.data_dir(&url);
    let DataDir::Remote(remote) = &direct else {
        unreachable!("an s3:// URL is remote")
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let checked = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| check_listed_objects_whole(&s3, &url, &stop));
        // Stops the watcher however this thread leaves, a failed assertion included.
        let stopping = StopOnDrop(&stop);

        let mut first = common::process::ohlcv(work.path(), &env);
        load(&mut first);
        let mut first = first
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::poll_until(
            "the loader to publish a partition",
            common::DEADLINE,
            || remote.read_manifest().unwrap().map(|m| m.partitions.len()),
            |published| published.is_some_and(|n| n >= 1),
        );
        // Caught in the middle of a request, most likely a partition's PUT: the proxy passes
        // on a little more of it and holds the rest.
        proxy.hold_after(64 * 1024);
        let (counts, exited) = common::poll_until(
            "the loader's upload to be held",
            common::DEADLINE,
            || (proxy.counts(), first.try_wait().unwrap()),
            |(c, exited)| c.waiting > 0 || exited.is_some(),
        );
        assert!(exited.is_none(), "the load had finished: {counts:?}");
        first.kill().unwrap();
        first.wait().unwrap();
        proxy.release();
        let manifest = remote.read_manifest().unwrap().unwrap();
        assert!(!manifest.complete && !manifest.partitions.is_empty());
        let left: Vec<_> = std::fs::read_dir(staging.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "the killed loader left {left:?}");

        let mut again = common::process::ohlcv(work.path(), &env);
        load(&mut again);
        let out = again.output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let skipped = format!("{} already on disk", manifest.partitions.len());
        assert!(text.contains(&skipped), "{text}");
        drop(stopping);
        watcher.join().unwrap()
    });
    let store = ParquetStore::new(direct);
    let manifest = store.manifest().unwrap();
    assert!(manifest.complete);
    assert_eq!(
        checked,
        2 * manifest.partitions.len(),
        "every file was checked"
    );
    common::assert_verifies(&store, (100, 1), 240_000);
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
}

#[test]
fn a_load_rides_out_the_server_going_away_and_coming_back() {
    let test = "a_load_rides_out_the_server_going_away_and_coming_back";
    let Some(s3) = S3Server::start(test) else {
        return;
    };
    let url = s3.bucket("ohlcv-restart", "data");
    let proxy = common::proxy::Proxy::start(&s3.endpoint);
    let mut env = s3.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    let through_proxy =
        DataDir::Remote(ohlcv::store::remote::Remote::open_with(&url, env).unwrap());
    let direct = s3.data_dir(&url);
    let DataDir::Remote(remote) = &direct else {
        unreachable!("an s3:// URL is remote")
    };
    let config = GeneratorConfig {
        start: common::date(2024, 1, 1),
        end: common::date(2024, 12, 31),
        ..common::small_config(240_000)
    };
    let spec = common::options(config);
    // The loader is caught mid-load, whatever the machine's speed: the answer to the upload of
    // June's trades never comes, so the load cannot end before the server goes away (the
    // client writes the partition's `=` as `%3D` in the request's path).
    proxy.withhold_answer("PUT /ohlcv-restart/data/trades/month%3D2024-06/");
    let summary = std::thread::scope(|scope| {
        let loader = scope.spawn(|| load_into(&through_proxy, &spec));
        common::poll_until(
            "the loader to wait for the answer to June's upload",
            common::DEADLINE,
            || proxy.counts().withheld,
            |withheld| *withheld == 1,
        );
        assert!(
            remote.read_manifest().unwrap().is_some(),
            "the load had begun"
        );
        // The server goes away, cutting what was under way; the loader's retries find it gone
        // a few times before it comes back with its state.
        proxy.close();
        let seen = common::poll_until(
            "the loader to try the closed server three times",
            common::DEADLINE,
            || (proxy.counts().dropped, loader.is_finished()),
            |(dropped, finished)| *dropped >= 3 || *finished,
        );
        assert!(
            seen.0 >= 3,
            "the load ended before the server went away: {seen:?}"
        );
        proxy.open();
        loader.join().unwrap()
    })
    .unwrap();
    assert_eq!((summary.written, summary.skipped), (240_000, 0));
    assert!(proxy.counts().carried > 1, "connections were made anew");
    let store = ParquetStore::new(direct);
    assert!(store.manifest().unwrap().complete);
    common::assert_verifies(&store, (100, 1), 240_000);
}

#[test]
fn a_manifest_commit_left_unanswered_is_merged_and_tried_again() {
    let test = "a_manifest_commit_left_unanswered_is_merged_and_tried_again";
    let Some(s3) = S3Server::start(test) else {
        return;
    };
    let url = s3.bucket("ohlcv-unanswered", "data");
    let proxy = common::proxy::Proxy::start(&s3.endpoint);
    let mut env = s3.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    // How long the client waits for an answer (30 s unless told): the one withheld below
    // ends in a timeout, which the client does not retry for a conditional PUT.
    env.push(("AWS_TIMEOUT".into(), "3s".into()));
    let through_proxy =
        DataDir::Remote(ohlcv::store::remote::Remote::open_with(&url, env).unwrap());
    // The first commit, the conditional PUT creating the manifest, is applied but never
    // answered: the commit must read the manifest again, find its own, and carry on.
    proxy.withhold_answer("PUT /ohlcv-unanswered/data/manifest.json ");
    let summary = load_into(
        &through_proxy,
        &common::options(common::small_config(20_000)),
    )
    .unwrap();
    assert_eq!(summary.written, 20_000);
    assert_eq!(proxy.counts().withheld, 1);
    let store = ParquetStore::new(s3.data_dir(&url));
    assert!(store.manifest().unwrap().complete);
    common::assert_verifies(&store, (100, 1), 20_000);
}

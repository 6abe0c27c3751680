//! Reads tell the truth: a replace never leaves readers on an empty or half-written dataset
//! (the embedded store keeps serving the last complete load until the new one is swapped in),
//! and a store whose load is incomplete answers 503 `load_incomplete` rather than partial or
//! empty data, with `/ready` saying why.

mod common;

use std::path::Path;
use std::time::Duration;

use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::WriteOptions;
use ohlcv::store::influx::{Api, setup};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::{Store, publish};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

fn get(url: &str) -> (u16, Value) {
    let r = Client::new().get(url).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

/// Starts an ingestion with `body` and waits until it has written trades: it is mid-load.
fn start_and_await_writing(url: &str, body: Value) -> String {
    let r = Client::new()
        .post(format!("{url}/api/v1/ingestions"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let job = format!("{url}{}", r.headers()["location"].to_str().unwrap());
    common::watch(&job, "trades written", |v| {
        v["processed"].as_u64() > Some(0) || v["state"] != "running"
    });
    let (_, status) = get(&job);
    assert_eq!(status["state"], "running", "{status}");
    job
}

fn cancel(url: &str, job: &str) {
    let r = Client::new().post(format!("{job}/cancel")).send().unwrap();
    assert_eq!(r.status(), 202, "{url}: {}", r.text().unwrap());
    let ended = common::watch_to_the_end(job);
    assert_eq!(ended["state"], "cancelled", "{ended}");
}

/// What a reader sees of the store: symbols, a day of AAPL's candles, readiness.
fn reads(url: &str) -> [(u16, Value); 3] {
    [
        get(&format!("{url}/api/v1/symbols")),
        get(&format!(
            "{url}/api/v1/candles?symbol=AAPL&interval=5m&start=2024-03-11&end=2024-03-12"
        )),
        get(&format!("{url}/ready")),
    ]
}

/// Trade files published (not temporary) under the generations of `dir`: a partition's trades
/// are published after its candles, so each is a partition written whole.
fn published_trade_files(dir: &Path) -> usize {
    generations(dir)
        .iter()
        .map(|g| {
            walk(&dir.join(g).join("trades"))
                .iter()
                .filter_map(|p| p.file_name()?.to_str())
                .filter(|name| name.ends_with(".parquet") && !publish::is_temporary(name))
                .count()
        })
        .sum()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

fn generations(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("load-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_replace_keeps_the_last_complete_load_served_until_it_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::small_config(20_000);
    common::load(dir.path(), &common::options(first.clone()));
    let (url, _rt) = common::serve(common::app_state(dir.path(), first.clone(), TIMEOUT));
    let before = reads(&url);
    assert_eq!(
        before.each_ref().map(|r| r.0),
        [200, 200, 200],
        "{before:?}"
    );
    let candles = before[1].1["candles"].as_array().unwrap().len();
    assert!(candles > 0, "{before:?}");

    // The case: a huge replace, cancelled mid-load.
    let job = start_and_await_writing(
        &url,
        json!({"trades": 300_000_000, "seed": 8, "replace": true}),
    );
    assert_eq!(reads(&url), before, "while the replace is written");
    assert_eq!(generations(dir.path()).len(), 1, "it is written beside");
    cancel(&url, &job);
    assert_eq!(reads(&url), before, "after the replace was cancelled");

    // A replace run to the end swaps in whole; the cancelled one's generation is gone. One
    // trade more than the first, so that the symbols' counts differ too.
    let second = GeneratorConfig {
        seed: 9,
        trades: 20_001,
        ..first.clone()
    };
    let r = Client::new()
        .post(format!("{url}/api/v1/ingestions"))
        .json(&json!({"trades": 20_001, "seed": 9, "replace": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let job = format!("{url}{}", r.headers()["location"].to_str().unwrap());
    assert_eq!(common::watch_to_the_end(&job)["state"], "completed");
    let store = ParquetStore::new(dir.path());
    let manifest = store.manifest().unwrap();
    assert!(manifest.complete);
    assert_eq!(manifest.load, second);
    assert_eq!(generations(dir.path()), [manifest.root.as_str()]);
    assert!(
        !dir.path().join("trades").exists(),
        "the replaced load's files are removed"
    );
    let (_reference_dir, reference) = common::embedded(&second);
    common::assert_same_data(
        &store,
        &reference,
        &second,
        &[("1h", chrono_tz::America::New_York)],
        ("2024-02-26", "2024-04-06"),
    );
    let after = reads(&url);
    assert_eq!(after.each_ref().map(|r| r.0), [200, 200, 200], "{after:?}");
    assert_ne!(after[1], before[1], "the new load's candles");
    // The symbol list kept for the first load was dropped with its manifest: a server started
    // afresh on the new load lists the same.
    let (fresh, _fresh_rt) = common::serve(common::app_state(dir.path(), second.clone(), TIMEOUT));
    assert_eq!(after[0], get(&format!("{fresh}/api/v1/symbols")));
    assert_ne!(after[0], before[0], "the new load's symbols");

    // And back: the first load, in a generation of its own; the second's is removed.
    let r = Client::new()
        .post(format!("{url}/api/v1/ingestions"))
        .json(&json!({"trades": 20_000, "seed": 7, "replace": true}))
        .send()
        .unwrap();
    let job = format!("{url}{}", r.headers()["location"].to_str().unwrap());
    assert_eq!(common::watch_to_the_end(&job)["state"], "completed");
    let manifest = store.manifest().unwrap();
    assert_eq!(manifest.load, first);
    assert_eq!(generations(dir.path()), [manifest.root.as_str()]);
    assert_eq!(reads(&url), before);
}

#[test]
fn an_interrupted_replace_is_resumed_by_the_same_replace() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::small_config(20_000);
    common::load(dir.path(), &common::options(first.clone()));
    // Large enough that one thread takes a while over each of its three monthly partitions.
    let second = GeneratorConfig {
        seed: 9,
        trades: 1_500_000,
        ..first.clone()
    };
    let replace = ohlcv::ingest::LoadSpec {
        replace: true,
        threads: 1,
        ..common::options(second.clone())
    };
    // Cancelled once it has published a partition beside the served load (if it has not
    // finished by then).
    let progress = ohlcv::ingest::Progress::default();
    let (stopped, published) = std::thread::scope(|s| {
        let load = s.spawn(|| common::try_load(dir.path(), &replace, &progress));
        let published = common::poll_until(
            "the replace to publish a partition of its generation",
            common::DEADLINE,
            || published_trade_files(dir.path()),
            |n| *n > 0,
        );
        progress.cancel();
        (load.join().unwrap(), published)
    });
    let store = ParquetStore::new(dir.path());
    let resumed = stopped.is_err();
    if resumed {
        // The old load is still the one served, complete.
        let manifest = store.manifest().unwrap();
        assert_eq!((manifest.load, manifest.complete), (first, true));
    }
    let summary = common::load(dir.path(), &replace);
    assert_eq!(summary.trades, 1_500_000);
    if resumed {
        // What the interrupted run published is kept, not written again.
        assert!(
            summary.skipped >= published,
            "{summary:?}, {published} published"
        );
        assert!(summary.written < summary.trades, "{summary:?}");
    }
    let manifest = store.manifest().unwrap();
    assert_eq!((manifest.load, manifest.complete), (second, true));
}

#[test]
fn reads_of_a_load_being_written_or_interrupted_answer_503_and_ready_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _rt) = common::serve(common::app_state(
        dir.path(),
        common::small_config(1_000),
        TIMEOUT,
    ));
    let (status, v) = get(&format!("{url}/ready"));
    assert_eq!((status, v["code"].as_str()), (503, Some("not_ready")));
    assert!(v["detail"].as_str().unwrap().contains("no load"), "{v}");
    incomplete_reads_answer_503(&url, json!({"trades": 300_000_000}));
}

/// InfluxDB cannot swap a load in whole: its reads answer 503 from the start of a load until
/// it completes, and after one that was interrupted.
#[test]
fn influxdb_reads_answer_503_while_a_load_writes_and_after_it_stopped() {
    let server = common::influxd::Influxd::start();
    let influx = common::influx::config(&server.url(), Api::V1, None, "trades");
    setup(&influx).unwrap();
    let checkpoints = tempfile::tempdir().unwrap();
    let (url, _rt) = common::serve(common::influx::app_state(
        influx,
        WriteOptions::default(),
        checkpoints.path(),
        common::small_config(1_000),
        TIMEOUT,
    ));
    incomplete_reads_answer_503(&url, json!({"trades": 300_000_000, "store": "influxdb"}));
}

/// Starts the load `body` on the server at `url`, and checks every read answers 503
/// `load_incomplete` (and `/ready` 503 naming it) while it writes and once it is cancelled.
fn incomplete_reads_answer_503(url: &str, body: Value) {
    let job = start_and_await_writing(url, body);
    let check = |when: &str| {
        let [symbols, candles, ready] = reads(url);
        for (what, (status, v)) in [("symbols", symbols), ("candles", candles)] {
            assert_eq!(
                (status, v["code"].as_str()),
                (503, Some("load_incomplete")),
                "{what} {when}: {v}"
            );
        }
        let (status, v) = ready;
        assert_eq!(
            (status, v["code"].as_str()),
            (503, Some("not_ready")),
            "{when}"
        );
        assert!(
            v["detail"].as_str().unwrap().contains("incomplete"),
            "{when}: {v}"
        );
        let (status, v) = get(&format!(
            "{url}/api/v1/trades?symbol=AAPL&start=2024-03-11&end=2024-03-12"
        ));
        assert_eq!((status, v["code"].as_str()), (503, Some("load_incomplete")));
    };
    check("while the load is written");
    cancel(url, &job);
    check("after the load was cancelled");
}

#[test]
fn files_a_replace_left_at_the_top_level_are_removed_by_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::small_config(10_000);
    common::load(dir.path(), &common::options(first.clone()));
    let second = GeneratorConfig {
        seed: first.seed + 1,
        ..first
    };
    let replace = ohlcv::ingest::LoadSpec {
        replace: true,
        ..common::options(second.clone())
    };
    common::load(dir.path(), &replace);
    // As if the replace had stopped between its swap and its cleanup: the replaced load's
    // files still at the top level, beside the generation now served.
    let stranded = dir.path().join("trades/month=2024-03/group=0000.parquet");
    std::fs::create_dir_all(stranded.parent().unwrap()).unwrap();
    std::fs::write(&stranded, b"the replaced load").unwrap();

    let again = common::load(dir.path(), &common::options(second));
    assert_eq!(again.written, 0, "the served load is complete");
    assert!(!dir.path().join("trades").exists());
    let store = ParquetStore::new(dir.path());
    assert!(ohlcv::verify::verify(&store, 50, 1).unwrap().ok());
}

//! Helpers shared by the integration tests: small real loads into temporary directories, a
//! real influxd, and the Flux evaluator of the strict v2 test server.

#![allow(dead_code)]

pub mod flux;
pub mod influxd;

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use ohlcv::api::{self, AppState, LoadDefaults};
use ohlcv::candles::Fill;
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::jobs::{Jobs, Target};
use ohlcv::ingest::{self, LoadOptions, LoadSummary, Progress};
use ohlcv::model::Symbol;
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::parquet::ParquetStore;

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A month of trades in three symbols, one of which needs no profile.
pub fn small_config(trades: u64) -> GeneratorConfig {
    GeneratorConfig {
        trades,
        symbols: ["AAPL", "MSFT", "ZZ.B"]
            .iter()
            .map(|s| Symbol::new(s).unwrap())
            .collect(),
        start: date(2024, 2, 26),
        end: date(2024, 4, 5),
        seed: 7,
    }
}

pub fn options(config: GeneratorConfig) -> LoadOptions {
    LoadOptions {
        config,
        threads: 2,
        replace: false,
        retention_days: 3650,
        now: chrono::Utc::now(),
    }
}

/// `ohlcv serve`'s state over the embedded store in `dir`, loading into it, with the given
/// defaults for loads and request timeout.
pub fn app_state(dir: &Path, defaults: GeneratorConfig, timeout: std::time::Duration) -> AppState {
    AppState::new(
        Arc::new(ParquetStore::new(dir)),
        Arc::new(Jobs::new(Target::Parquet {
            dir: dir.to_path_buf(),
        })),
        LoadDefaults {
            config: defaults,
            threads: 2,
            retention_days: 3650,
            replace: false,
            resume: false,
            shard: ohlcv::ingest::influx::Shard::ALL,
        },
        timeout,
    )
}

/// Serves `state` on 127.0.0.1:0 on its own runtime; returns the base URL and the runtime,
/// which stops the server when dropped.
pub fn serve(state: AppState) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        url
    });
    (url, runtime)
}

/// Asserts that `store` and `reference` hold the same trades of every symbol of `load`, and
/// give the same candles (fill previous) at each (interval, zone) over `[start, end)` dates.
pub fn assert_same_data(
    store: &dyn Store,
    reference: &dyn Store,
    load: &GeneratorConfig,
    intervals: &[(&str, chrono_tz::Tz)],
    (start, end): (&str, &str),
) {
    for symbol in &load.symbols {
        assert_eq!(
            store
                .trades(symbol, i64::MIN / 2, i64::MAX / 2, None)
                .unwrap(),
            reference
                .trades(symbol, i64::MIN / 2, i64::MAX / 2, None)
                .unwrap(),
            "{symbol}"
        );
        for &(interval, tz) in intervals {
            let q = CandleQuery {
                symbol: symbol.clone(),
                interval: interval.parse().unwrap(),
                start: query::parse_time(start, tz).unwrap(),
                end: query::parse_time(end, tz).unwrap(),
                tz,
                fill: Fill::Previous,
            };
            assert_eq!(
                query::candles(store, &q).unwrap(),
                query::candles(reference, &q).unwrap(),
                "{symbol} {interval} {tz}"
            );
        }
    }
}

/// Polls the JSON at `url` until `done` holds for it; each poll is a real request.
pub fn watch(url: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    loop {
        let r = reqwest::blocking::get(url).unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let v: serde_json::Value = r.json().unwrap();
        if done(&v) {
            return v;
        }
        std::thread::yield_now();
    }
}

pub fn load(dir: &Path, options: &LoadOptions) -> LoadSummary {
    ingest::load(dir, options, &Progress::default()).expect("load succeeds")
}

//! Helpers shared by the integration tests: small real loads into temporary directories, the
//! API's state and server, polls with a deadline, and (in submodules) the InfluxDB suites' setup,
//! a real influxd and the Flux evaluator of the strict v2 test server.

#![allow(dead_code)]

pub mod azurite;
pub mod flux;
pub mod influx;
pub mod influxd;
pub mod process;
pub mod proxy;
pub mod s3;

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ohlcv::api::{self, AppState, Settings};
use ohlcv::candles::Fill;
use ohlcv::generator::{self, GeneratorConfig, MarketPlan};
use ohlcv::ingest::jobs::Jobs;
use ohlcv::ingest::{self, IngestError, LoadSpec, LoadSummary, Progress, Target};
use ohlcv::model::{PRICE_UNITS_PER_CENT, Symbol, TradeColumns};
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::parquet::ParquetStore;
use ohlcv::verify;

/// How long a poll waits before it fails: not a timing assertion, only a guard against a test
/// hanging on a stuck job, server or process, so far beyond any healthy run.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Observes with `observe` until `done` holds for what it saw, and returns that. Fails once
/// `deadline` has passed, saying what it waited for and what it saw last, which is what tells
/// a stuck job from a slow one.
pub fn poll_until<S: Debug>(
    what: &str,
    deadline: Duration,
    mut observe: impl FnMut() -> S,
    done: impl Fn(&S) -> bool,
) -> S {
    let give_up = Instant::now() + deadline;
    loop {
        let seen = observe();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < give_up,
            "waited {deadline:?} for {what}; last saw {seen:?}"
        );
        // Backoff, so the polls leave the observed threads and processes the cores.
        std::thread::sleep(Duration::from_millis(5));
    }
}

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

/// The load of `config` on two threads, every other setting at its default.
pub fn options(config: GeneratorConfig) -> LoadSpec {
    LoadSpec {
        threads: 2,
        ..LoadSpec::new(config)
    }
}

/// The load settings `ohlcv serve` starts with, for loads of `config` by default.
pub fn load_defaults(config: GeneratorConfig) -> LoadSpec {
    options(config)
}

/// Jobs loading into the embedded store in `dir`.
pub fn parquet_target(dir: &Path) -> Target {
    Target::Parquet { dir: dir.into() }
}

/// `ohlcv serve`'s state reading `store` and loading into `target`, with the given defaults
/// for loads and request timeout.
pub fn app_state_over(
    store: Arc<dyn Store>,
    target: Target,
    defaults: GeneratorConfig,
    timeout: Duration,
) -> AppState {
    AppState::new(
        store,
        Arc::new(Jobs::new(target)),
        load_defaults(defaults),
        Settings {
            request_timeout: timeout,
            ..Settings::default()
        },
    )
}

/// `ohlcv serve`'s state over the embedded store in `dir`, loading into it.
pub fn app_state(dir: &Path, defaults: GeneratorConfig, timeout: Duration) -> AppState {
    app_state_over(
        Arc::new(ParquetStore::new(dir)),
        parquet_target(dir),
        defaults,
        timeout,
    )
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime of its own for a server under test, so that the test's blocking client never
/// runs on it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `state` on 127.0.0.1:0 on its own runtime; returns the base URL and the runtime,
/// which stops the server when dropped.
pub fn serve(state: AppState) -> (String, tokio::runtime::Runtime) {
    let runtime = runtime();
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        url
    });
    (url, runtime)
}

/// Asserts that `store` holds every session's opening and closing cross of `load` (each
/// chunk of at least two trades has both), at their instants: the comparisons that follow
/// then cover them.
pub fn assert_crosses_stored(store: &dyn Store, load: &GeneratorConfig) {
    let plan = MarketPlan::new(load.clone()).unwrap();
    for (si, symbol) in load.symbols.iter().enumerate() {
        let trades = store
            .trades(symbol, i64::MIN / 2, i64::MAX / 2, None)
            .unwrap();
        for (di, session) in plan.sessions().iter().enumerate() {
            if plan.chunk(si, di).count < 2 {
                continue;
            }
            for time in [
                generator::opening_cross_time(session),
                generator::closing_cross_time(session),
            ] {
                assert!(
                    trades.times.binary_search(&time).is_ok(),
                    "{symbol} {} has no cross at {time}",
                    session.date
                );
            }
        }
    }
}

/// Asserts that `store` holds exactly the generator's trades of every symbol of `load`, and
/// that these have midpoint prints at half cents ($0.005 off the cent), so exact equality
/// shows that sub-penny prices round-trip through the store unchanged. Returns how many there
/// are.
pub fn assert_half_cents_stored(store: &dyn Store, load: &GeneratorConfig) -> usize {
    let plan = MarketPlan::new(load.clone()).unwrap();
    let mut half_cents = 0;
    for (si, symbol) in load.symbols.iter().enumerate() {
        let mut want = TradeColumns::default();
        for di in 0..plan.sessions().len() {
            plan.generate(si, di, &mut want);
        }
        let got = store
            .trades(symbol, i64::MIN / 2, i64::MAX / 2, None)
            .unwrap();
        assert_eq!(got, want, "{symbol}");
        half_cents += got
            .prices
            .iter()
            .filter(|p| *p % PRICE_UNITS_PER_CENT == PRICE_UNITS_PER_CENT / 2)
            .count();
    }
    assert!(half_cents > 0, "no half-cent print in the stored tape");
    half_cents
}

/// Asserts that `store` and `reference` hold the same trades of every symbol of `load`, the
/// auctions' crosses and the half-cent prints included, and give the same candles (fill previous) at each (interval,
/// zone) over `[start, end)` dates.
pub fn assert_same_data(
    store: &dyn Store,
    reference: &dyn Store,
    load: &GeneratorConfig,
    intervals: &[(&str, chrono_tz::Tz)],
    (start, end): (&str, &str),
) {
    assert_crosses_stored(store, load);
    assert_half_cents_stored(store, load);
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

/// Polls the JSON at `url` until `done` holds for it; each poll is a real request. `what` names
/// the state awaited, for the failure at the deadline.
pub fn watch(
    url: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    poll_until(
        &format!("{what} at {url}"),
        DEADLINE,
        || {
            let r = reqwest::blocking::get(url).unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.json::<serde_json::Value>().unwrap()
        },
        done,
    )
}

/// Polls the ingestion at `url` until it has left the queue and stopped running.
pub fn watch_to_the_end(url: &str) -> serde_json::Value {
    watch(url, "the ingestion to end", |v| {
        v["state"] != "running" && v["state"] != "queued"
    })
}

/// Loads into the embedded store in `dir`, reporting to `progress`.
pub fn try_load(
    dir: &Path,
    options: &LoadSpec,
    progress: &Progress,
) -> Result<LoadSummary, IngestError> {
    ingest::run(&parquet_target(dir), options, progress, &Arc::default())
}

pub fn load(dir: &Path, options: &LoadSpec) -> LoadSummary {
    try_load(dir, options, &Progress::default()).expect("load succeeds")
}

/// Loads `config` into a new embedded store: the reference other stores are compared with.
pub fn embedded(config: &GeneratorConfig) -> (tempfile::TempDir, ParquetStore) {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &options(config.clone()));
    let store = ParquetStore::new(dir.path());
    (dir, store)
}

/// Asserts that `store` verifies, sampling `sample` ranges with `seed`, and counts `trades`.
pub fn assert_verifies(store: &dyn Store, (sample, seed): (usize, u64), trades: u64) {
    let report = verify::verify(store, sample, seed).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
    assert_eq!(report.trades_counted, trades);
}

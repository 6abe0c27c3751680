//! OHLCV: generate, store and serve stock trades and OHLCV candles at the scale of hundreds of
//! millions of trades. The `ohlcv` binary (`src/bin/ohlcv.rs`) only parses arguments and calls
//! into these modules, one per concept (ARCHITECTURE.md has the data flow):
//!
//! - [`model`]: trades, symbols, prices in units of $0.001, trades in columns.
//! - [`calendar`]: NYSE sessions, holidays and early closes.
//! - [`generator`]: the deterministic market; every trade reproducible from a seed.
//! - [`candles`]: intervals, time-zone bucketing, rollup and fill.
//! - [`store`]: the [`store::Store`] read contract and its error kinds; how a load is laid
//!   out and published; the embedded Parquet store and InfluxDB.
//! - [`ingest`]: one [`ingest::LoadSpec`] into either store through [`ingest::run`],
//!   resumable; progress reporting; loads as background jobs.
//! - [`query`]: candles and trades over any store.
//! - [`stats`]: realism statistics of a tape (volatility, tails, autocorrelations, sizes).
//! - [`verify`]: exact check of a stored load against the generator.
//! - [`bench`]: `ohlcv bench influx`, a matrix of write settings against an InfluxDB and
//!   the report of what each costs and how fast candles come back.
//! - [`api`]: the HTTP server (`ohlcv serve`), its metrics and OpenAPI document.
//! - [`format`](mod@format): csv, JSON and table output shared by the CLI and the API.
//! - [`config`]: the command line, each flag with its environment variable (and the proof of
//!   concept's names as fallbacks).
//! - [`secret`]: credentials that never print, compared in constant time.
//! - [`telemetry`]: JSON logs, error chains, the shutdown signal, process resource figures.
//!
//! No input may panic the library: outside tests, `unwrap`, `expect`, unchecked indexing,
//! `panic!` and `unreachable!` are denied. Where an index is in range by construction, an
//! `allow` on the function names that invariant. A few functions take a position from their
//! caller (`MarketPlan::chunk`, `TradeColumns::trade`, `TradeJson::new`,
//! `line_protocol::push_trade`) and, like slice indexing, panic past the end: their callers
//! iterate the positions they index.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod api;
pub mod bench;
pub mod calendar;
pub mod candles;
pub mod config;
pub mod format;
pub mod generator;
pub mod ingest;
pub mod model;
pub mod query;
pub mod secret;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod verify;

//! Helpers shared by the integration tests: small real loads into temporary directories, and
//! a real influxd.

#![allow(dead_code)]

pub mod influxd;

use std::path::Path;

use chrono::NaiveDate;
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::{self, LoadOptions, LoadSummary, Progress};
use ohlcv::model::Symbol;

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

pub fn load(dir: &Path, options: &LoadOptions) -> LoadSummary {
    ingest::load(dir, options, &Progress::default()).expect("load succeeds")
}

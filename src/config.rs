//! Command-line and environment configuration of the `ohlcv` binary. Every flag can also be
//! set through the environment variable named in its help.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::candles::{Fill, Interval};
use crate::format::Format;
use crate::generator::GeneratorConfig;
use crate::model::Symbol;

#[derive(Debug, Parser)]
#[command(
    name = "ohlcv",
    version,
    about = "Generate, store and serve stock trades and OHLCV candles"
)]
pub struct Cli {
    /// Directory of the embedded store.
    #[arg(long, global = true, env = "OHLCV_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate trades and write them, with their 1-minute candles, to the store.
    Load(LoadArgs),
    /// Print candles of one symbol.
    Candles(CandlesArgs),
    /// Print trades of one symbol.
    Trades(TradesArgs),
    /// Check the stored load against the generator; exit 0 only if everything matches.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Number of trades, exactly.
    #[arg(long, env = "OHLCV_TRADES", default_value_t = 300_000_000)]
    pub trades: u64,
    /// Comma-separated symbols.
    #[arg(
        long,
        env = "OHLCV_SYMBOLS",
        value_delimiter = ',',
        default_value = "AAPL,MSFT,AMZN,GOOGL,META"
    )]
    pub symbols: Vec<Symbol>,
    /// First date, inclusive (YYYY-MM-DD).
    #[arg(long, env = "OHLCV_START", default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Last date, inclusive (YYYY-MM-DD).
    #[arg(long, env = "OHLCV_END", default_value = "2024-12-31")]
    pub end: NaiveDate,
    /// Seed of the generator: the same seed and settings give the same trades.
    #[arg(long, env = "OHLCV_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Worker threads (0 = one per core). Does not change the trades.
    #[arg(long, env = "OHLCV_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Replace a different load already in the data directory.
    #[arg(long, env = "OHLCV_REPLACE")]
    pub replace: bool,
    /// Keep data this long: <n>d, <n>w or <n>y (365 days).
    #[arg(long, env = "OHLCV_RETENTION", default_value = "10y", value_parser = parse_retention_days)]
    pub retention: u32,
}

impl LoadArgs {
    pub fn generator_config(&self) -> GeneratorConfig {
        GeneratorConfig {
            trades: self.trades,
            symbols: self.symbols.clone(),
            start: self.start,
            end: self.end,
            seed: self.seed,
        }
    }
}

/// Parses a retention such as `3650d`, `52w` or `10y` into days.
pub fn parse_retention_days(s: &str) -> Result<u32, String> {
    let err = || format!("invalid retention {s:?}: expected <n>d, <n>w or <n>y, e.g. 10y");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let n: u32 = s[..split].parse().map_err(|_| err())?;
    let days = match &s[split..] {
        "d" => Some(n),
        "w" => n.checked_mul(7),
        "y" => n.checked_mul(365),
        _ => None,
    };
    days.filter(|d| (1..=365 * 1000).contains(d))
        .ok_or_else(err)
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Symbol, e.g. AAPL.
    #[arg(long, env = "OHLCV_SYMBOL")]
    pub symbol: Symbol,
    /// Start, inclusive: RFC 3339 or a date (midnight in --tz).
    #[arg(long, env = "OHLCV_QUERY_START")]
    pub start: String,
    /// End, exclusive: RFC 3339 or a date (midnight in --tz).
    #[arg(long, env = "OHLCV_QUERY_END")]
    pub end: String,
    /// IANA time zone for dates and candle alignment.
    #[arg(long, env = "OHLCV_TZ", default_value = "America/New_York")]
    pub tz: String,
}

#[derive(Debug, Args)]
pub struct CandlesArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Interval <n><unit>, unit one of s, m, h, d, w, mo (e.g. 1m, 4h, 1d, 1mo).
    #[arg(long, env = "OHLCV_INTERVAL")]
    pub interval: Interval,
    /// Empty buckets: none (omit), null, previous (carry the last close).
    #[arg(long, env = "OHLCV_FILL", default_value = "none")]
    pub fill: Fill,
    #[arg(long, env = "OHLCV_FORMAT", value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TradesArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// At most this many trades (the first ones).
    #[arg(long, env = "OHLCV_LIMIT")]
    pub limit: Option<usize>,
    #[arg(long, env = "OHLCV_FORMAT", value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Number of random trades to regenerate and compare field by field.
    #[arg(long, env = "OHLCV_VERIFY_SAMPLE", default_value_t = 1000)]
    pub sample: usize,
    /// Seed choosing the sample.
    #[arg(long, env = "OHLCV_VERIFY_SEED", default_value_t = 1)]
    pub sample_seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses() {
        assert_eq!(parse_retention_days("10y"), Ok(3650));
        assert_eq!(parse_retention_days("2w"), Ok(14));
        assert_eq!(parse_retention_days("30d"), Ok(30));
        for bad in ["", "10", "y", "0d", "10h", "-1d", "99999999999d"] {
            assert!(parse_retention_days(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

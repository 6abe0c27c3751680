//! Command-line and environment configuration of the `ohlcv` binary. Every flag can also be
//! set through the environment variable named in its help.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::candles::{Fill, Interval};
use crate::format::Format;
use crate::generator::GeneratorConfig;
use crate::ingest::{LoadSpec, RetryPolicy, Shard, Target, WriteOptions};
use crate::model::Symbol;
use crate::store::influx::{self, Api, InfluxConfig, InfluxError, QueryLanguage, Secret};
use crate::store::parquet::ParquetStore;
use crate::store::{Store, StoreError};

/// Settings that parse but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Influx(#[from] InfluxError),
    #[error("cannot read the token file {}", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded Parquet dataset in --data-dir.
    Parquet,
    /// An InfluxDB server (INFLUXDB_URL, ...).
    Influxdb,
}

/// Where trades are stored and read. The InfluxDB token and password are never printed.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[arg(long, global = true, env = "OHLCV_STORE", value_enum, default_value_t = StoreKind::Parquet)]
    pub store: StoreKind,
    /// InfluxDB base URL, e.g. http://127.0.0.1:8086.
    #[arg(long, global = true, env = "INFLUXDB_URL")]
    pub influxdb_url: Option<String>,
    /// API token (v2; also accepted by the v1 API of 2.x and 3.x).
    #[arg(long, global = true, env = "INFLUXDB_TOKEN", hide_env_values = true)]
    pub influxdb_token: Option<String>,
    /// File holding the API token (used when INFLUXDB_TOKEN is not set).
    #[arg(long, global = true, env = "INFLUXDB_TOKEN_FILE")]
    pub influxdb_token_file: Option<PathBuf>,
    #[arg(long, global = true, env = "INFLUXDB_ORG", default_value = "ohlcv-poc")]
    pub influxdb_org: String,
    #[arg(long, global = true, env = "INFLUXDB_BUCKET", default_value = "trades")]
    pub influxdb_bucket: String,
    /// Retention of the bucket or database created by `ohlcv influx setup`: <n>d, <n>w, <n>y.
    #[arg(long, global = true, env = "INFLUXDB_RETENTION", default_value = "10y", value_parser = parse_retention_days)]
    pub influxdb_retention: u32,
    #[arg(long, global = true, env = "INFLUXDB_API", value_enum, default_value_t = Api::V2)]
    pub influxdb_api: Api,
    /// v1 database (default: the bucket's name).
    #[arg(long, global = true, env = "INFLUXDB_DATABASE")]
    pub influxdb_database: Option<String>,
    #[arg(long, global = true, env = "INFLUXDB_USERNAME")]
    pub influxdb_username: Option<String>,
    #[arg(long, global = true, env = "INFLUXDB_PASSWORD", hide_env_values = true)]
    pub influxdb_password: Option<String>,
    /// How reads query InfluxDB: InfluxQL over /query (1.x, 2.x, 3.x) or Flux over
    /// /api/v2/query (2.x, 1.8+).
    #[arg(long, global = true, env = "INFLUXDB_QUERY_LANGUAGE", value_enum, default_value_t = QueryLanguage::Influxql)]
    pub influxdb_query_language: QueryLanguage,
}

impl StoreArgs {
    pub fn influx(&self) -> Result<InfluxConfig, ConfigError> {
        let url = self.influxdb_url.as_deref().ok_or_else(|| {
            InfluxError::Url("(unset): set INFLUXDB_URL or --influxdb-url".into())
        })?;
        let token = match (&self.influxdb_token, &self.influxdb_token_file) {
            (Some(t), _) => Some(Secret::new(t.trim())),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                Some(Secret::new(text.trim()))
            }
            (None, None) => None,
        };
        Ok(InfluxConfig {
            url: InfluxConfig::parse_url(url)?,
            api: self.influxdb_api,
            token,
            org: self.influxdb_org.clone(),
            bucket: self.influxdb_bucket.clone(),
            database: self
                .influxdb_database
                .clone()
                .unwrap_or_else(|| self.influxdb_bucket.clone()),
            username: self.influxdb_username.clone(),
            password: self.influxdb_password.as_deref().map(Secret::new),
            retention_days: self.influxdb_retention,
            query_language: self.influxdb_query_language,
        })
    }

    /// The store reads go to: the dataset in `data_dir`, or the configured InfluxDB.
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Box<dyn Store>, ConfigError> {
        Ok(match self.store {
            StoreKind::Parquet => Box::new(ParquetStore::new(data_dir)),
            StoreKind::Influxdb => influx::open(self.influx()?).map_err(StoreError::from)?,
        })
    }

    /// Where loads write, with `load`'s write settings; InfluxDB checkpoints go to `data_dir`.
    pub fn target(
        &self,
        data_dir: &std::path::Path,
        load: &LoadArgs,
    ) -> Result<Target, ConfigError> {
        Ok(match self.store {
            StoreKind::Parquet => Target::Parquet {
                dir: data_dir.to_path_buf(),
            },
            StoreKind::Influxdb => Target::Influx {
                config: Box::new(self.influx()?),
                write: load.write_options(),
                checkpoint_dir: data_dir.to_path_buf(),
            },
        })
    }
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
    /// InfluxDB administration.
    #[command(subcommand)]
    Influx(InfluxCommand),
    /// Serve the HTTP API.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OHLCV_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// A request running longer than this many seconds is answered 503.
    #[arg(long, env = "OHLCV_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,
    /// The load `POST /api/start` runs, and the defaults of `POST /api/v1/ingestions`.
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Subcommand)]
pub enum InfluxCommand {
    /// Create the bucket (v2) or database (v1) with its retention if missing. Idempotent.
    Setup,
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
    /// Replace a different load already in the data directory (or the InfluxDB target).
    #[arg(long, env = "OHLCV_REPLACE")]
    pub replace: bool,
    /// Keep data this long: <n>d, <n>w or <n>y (365 days).
    #[arg(long, env = "OHLCV_RETENTION", default_value = "10y", value_parser = parse_retention_days)]
    pub retention: u32,

    /// InfluxDB: lines per write request.
    #[arg(long, env = "OHLCV_BATCH_LINES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_lines: u64,
    /// InfluxDB: bytes per write request before compression (the client bounds requests).
    #[arg(long, env = "OHLCV_BATCH_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4096..=64 * 1024 * 1024))]
    pub batch_bytes: u64,
    /// InfluxDB: concurrent write requests.
    #[arg(long, env = "OHLCV_WRITERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub writers: u64,
    /// InfluxDB: gzip request bodies.
    #[arg(long, env = "OHLCV_GZIP")]
    pub gzip: bool,
    /// InfluxDB: load only chunks K mod N of the load (K/N, 0-based), to share it among N machines.
    #[arg(long, env = "OHLCV_SHARD", default_value = "0/1", value_parser = Shard::parse)]
    pub shard: Shard,
    /// InfluxDB: skip chunks the checkpoint of this same load and target lists as written.
    #[arg(long, env = "OHLCV_RESUME")]
    pub resume: bool,
    /// InfluxDB: first retry delay in milliseconds (doubles each retry, with jitter).
    #[arg(long, env = "OHLCV_RETRY_INTERVAL_MS", default_value_t = 5_000)]
    pub retry_interval_ms: u64,
    /// InfluxDB: give up on a batch after retrying this many milliseconds.
    #[arg(long, env = "OHLCV_MAX_RETRY_TIME_MS", default_value_t = 180_000)]
    pub max_retry_time_ms: u64,
}

impl LoadArgs {
    /// How the InfluxDB write pipeline sends batches.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            batch_lines: self.batch_lines as usize,
            batch_bytes: self.batch_bytes as usize,
            writers: self.writers as usize,
            gzip: self.gzip,
            retry: RetryPolicy {
                interval: Duration::from_millis(self.retry_interval_ms),
                max_time: Duration::from_millis(self.max_retry_time_ms),
                ..RetryPolicy::default()
            },
            ..WriteOptions::default()
        }
    }

    /// The load these flags describe.
    pub fn spec(&self) -> LoadSpec {
        LoadSpec {
            load: GeneratorConfig {
                trades: self.trades,
                symbols: self.symbols.clone(),
                start: self.start,
                end: self.end,
                seed: self.seed,
            },
            replace: self.replace,
            resume: self.resume,
            shard: self.shard,
            threads: self.threads,
            retention_days: self.retention,
            as_of: None,
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

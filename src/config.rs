//! Command-line and environment configuration of the `ohlcv` binary. Every flag can also be
//! set through the environment variable named in its help; where the proof of concept had a
//! variable of its own ([`LEGACY_ENV`]), that one is read when ours is unset, so its
//! environment configures `ohlcv serve` unchanged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Duration as Days, NaiveDate};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::api::{Auth, AuthScope, Limits};
use crate::bench::{self, BenchOptions, MatrixFile, Vary};
use crate::calendar;
use crate::candles::{Fill, Interval};
use crate::format::Format;
use crate::generator::GeneratorConfig;
use crate::ingest::{LoadSpec, RetryPolicy, Shard, Target, WriteOptions};
use crate::model::Symbol;
use crate::secret::Secret;
use crate::store::influx::{
    self, Api, InfluxConfig, InfluxError, Precision, QueryLanguage, Schema,
};
use crate::store::parquet::ParquetStore;
use crate::store::{DataDir, Store, StoreError};

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
    #[error("the token in {what} is empty")]
    EmptyToken { what: String },
    #[error(
        "--auth all protects every route with a token, and none is set: set OHLCV_API_TOKEN or --api-token-file"
    )]
    AuthWithoutToken,
    #[error(
        "refusing to serve on {addr}, which is not a loopback address, without an API token: set OHLCV_API_TOKEN (or --api-token-file), or pass --allow-unauthenticated to serve it open"
    )]
    Unprotected { addr: IpAddr },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The proof of concept's environment variables and ours they stand for: (ours, its).
/// `PORT` and the `INFLUXDB_*` variables have the same names in both.
pub const LEGACY_ENV: [(&str, &str); 5] = [
    ("OHLCV_TRADES", "TOTAL_TRADES"),
    ("OHLCV_BATCH_LINES", "BATCH_SIZE"),
    ("OHLCV_SYMBOLS", "SYMBOLS"),
    ("OHLCV_START", "START_DATE"),
    ("OHLCV_END", "END_DATE"),
];

/// Where InfluxDB is when chosen without a URL: the proof of concept's default.
pub const DEFAULT_INFLUXDB_URL: &str = "http://localhost:8086";

/// A token given directly, or read from a file (trimmed); empty is refused.
fn read_token(
    direct: Option<&str>,
    file: Option<&Path>,
    variable: &str,
) -> Result<Option<Secret>, ConfigError> {
    let (text, what) = match (direct, file) {
        (Some(t), _) => (t.to_string(), variable.to_string()),
        (None, Some(path)) => (
            std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                path: path.to_path_buf(),
                source,
            })?,
            path.display().to_string(),
        ),
        (None, None) => return Ok(None),
    };
    match text.trim() {
        "" => Err(ConfigError::EmptyToken { what }),
        token => Ok(Some(Secret::new(token))),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ohlcv",
    version,
    about = "Generate, store and serve stock trades and OHLCV candles"
)]
pub struct Cli {
    /// Directory of the embedded store: a path, `file:///path`, `s3://bucket/prefix` (with
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and, for other S3 servers,
    /// AWS_ENDPOINT_URL from the environment), `az://container/prefix` (AZURE_STORAGE_*) or
    /// `gs://bucket/prefix` (GOOGLE_APPLICATION_CREDENTIALS).
    #[arg(long, global = true, env = "OHLCV_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments and environment, reading each variable of
    /// [`LEGACY_ENV`] where ours is unset.
    pub fn parse_with_legacy_env() -> Result<Self, clap::Error> {
        let unset = |name: &str| std::env::var_os(name).is_none();
        let command = Cli::command().mut_subcommands(|sub| {
            sub.mut_args(|arg| {
                let legacy = LEGACY_ENV.iter().find(|(ours, theirs)| {
                    arg.get_env().is_some_and(|env| env == *ours) && unset(ours) && !unset(theirs)
                });
                match legacy {
                    Some((_, theirs)) => arg.env(theirs),
                    None => arg,
                }
            })
        });
        let mut matches = command.try_get_matches_from(std::env::args_os())?;
        Cli::from_arg_matches_mut(&mut matches)
    }
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
    /// Where trades go and are read from [default: influxdb when INFLUXDB_URL is set, as in
    /// the proof of concept's environment; parquet otherwise].
    #[arg(long, global = true, env = "OHLCV_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// InfluxDB base URL [default, once InfluxDB is the store: http://localhost:8086].
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
    /// A load refuses dates older than it. (The embedded store keeps everything.)
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
    /// How trades and candles are laid out in InfluxDB (docs/INFLUXDB.md, "Schema"); a load
    /// is read with the schema it was written with.
    #[arg(long, global = true, env = "INFLUXDB_SCHEMA", value_enum, default_value_t = Schema::Tags)]
    pub influxdb_schema: Schema,
}

impl StoreArgs {
    /// The store chosen, or the one the environment implies.
    pub fn kind(&self) -> StoreKind {
        self.store.unwrap_or(match self.influxdb_url {
            Some(_) => StoreKind::Influxdb,
            None => StoreKind::Parquet,
        })
    }

    pub fn influx(&self) -> Result<InfluxConfig, ConfigError> {
        let url = self.influxdb_url.as_deref().unwrap_or(DEFAULT_INFLUXDB_URL);
        let token = read_token(
            self.influxdb_token.as_deref(),
            self.influxdb_token_file.as_deref(),
            "INFLUXDB_TOKEN",
        )?;
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
            schema: self.influxdb_schema,
        })
    }

    /// The store reads go to: the dataset in `data_dir`, or the configured InfluxDB.
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Box<dyn Store>, ConfigError> {
        Ok(match self.kind() {
            StoreKind::Parquet => Box::new(ParquetStore::new(DataDir::open(
                &data_dir.to_string_lossy(),
            )?)),
            StoreKind::Influxdb => influx::open(self.influx()?).map_err(StoreError::from)?,
        })
    }

    /// Where loads write, with `load`'s write settings; InfluxDB checkpoints go to `data_dir`.
    pub fn target(
        &self,
        data_dir: &std::path::Path,
        load: &LoadArgs,
    ) -> Result<Target, ConfigError> {
        Ok(match self.kind() {
            StoreKind::Parquet => Target::Parquet {
                dir: DataDir::open(&data_dir.to_string_lossy())?,
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
    /// Print the realism report of the stored load, per symbol: volatility, tails,
    /// autocorrelations, leverage, volume shares, U shape, trade sizes, spread.
    Stats(StatsArgs),
    /// InfluxDB administration.
    #[command(subcommand)]
    Influx(InfluxCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Serve the HTTP API.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Any but a loopback address needs an API token, or
    /// --allow-unauthenticated.
    #[arg(long, env = "OHLCV_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// A request running longer than this many seconds is answered 503.
    #[arg(long, env = "OHLCV_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,
    /// A client must send a complete request head within this many seconds of the server
    /// waiting for it, or the connection is closed.
    #[arg(long, env = "OHLCV_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_secs: u64,
    /// A connection with no request in flight for this many seconds is closed (keep-alive
    /// connections between requests, and clients that send nothing).
    #[arg(long, env = "OHLCV_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_secs: u64,
    /// Connections held open at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "OHLCV_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Ingestion jobs kept for GET /api/v1/ingestions; beyond it the oldest finished are
    /// dropped.
    #[arg(long, env = "OHLCV_INGESTION_HISTORY", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub ingestion_history: u64,
    /// Bearer token that starting and stopping loads and /api/config require (every route
    /// but /health with --auth all).
    #[arg(long, env = "OHLCV_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// File holding the API token (used when OHLCV_API_TOKEN is not set).
    #[arg(long, env = "OHLCV_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Which routes need the token: writes (loads and /api/config) or all (all but /health).
    #[arg(long, env = "OHLCV_AUTH", value_enum, default_value_t = AuthScope::Writes)]
    pub auth: AuthScope,
    /// Serve a non-loopback address without a token (anyone who can reach it may start,
    /// stop and replace loads).
    #[arg(long, env = "OHLCV_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Most trades one `POST /api/v1/ingestions` may ask for; more is a 400, and the OpenAPI
    /// document states the bound. Does not bound `--trades`, the server's own load.
    #[arg(long, env = "OHLCV_MAX_INGESTION_TRADES", default_value_t = crate::api::MAX_INGESTION_TRADES,
        value_parser = clap::value_parser!(u64).range(1..=crate::api::MAX_INGESTION_TRADES))]
    pub max_ingestion_trades: u64,
    /// The load `POST /api/start` runs, and the defaults of `POST /api/v1/ingestions`.
    #[command(flatten)]
    pub load: LoadArgs,
}

impl ServeArgs {
    /// The connection limits the flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            // The flag's range keeps it far below usize::MAX on any target.
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }

    /// The API's access policy. Without a token, only a loopback address is served, unless
    /// --allow-unauthenticated says otherwise.
    pub fn auth(&self) -> Result<Auth, ConfigError> {
        let token = read_token(
            self.api_token.as_deref(),
            self.api_token_file.as_deref(),
            "OHLCV_API_TOKEN",
        )?;
        match token {
            Some(token) => Ok(Auth::token(token, self.auth)),
            None if self.auth == AuthScope::All => Err(ConfigError::AuthWithoutToken),
            None if !self.bind.is_loopback() && !self.allow_unauthenticated => {
                Err(ConfigError::Unprotected { addr: self.bind })
            }
            None => Ok(Auth::open()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum InfluxCommand {
    /// Create the bucket (v2) or database (v1) with its retention if missing. Idempotent.
    Setup,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run a matrix of write settings against the configured InfluxDB (v1 or v2 API), each
    /// into a fresh database or bucket it creates and drops, with the same trades; time the
    /// OHLCV queries on every candle path, verify each load, and write a report.
    Influx(BenchInfluxArgs),
}

#[derive(Debug, Args)]
pub struct BenchInfluxArgs {
    /// Trades every configuration loads.
    #[arg(long, env = "OHLCV_BENCH_TRADES", default_value_t = 2_000_000)]
    pub trades: u64,
    #[arg(
        long,
        env = "OHLCV_BENCH_SYMBOLS",
        value_delimiter = ',',
        default_value = "AAPL,MSFT,AMZN,GOOGL,META"
    )]
    pub symbols: Vec<Symbol>,
    #[arg(long, env = "OHLCV_BENCH_START", default_value = "2024-01-01", value_parser = parse_start)]
    pub start: NaiveDate,
    #[arg(long, env = "OHLCV_BENCH_END", default_value = "2024-12-31", value_parser = parse_end)]
    pub end: NaiveDate,
    #[arg(long, env = "OHLCV_BENCH_SEED", default_value_t = 42)]
    pub seed: u64,
    /// The matrix as a TOML file: any of the keys schema, batch_lines, writers, gzip,
    /// precision (lists) and vary, as the flags below are named. A flag given (or its
    /// environment variable) wins over the file's key; the file's key over the default.
    #[arg(long, env = "OHLCV_BENCH_MATRIX")]
    pub matrix: Option<PathBuf>,
    /// Data models to try (comma list; docs/INFLUXDB.md, "Schema")
    /// [default: tags,side_field,integer_price,per_symbol,no_trade_id].
    #[arg(long, env = "OHLCV_BENCH_SCHEMA", value_delimiter = ',', value_enum)]
    pub schema: Option<Vec<Schema>>,
    /// Lines per write request to try (comma list) [default: 10000,1000,50000].
    #[arg(long, env = "OHLCV_BENCH_BATCH_LINES", value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(1..=bench::MAX_BATCH_LINES as u64))]
    pub batch_lines: Option<Vec<u64>>,
    /// Concurrent writers to try (comma list) [default: 2,1,4].
    #[arg(long, env = "OHLCV_BENCH_WRITERS", value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(1..=bench::MAX_WRITERS as u64))]
    pub writers: Option<Vec<u64>>,
    /// Gzip request bodies or not (comma list of true, false) [default: false,true].
    #[arg(long, env = "OHLCV_BENCH_GZIP", value_delimiter = ',',
        value_parser = clap::value_parser!(bool))]
    pub gzip: Option<Vec<bool>>,
    /// Timestamp precisions to try (comma list); one coarser than the trades' times is
    /// reported rejected, with how many trades it would cut or merge [default: ns,us,ms].
    #[arg(long, env = "OHLCV_BENCH_PRECISION", value_delimiter = ',', value_enum)]
    pub precision: Option<Vec<Precision>>,
    /// one: the first value of each list is the base and every other value is tried with
    /// the base's other settings; all: every combination [default: one].
    #[arg(long, env = "OHLCV_BENCH_VARY", value_enum)]
    pub vary: Option<Vary>,
    /// Warm runs of each query, after its cold run.
    #[arg(long, env = "OHLCV_BENCH_QUERY_RUNS", default_value_t = 10)]
    pub query_runs: usize,
    /// Trades `verify` regenerates and compares field by field, per configuration.
    #[arg(long, env = "OHLCV_BENCH_VERIFY_SAMPLE", default_value_t = 1000)]
    pub verify_sample: usize,
    /// Generator threads (0: one per core).
    #[arg(long, env = "OHLCV_BENCH_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Databases (or buckets) the benchmark creates and drops are named <prefix>_<pid>_<n>.
    #[arg(long, env = "OHLCV_BENCH_PREFIX", default_value = "ohlcv_bench")]
    pub prefix: String,
    /// The server's process id, when it runs on this machine: its CPU seconds and peak
    /// resident memory are then read from /proc.
    #[arg(long, env = "OHLCV_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
    /// Directories holding a directory per database (1.x: its data and wal directories;
    /// comma list), when the server is local: the database's files there are reported too.
    #[arg(long, env = "OHLCV_BENCH_SERVER_DATA_DIR", value_delimiter = ',')]
    pub server_data_dir: Vec<PathBuf>,
    /// Seconds to wait after each load for a 1.x server to compact it (WAL snapshotted, no
    /// compaction running or queued), for its disk bytes after compaction; 0 does not wait.
    /// Only useful with the server's [data] cache-snapshot-write-cold-duration and
    /// compact-full-write-cold-duration below it, as scripts/bench-influx.sh sets them.
    #[arg(long, env = "OHLCV_BENCH_COMPACTION_WAIT_SECS", default_value_t = 0)]
    pub compaction_wait_secs: u64,
    /// Where report.json, report.md and the charts go.
    #[arg(long, env = "OHLCV_BENCH_REPORT", default_value = "./bench-report")]
    pub report: PathBuf,
}

impl BenchInfluxArgs {
    /// What to run, the matrix from the flags, the file and the defaults; checkpoints go to
    /// a scratch directory inside the report's.
    pub fn options(&self) -> Result<BenchOptions, bench::BenchError> {
        let file = match &self.matrix {
            Some(path) => MatrixFile::read(path)?,
            None => MatrixFile::default(),
        };
        let flags = MatrixFile {
            schema: self.schema.clone(),
            // The flags' ranges keep these far below usize::MAX.
            batch_lines: self
                .batch_lines
                .as_ref()
                .map(|b| b.iter().map(|&b| b as usize).collect()),
            writers: self
                .writers
                .as_ref()
                .map(|w| w.iter().map(|&w| w as usize).collect()),
            gzip: self.gzip.clone(),
            precision: self.precision.clone(),
            vary: self.vary,
        };
        Ok(BenchOptions {
            load: GeneratorConfig {
                trades: self.trades,
                symbols: self.symbols.clone(),
                start: self.start,
                end: self.end,
                seed: self.seed,
            },
            matrix: file.merge(flags),
            query_runs: self.query_runs,
            verify_sample: self.verify_sample,
            threads: self.threads,
            prefix: self.prefix.clone(),
            server_pid: self.server_pid,
            server_data_dirs: self.server_data_dir.clone(),
            scratch: self.report.join("checkpoints"),
            compaction_wait: Duration::from_secs(self.compaction_wait_secs),
        })
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Number of trades, exactly. Also read from TOTAL_TRADES.
    #[arg(long, env = "OHLCV_TRADES", default_value_t = 300_000_000)]
    pub trades: u64,
    /// Comma-separated symbols. Also read from SYMBOLS.
    #[arg(
        long,
        env = "OHLCV_SYMBOLS",
        value_delimiter = ',',
        default_value = "AAPL,MSFT,AMZN,GOOGL,META"
    )]
    pub symbols: Vec<Symbol>,
    /// First date, inclusive: YYYY-MM-DD, or an RFC 3339 date-time (the load then starts with
    /// the first session that opens at or after it). Also read from START_DATE.
    #[arg(long, env = "OHLCV_START", default_value = "2024-01-01", value_parser = parse_start)]
    pub start: NaiveDate,
    /// Last date, inclusive: YYYY-MM-DD, or an RFC 3339 date-time (the load then ends with the
    /// last session that closes at or before it). Also read from END_DATE.
    #[arg(long, env = "OHLCV_END", default_value = "2024-12-31", value_parser = parse_end)]
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

    /// InfluxDB: lines per write request. Also read from BATCH_SIZE.
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
    /// Load only the units K mod N of the load (K/N, 0-based; InfluxDB chunks, Parquet partitions),
    /// to share it among N processes or machines; the dataset is complete once all N are.
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
        }
    }
}

/// A date-time, its UTC date, and that date's session if it has one. A session (09:30 to
/// 16:00 New York) lies within one UTC date, so whether a date-time keeps or drops its own
/// date's session decides the bound; the dates on either side are wholly in or out.
fn exchange_date(s: &str) -> Result<(NaiveDate, Option<calendar::Session>, i64), String> {
    let instant = DateTime::parse_from_rfc3339(s).map_err(|_| {
        format!("invalid date {s:?}: expected YYYY-MM-DD or an RFC 3339 date-time, e.g. 2024-01-01T00:00:00Z")
    })?;
    let date = instant.naive_utc().date();
    let nanos = instant
        .timestamp_nanos_opt()
        .filter(|_| calendar::is_supported(date))
        .ok_or_else(|| {
            format!(
                "invalid date {s:?}: outside {}",
                calendar::supported_range()
            )
        })?;
    Ok((date, calendar::session(date), nanos))
}

/// The first date of a load starting at `s`: a date, or the date of the first session that
/// opens at or after a date-time.
pub fn parse_start(s: &str) -> Result<NaiveDate, String> {
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date);
    }
    let (date, session, instant) = exchange_date(s)?;
    Ok(match session {
        Some(session) if instant > session.open => date + Days::days(1),
        _ => date,
    })
}

/// The last date of a load ending at `s`, inclusive: a date, or the date of the last session
/// that closes at or before a date-time (trades lie before the close, so an end one
/// nanosecond before it keeps the session).
pub fn parse_end(s: &str) -> Result<NaiveDate, String> {
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date);
    }
    let (date, session, instant) = exchange_date(s)?;
    Ok(match session {
        Some(session) if instant < session.close - 1 => date - Days::days(1),
        _ => date,
    })
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

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Comma-separated symbols of the load to report [default: all of them].
    #[arg(long, env = "OHLCV_STATS_SYMBOLS", value_delimiter = ',')]
    pub symbols: Option<Vec<Symbol>>,
    /// table: one row per figure, one column per symbol; csv and json: one row per symbol.
    #[arg(long, env = "OHLCV_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
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
    fn date_times_bound_whole_sessions() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // The proof of concept's defaults are the whole of 2024.
        assert_eq!(parse_start("2024-01-01T00:00:00Z"), Ok(d("2024-01-01")));
        assert_eq!(parse_end("2024-12-31T23:59:59Z"), Ok(d("2024-12-31")));
        assert_eq!(parse_start("2024-03-15"), Ok(d("2024-03-15")));
        assert_eq!(parse_end("2024-03-15"), Ok(d("2024-03-15")));
        // 2024-03-15 opens at 13:30Z and closes at 20:00Z (EDT).
        assert_eq!(parse_start("2024-03-15T13:30:00Z"), Ok(d("2024-03-15")));
        assert_eq!(
            parse_start("2024-03-15T13:30:00.000000001Z"),
            Ok(d("2024-03-16"))
        );
        assert_eq!(
            parse_end("2024-03-15T19:59:59.999999999Z"),
            Ok(d("2024-03-15"))
        );
        assert_eq!(
            parse_end("2024-03-15T19:59:59.999999998Z"),
            Ok(d("2024-03-14"))
        );
        assert_eq!(parse_end("2024-03-15T16:00:00-04:00"), Ok(d("2024-03-15")));
        // Early close at 13:00 New York on 2024-11-29.
        assert_eq!(parse_end("2024-11-29T13:00:00-05:00"), Ok(d("2024-11-29")));
        assert_eq!(parse_end("2024-11-29T12:59:00-05:00"), Ok(d("2024-11-28")));
        // A time on a day without a session bounds at that day.
        assert_eq!(parse_start("2024-03-16T12:00:00Z"), Ok(d("2024-03-16")));
        for bad in [
            "2024-13-01",
            "yesterday",
            "2024-01-01T00:00:00",
            "1500-01-01T00:00:00Z",
            "9999-01-01T00:00:00Z",
        ] {
            assert!(parse_start(bad).is_err(), "{bad}");
            assert!(parse_end(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

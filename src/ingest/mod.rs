//! Loads: generate a [`LoadSpec`]'s trades and write them, with their 1-minute candles, to a
//! [`Target`], through one entry point, [`run`].
//!
//! - [`parquet`]: into the embedded store, one worker thread per core, a partition at a time;
//! - [`influx`]: into InfluxDB, generator threads feeding async writers, with a checkpoint;
//! - [`progress`]: live counters, and watching a load from a terminal (progress bar or JSON
//!   lines, Ctrl-C and SIGTERM stop it cleanly);
//! - [`jobs`]: loads in the background for the HTTP API, one at a time.
//!
//! Every load is idempotent and resumable: a chunk's trades depend only on the spec, so what
//! was written is kept and the rest written anew.
//!
//! Two different loads never write one store together. A load into a data directory holds the
//! directory's [`DirLock`](crate::store::publish::DirLock) from before it looks at what the
//! directory holds until it returns; a second one fails at once, naming the holder. The shards
//! of one load share that lock and merge their partitions into the manifest one at a time
//! ([`parquet`] has how). A load into InfluxDB, where shards of one
//! load may write from several machines, claims the target before writing a trade and backs
//! off if a different load has claimed it too ([`influx`] has the protocol).

pub mod influx;
pub mod jobs;
pub mod parquet;
pub mod progress;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::generator::{GeneratorConfig, GeneratorError};
use crate::store::influx::InfluxConfig;
pub use crate::store::influx::write::{BatchStats, BatchSummary, RetryPolicy, WriteOptions};
use crate::store::{DataDir, StoreError};
use crate::telemetry;
pub use progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("load cancelled")]
    Cancelled,
    /// The operating system refused a thread (out of memory or of its thread limit).
    #[error("cannot start the load's thread")]
    Thread(#[source] std::io::Error),
    /// A bug, contained: the load ends failed instead of leaving its other threads running.
    #[error("a load thread panicked: {0}")]
    Panicked(String),
    #[error("cannot write the checkpoint")]
    Checkpoint(#[source] StoreError),
    /// InfluxDB drops points older than its retention: refused before anything is written.
    #[error(
        "the load's first session ({first}) is older than the retention of {target} ({days} days \
         from now), so the server would drop its trades: load later dates, or set a longer \
         --influxdb-retention (INFLUXDB_RETENTION) for a new target; an existing one keeps its \
         own retention until changed on the server"
    )]
    BeyondRetention {
        first: NaiveDate,
        target: String,
        days: u32,
    },
}

impl From<crate::store::influx::InfluxError> for IngestError {
    fn from(e: crate::store::influx::InfluxError) -> Self {
        IngestError::Store(e.into())
    }
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Runs one worker thread's `body`. Its error, or its panic as [`IngestError::Panicked`],
/// cancels the other workers at once and is kept in `failure` if it is the first: a panic ends
/// the load like any error, instead of the scope waiting for the others to finish the load.
pub(crate) fn run_worker(
    progress: &Progress,
    failure: &std::sync::Mutex<Option<IngestError>>,
    body: impl FnOnce() -> Result<()>,
) {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|payload| {
            Err(IngestError::Panicked(telemetry::panic_message(
                payload.as_ref(),
            )))
        });
    if let Err(e) = outcome {
        progress.cancel();
        failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }
}

/// What a load generates and how it treats what the target already holds. The same spec
/// always writes the same trades; only `load` and the generator version decide them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoadSpec {
    #[serde(flatten)]
    pub load: GeneratorConfig,
    /// Delete a different load found in the target instead of refusing.
    pub replace: bool,
    /// InfluxDB: skip the chunks the checkpoint of this load and target lists as written
    /// (the embedded store always keeps what is published).
    pub resume: bool,
    /// The share of the load to write, to split it among processes or machines.
    #[serde(skip)]
    pub shard: Shard,
    /// Generator threads; 0 means one per core. The trades do not depend on it.
    #[serde(skip)]
    pub threads: usize,
}

impl LoadSpec {
    /// The spec of `load` with every other setting at its default.
    pub fn new(load: GeneratorConfig) -> Self {
        Self {
            load,
            replace: false,
            resume: false,
            shard: Shard::ALL,
            threads: 0,
        }
    }

    /// Worker threads to run (`0` means one per core).
    pub(crate) fn worker_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// `K/N`: this process loads the units (InfluxDB chunks, Parquet partitions) whose index is
/// `K` modulo `N` (0-based `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let err = || format!("invalid shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (u32, u32) =
            (k.parse().map_err(|_| err())?, n.parse().map_err(|_| err())?);
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    pub(crate) fn owns(&self, chunk: u32) -> bool {
        chunk % self.count == self.index
    }
}

/// Where a load writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The embedded Parquet dataset in a directory, local or on object storage.
    Parquet { dir: DataDir },
    /// An InfluxDB, written as `write` says, with its checkpoints kept in `checkpoint_dir`.
    Influx {
        config: Box<InfluxConfig>,
        write: WriteOptions,
        checkpoint_dir: PathBuf,
    },
}

impl Target {
    /// The store's name, as `ohlcv --store` spells it.
    pub fn store_name(&self) -> &'static str {
        match self {
            Target::Parquet { .. } => "parquet",
            Target::Influx { .. } => "influxdb",
        }
    }

    /// Where it is, for a log line: the directory, or InfluxDB's URL (without credentials)
    /// and bucket or database.
    pub fn describe(&self) -> String {
        match self {
            Target::Parquet { dir } => dir.describe(),
            Target::Influx { config, .. } => config.target(),
        }
    }
}

/// Trades are generated and written in batches of about this many rows (whole minutes), so
/// memory does not grow with the size of a chunk.
pub const BATCH_ROWS: usize = 64 * 1024;

/// What a load is cut into: the unit it skips when resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A month of a symbol group (the embedded store).
    Partitions,
    /// A symbol's session (InfluxDB).
    Chunks,
}

/// What a load did. Its `Display` is the summary `ohlcv load` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSummary {
    /// Trades the load consists of (only this shard's).
    pub trades: u64,
    /// Trades written by this run (the rest were already stored).
    pub written: u64,
    pub unit: Unit,
    /// Units of the load.
    pub units: usize,
    /// Units already stored, skipped by this run.
    pub skipped: usize,
    pub seconds: f64,
    pub trades_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    /// The embedded store's size after the load.
    pub bytes_on_disk: Option<u64>,
    /// InfluxDB: what the write path did.
    pub batches: Option<BatchSummary>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "trades          {}", self.trades)?;
        let (unit, stored) = match self.unit {
            Unit::Partitions => ("partitions", "already on disk"),
            Unit::Chunks => ("chunks", "already acknowledged"),
        };
        writeln!(
            f,
            "written         {} ({} {unit}, {} {stored})",
            self.written, self.units, self.skipped
        )?;
        writeln!(f, "seconds         {:.2}", self.seconds)?;
        writeln!(f, "trades/s        {:.0}", self.trades_per_second)?;
        match self.peak_rss_bytes {
            Some(b) => writeln!(f, "peak RSS        {:.1} MiB", mib(b))?,
            None => writeln!(f, "peak RSS        unknown on this OS")?,
        }
        if let Some(bytes) = self.bytes_on_disk {
            writeln!(
                f,
                "bytes on disk   {bytes} ({:.1} MiB, {:.2} bytes/trade)",
                mib(bytes),
                bytes as f64 / self.trades.max(1) as f64
            )?;
        }
        if let Some(b) = &self.batches {
            writeln!(
                f,
                "batches         {} sent, {} retried, {} failed, {} split",
                b.batches, b.retried, b.failed, b.split
            )?;
            writeln!(
                f,
                "bytes           {} before compression, {} sent",
                b.bytes_raw, b.bytes_sent
            )?;
            writeln!(
                f,
                "write latency   p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                b.latency_ms_p50, b.latency_ms_p90, b.latency_ms_p99, b.latency_ms_max
            )?;
        }
        Ok(())
    }
}

/// How a process holding a data directory's lock names itself: the program and the
/// subcommand that runs loads (`ohlcv load`, or `ohlcv serve` for its jobs). Only those words
/// are ever copied from the command line: its other arguments may hold credentials.
fn lock_holder_command() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map_or_else(|| "ohlcv".to_string(), |n| n.to_string_lossy().into_owned());
    match args.find(|a| a == "load" || a == "serve") {
        Some(subcommand) => format!("{program} {}", subcommand.to_string_lossy()),
        None => program,
    }
}

/// Runs the load `spec` into `target`, counting into `progress` (which also carries the
/// cancel flag) and, for InfluxDB, `stats`. Idempotent: the same load again writes nothing
/// new; an interrupted one continues where it stopped.
pub fn run(
    target: &Target,
    spec: &LoadSpec,
    progress: &Progress,
    stats: &Arc<BatchStats>,
) -> Result<LoadSummary> {
    let summary = match target {
        Target::Parquet { dir } => parquet::load(dir, spec, progress, &lock_holder_command())?,
        Target::Influx {
            config,
            write,
            checkpoint_dir,
        } => influx::load(config, write, checkpoint_dir, spec, progress, stats)?,
    };
    tracing::info!(
        trades = summary.trades,
        written = summary.written,
        seconds = summary.seconds,
        trades_per_second = summary.trades_per_second,
        peak_rss_bytes = summary.peak_rss_bytes,
        bytes_on_disk = summary.bytes_on_disk,
        batches = summary.batches.as_ref().map(|b| b.batches),
        retried = summary.batches.as_ref().map(|b| b.retried),
        failed = summary.batches.as_ref().map(|b| b.failed),
        bytes_raw = summary.batches.as_ref().map(|b| b.bytes_raw),
        bytes_sent = summary.batches.as_ref().map(|b| b.bytes_sent),
        latency_ms_p50 = summary.batches.as_ref().map(|b| b.latency_ms_p50),
        latency_ms_p99 = summary.batches.as_ref().map(|b| b.latency_ms_p99),
        "load complete"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_cancels_the_others_and_is_the_failure_reported() {
        let (progress, failure) = (Progress::default(), std::sync::Mutex::new(None));
        run_worker(&progress, &failure, || Ok(()));
        assert!(!progress.cancelled() && failure.lock().unwrap().is_none());
        run_worker(&progress, &failure, || -> Result<()> {
            panic!("chunk 7 out of range")
        });
        assert!(progress.cancelled());
        run_worker(&progress, &failure, || Err(IngestError::Cancelled));
        let first = failure.into_inner().unwrap();
        assert!(
            matches!(&first, Some(IngestError::Panicked(m)) if m == "chunk 7 out of range"),
            "{first:?}"
        );
    }
}

//! The load pipeline: plan partitions, generate their chunks in parallel, write them to the
//! store, keep the manifest true at every step.
//!
//! Each worker thread takes the next partition (one month of a symbol group), generates its
//! chunks in order and streams them into the partition's writer, so memory is bounded by one
//! open row group per worker whatever N is. Partitions are independent and deterministic, so
//! a load interrupted at any point is resumed by running it again: published partitions are
//! kept, the rest is written anew.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::candles;
use crate::generator::{GeneratorConfig, GeneratorError, MarketPlan};
use crate::model::{NANOS_PER_DAY, Nanos, TradeColumns};
use crate::store::StoreError;
use crate::store::manifest::{Manifest, Partition};
use crate::store::parquet::{ParquetStore, TARGET_ROWS_PER_FILE, month_of};
use crate::telemetry;

pub mod influx;
pub mod jobs;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("load cancelled")]
    Cancelled,
    #[error(transparent)]
    Influx(#[from] crate::store::influx::InfluxError),
    #[error("cannot write the checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// How to run a load into the embedded store.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub config: GeneratorConfig,
    /// Worker threads; `0` means one per core. The result does not depend on it.
    pub threads: usize,
    /// Delete a different load found in the data directory instead of refusing.
    pub replace: bool,
    pub retention_days: u32,
    /// Partitions ending before `now - retention` are not written, and removed if present.
    pub now: DateTime<Utc>,
}

/// Live counters a caller can watch while a load runs (progress bars, the API).
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub cancel: AtomicBool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadSummary {
    /// Trades the load consists of (less any beyond retention).
    pub trades: u64,
    /// Trades written by this run (the rest were already on disk).
    pub written: u64,
    pub partitions: usize,
    pub partitions_skipped: usize,
    pub partitions_expired: usize,
    pub seconds: f64,
    pub trades_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    pub bytes_on_disk: u64,
}

/// Trades are generated and written in batches of about this many rows (whole minutes), so
/// memory does not grow with the size of a chunk.
pub const BATCH_ROWS: usize = 64 * 1024;

/// A partition to write: which symbols (indices into the plan) over which sessions.
pub(crate) struct Job {
    pub partition: Partition,
    pub symbols: Vec<usize>,
    pub sessions: std::ops::Range<usize>,
}

/// Groups symbols so a file holds about [`TARGET_ROWS_PER_FILE`] trades a month.
fn symbols_per_group(plan: &MarketPlan, months: usize) -> usize {
    let n = plan.symbols().len();
    let per_symbol_month = plan.config().trades / (n * months.max(1)) as u64;
    ((TARGET_ROWS_PER_FILE / per_symbol_month.max(1)) as usize).clamp(1, n)
}

pub(crate) fn jobs(plan: &MarketPlan) -> Vec<Job> {
    let sessions = plan.sessions();
    let mut months: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let month = month_of(s.open);
        match months.last_mut() {
            Some((m, range)) if *m == month => range.end = i + 1,
            _ => months.push((month, i..i + 1)),
        }
    }
    let mut order: Vec<usize> = (0..plan.symbols().len()).collect();
    order.sort_by(|a, b| plan.symbols()[*a].symbol.cmp(&plan.symbols()[*b].symbol));
    let per_group = symbols_per_group(plan, months.len());
    let mut out = Vec::new();
    for (month, range) in months {
        for (group, members) in order.chunks(per_group).enumerate() {
            let (trades_file, candles_file) = ParquetStore::partition_files(&month, group as u32);
            let trades = members
                .iter()
                .flat_map(|s| range.clone().map(move |d| (*s, d)))
                .map(|(s, d)| plan.chunk(s, d).count)
                .sum();
            out.push(Job {
                partition: Partition {
                    month: month.clone(),
                    group: group as u32,
                    symbols: members
                        .iter()
                        .map(|s| plan.symbols()[*s].symbol.clone())
                        .collect(),
                    start: sessions[range.start].open,
                    end: sessions[range.end - 1].close,
                    trades,
                    trades_file,
                    candles_file,
                },
                symbols: members.to_vec(),
                sessions: range.clone(),
            });
        }
    }
    out
}

fn write_job(
    plan: &MarketPlan,
    store: &ParquetStore,
    job: &Job,
    progress: &Progress,
) -> Result<Partition> {
    let mut writer = store.partition_writer(job.partition.clone(), plan.resolution())?;
    for &s in &job.symbols {
        let symbol = &plan.symbols()[s].symbol;
        for d in job.sessions.clone() {
            if progress.cancel.load(Ordering::Relaxed) {
                return Err(IngestError::Cancelled);
            }
            let mut chunk = plan.chunk_trades(s, d);
            loop {
                let mut trades = TradeColumns::with_capacity(BATCH_ROWS + BATCH_ROWS / 4);
                if !chunk.fill(BATCH_ROWS, &mut trades) {
                    break;
                }
                if trades.is_empty() {
                    continue;
                }
                let candles = candles::minute_candles(&trades);
                let n = trades.len() as u64;
                writer.write_batch(symbol, trades, &candles)?;
                progress.done.fetch_add(n, Ordering::Relaxed);
            }
            writer.end_session()?;
        }
    }
    Ok(writer.finish()?)
}

/// Data ending at or before this instant is beyond the retention.
pub(crate) fn retention_cutoff(now: DateTime<Utc>, retention_days: u32) -> Nanos {
    now.timestamp_nanos_opt().unwrap_or(i64::MAX) - retention_days as i64 * NANOS_PER_DAY
}

/// `0` means one per core.
pub(crate) fn worker_threads(requested: usize) -> usize {
    if requested == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        requested
    }
}

/// Runs a load into the Parquet store at `dir`. Idempotent: the same load again writes nothing
/// new; an interrupted one continues where it stopped.
pub fn load(dir: &Path, options: &LoadOptions, progress: &Progress) -> Result<LoadSummary> {
    let started = Instant::now();
    let plan = MarketPlan::new(options.config.clone())?;
    let store = ParquetStore::new(dir);
    std::fs::create_dir_all(dir).map_err(crate::store::io_err(dir))?;

    let mut manifest = Manifest::new(options.config.clone(), options.retention_days);
    match Manifest::read(dir)? {
        Some(existing) if !existing.same_load(&manifest) => {
            if !options.replace {
                return Err(StoreError::DifferentLoad {
                    dir: dir.to_path_buf(),
                    existing: existing.describe(),
                }
                .into());
            }
            store.clear()?;
        }
        _ => {}
    }
    store.remove_temporary_files()?;

    let cutoff = retention_cutoff(options.now, options.retention_days);
    let mut expired = 0;
    let mut skipped = 0;
    let mut todo = Vec::new();
    for job in jobs(&plan) {
        if job.partition.end <= cutoff {
            store.remove_partition(&job.partition)?;
            expired += 1;
        } else if store.has_partition(&job.partition) {
            skipped += 1;
            manifest.partitions.push(job.partition);
        } else {
            todo.push(job);
        }
    }
    manifest.write(dir)?;

    let total: u64 = manifest.partitions.iter().map(|p| p.trades).sum::<u64>()
        + todo.iter().map(|j| j.partition.trades).sum::<u64>();
    let to_write: u64 = todo.iter().map(|j| j.partition.trades).sum();
    progress.total.store(to_write, Ordering::Relaxed);
    let threads = worker_threads(options.threads);

    // The manifest is rewritten after every published partition, so it always lists exactly
    // what readers may see, whenever the load stops.
    let next = AtomicUsize::new(0);
    let manifest = Mutex::new(manifest);
    let failure: Mutex<Option<IngestError>> = Mutex::new(None);
    let publish = |partition: Partition| -> Result<()> {
        let mut m = manifest.lock().expect("no panics while held");
        m.partitions.push(partition);
        m.partitions
            .sort_by(|a, b| (&a.month, a.group).cmp(&(&b.month, b.group)));
        Ok(m.write(dir)?)
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.min(todo.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = todo.get(i) else { break };
                    if let Err(e) = write_job(&plan, &store, job, progress).and_then(&publish) {
                        progress.cancel.store(true, Ordering::Relaxed);
                        failure
                            .lock()
                            .expect("no panics while held")
                            .get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });

    let mut manifest = manifest.into_inner().expect("threads joined");
    if let Some(e) = failure.into_inner().expect("threads joined") {
        return Err(e);
    }
    manifest.complete = true;
    manifest.write(dir)?;

    let seconds = started.elapsed().as_secs_f64();
    Ok(LoadSummary {
        trades: total,
        written: to_write,
        partitions: manifest.partitions.len(),
        partitions_skipped: skipped,
        partitions_expired: expired,
        seconds,
        trades_per_second: to_write as f64 / seconds.max(1e-9),
        peak_rss_bytes: telemetry::peak_rss_bytes(),
        bytes_on_disk: store.bytes_on_disk()?,
    })
}

//! The load into the embedded Parquet store.
//!
//! Each worker thread takes the next partition (one month of a symbol group), generates its
//! chunks in order and streams them into the partition's writer, so memory is bounded by one
//! open row group per worker whatever N is. Partitions are independent and deterministic, so
//! a load interrupted at any point is resumed by running it again: published partitions are
//! kept, the rest is written anew.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::{BATCH_ROWS, IngestError, LoadSpec, LoadSummary, Progress, Result, Unit};
use crate::candles;
use crate::generator::MarketPlan;
use crate::model::TradeColumns;
use crate::store::layout::{self, PlannedPartition};
use crate::store::manifest::{Manifest, Partition};
use crate::store::parquet::ParquetStore;
use crate::store::{StoreError, io_err, publish};
use crate::telemetry;

fn write_partition(
    plan: &MarketPlan,
    store: &ParquetStore,
    planned: &PlannedPartition,
    progress: &Progress,
) -> Result<Partition> {
    let mut writer = store.partition_writer(planned.partition.clone(), plan.resolution())?;
    for &s in &planned.symbols {
        #[allow(
            clippy::indexing_slicing,
            reason = "`layout::plan` lists positions in the plan's own symbols"
        )]
        let symbol = &plan.symbols()[s].symbol;
        for d in planned.sessions.clone() {
            let mut chunk = plan.chunk_trades(s, d);
            loop {
                // Every batch, not every session: a session of a big load is millions of
                // trades, and a stop should not wait for them.
                if progress.cancelled() {
                    return Err(IngestError::Cancelled);
                }
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

/// Runs a load into the Parquet store at `dir`.
///
/// A load resumes in place: the same load's published partitions are kept. A load replacing a
/// different one is written in a generation directory of its own while readers keep the old
/// load, and swapped in by publishing its manifest once complete ([`publish::generation_dir`]).
pub(super) fn load(dir: &Path, spec: &LoadSpec, progress: &Progress) -> Result<LoadSummary> {
    let started = Instant::now();
    let plan = MarketPlan::new(spec.load.clone())?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;

    let mut manifest = Manifest::new(spec.load.clone());
    let existing = Manifest::read(dir)?;
    // The load being replaced, once the new one is written beside it.
    let mut replaced = None;
    match &existing {
        Some(e) if e.same_load(&manifest) => manifest.root = e.root.clone(),
        Some(e) if !spec.replace => {
            return Err(StoreError::DifferentLoad {
                target: dir.display().to_string(),
                existing: e.describe(),
            }
            .into());
        }
        Some(e) => {
            manifest.root = publish::generation_dir(&manifest.fingerprint());
            replaced = Some(e);
        }
        None => {}
    }
    // Generations neither served nor being written are interrupted replaces of other loads.
    let live = existing.as_ref().map_or("", |e| e.root.as_str());
    publish::remove_generations_except(dir, &[live, &manifest.root])?;
    if !live.is_empty() {
        // Once a generation is served, files at the top level belong to no load: a replace
        // that stopped between its swap and its cleanup left them.
        ParquetStore::new(dir).remove_datasets()?;
    }
    let store = ParquetStore::new(dir.join(&manifest.root));
    store.remove_temporary_files()?;

    let mut skipped = 0;
    let mut todo = Vec::new();
    for planned in layout::plan(&plan) {
        if store.has_partition(&planned.partition) {
            skipped += 1;
            manifest.partitions.push(planned.partition);
        } else {
            todo.push(planned);
        }
    }
    // A replace publishes no manifest until its load is complete: readers keep the old one.
    // A complete load run again with nothing to write keeps its manifest as it is, so readers
    // never see it incomplete.
    let stays_complete = existing
        .as_ref()
        .is_some_and(|e| e.complete && e.same_load(&manifest) && todo.is_empty());
    let in_place = replaced.is_none();
    if in_place && !stays_complete {
        manifest.write(dir)?;
    }

    let total: u64 = manifest.partitions.iter().map(|p| p.trades).sum::<u64>()
        + todo.iter().map(|j| j.partition.trades).sum::<u64>();
    let to_write: u64 = todo.iter().map(|j| j.partition.trades).sum();
    progress.total.store(to_write, Ordering::Relaxed);

    // In place, the manifest is rewritten after every published partition, so it always lists
    // exactly what is on disk, whenever the load stops.
    let next = AtomicUsize::new(0);
    let manifest = Mutex::new(manifest);
    let failure: Mutex<Option<IngestError>> = Mutex::new(None);
    let publish = |partition: Partition| -> Result<()> {
        let mut m = manifest.lock().unwrap_or_else(|e| e.into_inner());
        m.partitions.push(partition);
        m.partitions
            .sort_by(|a, b| (&a.month, a.group).cmp(&(&b.month, b.group)));
        if in_place {
            m.write(dir)?;
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        for _ in 0..spec.worker_threads().min(todo.len()).max(1) {
            scope.spawn(|| {
                super::run_worker(progress, &failure, || {
                    while let Some(planned) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        write_partition(&plan, &store, planned, progress).and_then(&publish)?;
                    }
                    Ok(())
                })
            });
        }
    });

    let mut manifest = manifest.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    manifest.complete = true;
    if !stays_complete {
        // For a replace, this is the swap.
        manifest.write(dir)?;
    }
    if let Some(old) = replaced {
        if old.root.is_empty() {
            ParquetStore::new(dir).remove_datasets()?;
        } else {
            publish::remove_generations_except(dir, &[&manifest.root])?;
        }
    }

    let seconds = started.elapsed().as_secs_f64();
    Ok(LoadSummary {
        trades: total,
        written: to_write,
        unit: Unit::Partitions,
        units: manifest.partitions.len(),
        skipped,
        seconds,
        trades_per_second: to_write as f64 / seconds.max(1e-9),
        peak_rss_bytes: telemetry::peak_rss_bytes(),
        bytes_on_disk: Some(store.bytes_on_disk()?),
        batches: None,
    })
}

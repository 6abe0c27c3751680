//! The load into the embedded Parquet store.
//!
//! Each worker thread takes the next partition (one month of a symbol group), generates its
//! chunks in order and streams them into the partition's writer, so memory is bounded by one
//! open row group per worker whatever N is. Partitions are independent and deterministic, so
//! a load interrupted at any point is resumed by running it again: published partitions are
//! kept, the rest is written anew. Shards of one load (`--shard K/N`) split the partitions
//! among processes writing one directory at once, each merging what it published into the
//! manifest.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::{BATCH_ROWS, IngestError, LoadSpec, LoadSummary, Progress, Result, Shard, Unit};
use crate::candles;
use crate::generator::MarketPlan;
use crate::model::TradeColumns;
use crate::store::StoreError;
use crate::store::layout::{self, PlannedPartition};
use crate::store::manifest::{Manifest, Partition};
use crate::store::parquet::ParquetStore;
use crate::store::publish::{self, CommitLock, DirLock};
use crate::telemetry;

fn write_partition(
    plan: &MarketPlan,
    store: &ParquetStore,
    planned: &PlannedPartition,
    progress: &Progress,
) -> Result<Partition> {
    let mut writer = store.partition_writer(planned.partition.clone(), plan.resolution())?;
    for &s in &planned.symbols {
        let Some(symbol) = plan.symbols().get(s).map(|p| &p.symbol) else {
            continue;
        };
        for d in planned.sessions.clone() {
            if progress.cancelled() {
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

/// Runs a load into the Parquet store at `dir`, as the process `command` names.
///
/// A load resumes in place: the same load's published partitions are kept. A load replacing a
/// different one is written in a generation directory of its own while readers keep the old
/// load, and swapped in by publishing its manifest once complete ([`publish::generation_dir`]).
///
/// A shard (`spec.shard` other than all) writes the partitions whose index in the plan is its
/// own modulo the count, holding the directory's lock together with the other shards of the
/// same load ([`DirLock::join`]). Every shard publishes the manifest the same way: under the
/// commit lock it reads the manifest it finds, merges its partitions in and publishes the
/// result, complete once it lists every partition of the plan. So the shards may run at once,
/// in any order, and any of them again to resume.
pub(super) fn load(
    dir: &Path,
    spec: &LoadSpec,
    progress: &Progress,
    command: &str,
) -> Result<LoadSummary> {
    let started = Instant::now();
    let plan = MarketPlan::new(spec.load.clone())?;
    let mut manifest = Manifest::new(spec.load.clone());
    let fingerprint = manifest.fingerprint();
    let sharded = spec.shard != Shard::ALL;

    // Held until the load returns, taken before it looks at the directory: the check for a
    // different load, the housekeeping and every write happen under it, so two loads never
    // interleave (InfluxDB targets have their claims instead).
    let (_lock, alone, existing) = if sharded {
        let commit = CommitLock::acquire(dir)?;
        let (lock, alone) = DirLock::join(dir, command, &fingerprint, &commit)?;
        (lock, alone, Manifest::read(dir)?)
    } else {
        (DirLock::acquire(dir, command)?, true, Manifest::read(dir)?)
    };
    match &existing {
        Some(e) if e.same_load(&manifest) => manifest.root = e.root.clone(),
        Some(e) if !spec.replace => {
            return Err(StoreError::DifferentLoad {
                target: dir.display().to_string(),
                existing: e.describe(),
            }
            .into());
        }
        Some(_) => manifest.root = publish::generation_dir(&fingerprint),
        None => {}
    }
    let in_place = existing.as_ref().is_none_or(|e| e.root == manifest.root);
    let store = ParquetStore::new(dir.join(&manifest.root));
    // Only a lone writer tidies up: other shards' temporary files are files being written.
    if alone {
        // Generations neither served nor being written are interrupted replaces of other loads.
        let live = existing.as_ref().map_or("", |e| e.root.as_str());
        publish::remove_generations_except(dir, &[live, &manifest.root])?;
        store.remove_temporary_files()?;
    }

    let planned = layout::plan(&plan);
    let mut mine = Vec::new();
    let mut todo = Vec::new();
    for (index, p) in planned.iter().enumerate() {
        if !u32::try_from(index).is_ok_and(|i| spec.shard.owns(i)) {
            continue;
        }
        if store.has_partition(&p.partition) {
            mine.push(p.partition.clone());
        } else {
            todo.push(p);
        }
    }
    let skipped = mine.len();
    let units = skipped + todo.len();
    let commit = Commit {
        dir,
        store: &store,
        in_place,
        planned: &planned,
        load: &manifest,
    };
    // In place, the manifest lists what is on disk from the start; a complete load run again
    // with nothing to write finds its manifest already as it would write it and leaves it, so
    // readers never see it incomplete.
    commit.merge(&mine)?;

    let total: u64 = mine.iter().map(|p| p.trades).sum::<u64>()
        + todo.iter().map(|j| j.partition.trades).sum::<u64>();
    let to_write: u64 = todo.iter().map(|j| j.partition.trades).sum();
    progress.total.store(to_write, Ordering::Relaxed);

    // Every published partition is committed at once, so the manifest always lists exactly
    // what is on disk, whenever the load stops.
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<IngestError>> = Mutex::new(None);
    let publish = |partition: Partition| -> Result<()> {
        commit.merge(&[partition])?;
        Ok(())
    };
    std::thread::scope(|scope| {
        for _ in 0..spec.worker_threads().min(todo.len()).max(1) {
            scope.spawn(|| {
                let worked = super::contain_panic(|| {
                    while let Some(planned) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        write_partition(&plan, &store, planned, progress).and_then(&publish)?;
                    }
                    Ok(())
                });
                if let Err(e) = worked {
                    progress.cancel();
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let complete = commit.merge(&[])?;
    if !complete {
        tracing::info!(
            shard = format!("{}/{}", spec.shard.index, spec.shard.count),
            "this shard is published; the dataset is complete once every shard is"
        );
    }

    let seconds = started.elapsed().as_secs_f64();
    Ok(LoadSummary {
        trades: total,
        written: to_write,
        unit: Unit::Partitions,
        units,
        skipped,
        seconds,
        trades_per_second: to_write as f64 / seconds.max(1e-9),
        peak_rss_bytes: telemetry::peak_rss_bytes(),
        bytes_on_disk: Some(store.bytes_on_disk()?),
        batches: None,
    })
}

/// How a load publishes its partitions into the manifest.
struct Commit<'a> {
    dir: &'a Path,
    store: &'a ParquetStore,
    /// The load is written where the live manifest points (no replace).
    in_place: bool,
    planned: &'a [PlannedPartition],
    /// The load's manifest, without partitions.
    load: &'a Manifest,
}

impl Commit<'_> {
    /// Merges `published` into the manifest found in the directory and publishes the result
    /// if it differs; returns whether the load is complete.
    ///
    /// In place, the manifest found lists what every writer has published so far. A replace
    /// leaves the old load's manifest until every partition of the new one is on disk, then
    /// publishes the new one, complete (the swap), and removes the old load's files.
    fn merge(&self, published: &[Partition]) -> crate::store::Result<bool> {
        // Taken by every commit, not only the shards': a load's worker threads commit too,
        // and each acquire locks an open file of its own, so they take turns like processes.
        let _commit = CommitLock::acquire(self.dir)?;
        let found = Manifest::read(self.dir)?;
        let mut next = self.load.clone();
        if self.in_place {
            if let Some(found) = found.as_ref().filter(|f| f.same_load(self.load)) {
                next.partitions = found.partitions.clone();
            }
            for p in published {
                next.partitions
                    .retain(|q| (&q.month, q.group) != (&p.month, p.group));
                next.partitions.push(p.clone());
            }
        } else {
            next.partitions = self
                .planned
                .iter()
                .map(|p| &p.partition)
                .filter(|p| self.store.has_partition(p))
                .cloned()
                .collect();
        }
        next.partitions
            .sort_by(|a, b| (&a.month, a.group).cmp(&(&b.month, b.group)));
        next.complete = next.partitions.len() == self.planned.len();
        let swap = !self.in_place && next.complete && found.as_ref() != Some(&next);
        if self.in_place && found.as_ref() != Some(&next) || swap {
            next.write(self.dir)?;
        }
        if swap && let Some(old) = found.filter(|f| f.root != next.root) {
            if old.root.is_empty() {
                ParquetStore::new(self.dir).remove_datasets()?;
            } else {
                publish::remove_generations_except(self.dir, &[&next.root])?;
            }
        }
        Ok(next.complete)
    }
}

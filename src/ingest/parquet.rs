//! The load into the embedded Parquet store.
//!
//! Each worker thread takes the next partition (one month of a symbol group), generates its
//! chunks in order and streams them into the partition's writer, so memory is bounded by one
//! open row group per worker whatever N is. Partitions are independent and deterministic, so
//! a load interrupted at any point is resumed by running it again: published partitions are
//! kept, the rest is written anew. Shards of one load (`--shard K/N`) split the partitions
//! among processes writing one directory at once, each merging what it published into the
//! manifest.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::{BATCH_ROWS, IngestError, LoadSpec, LoadSummary, Progress, Result, Shard, Unit};
use crate::candles;
use crate::generator::MarketPlan;
use crate::model::TradeColumns;
use crate::store::layout::{self, PlannedPartition};
use crate::store::manifest::{Manifest, Partition};
use crate::store::parquet::ParquetStore;
use crate::store::publish::{self, CommitLock, DirLock};
use crate::store::{DataDir, StoreError};
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
///
/// On object storage there is no lock to share: the manifest's conditional commit is what
/// keeps writers from losing each other's partitions, and a different load is refused by the
/// manifest it finds.
pub(super) fn load(
    dir: &DataDir,
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
    let (_lock, alone, existing) = match dir {
        DataDir::Local(dir) if sharded => {
            let commit = CommitLock::acquire(dir)?;
            let (lock, alone) = DirLock::join(dir, command, &fingerprint, &commit)?;
            (Some(lock), alone, Manifest::read(dir)?)
        }
        DataDir::Local(dir) => (
            Some(DirLock::acquire(dir, command)?),
            true,
            Manifest::read(dir)?,
        ),
        DataDir::Remote(remote) => (None, false, remote.read_manifest()?),
    };
    match &existing {
        Some(e) if e.same_load(&manifest) => manifest.root = e.root.clone(),
        Some(e) if !spec.replace => {
            return Err(StoreError::DifferentLoad {
                target: dir.describe(),
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
    if let (DataDir::Local(dir), true) = (dir, alone) {
        // Generations neither served nor being written are interrupted replaces of other loads.
        let live = existing.as_ref().map_or("", |e| e.root.as_str());
        publish::remove_generations_except(dir, &[live, &manifest.root])?;
        if !live.is_empty() {
            // Once a generation is served, files at the top level belong to no load: a
            // replace that stopped between its swap and its cleanup left them.
            ParquetStore::new(dir).remove_datasets()?;
        }
        store.remove_temporary_files()?;
    }

    let planned = layout::plan(&plan);
    let mut mine = Vec::new();
    let mut todo = Vec::new();
    for (index, p) in planned.iter().enumerate() {
        if !u32::try_from(index).is_ok_and(|i| spec.shard.owns(i)) {
            continue;
        }
        if store.has_partition(&p.partition)? {
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
                super::run_worker(progress, &failure, || {
                    while let Some(planned) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        write_partition(&plan, &store, planned, progress).and_then(&publish)?;
                    }
                    Ok(())
                })
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
        bytes_on_disk: Some(match sharded {
            // A shard's summary is about its own trades: the bytes of its own partitions.
            true => planned
                .iter()
                .enumerate()
                .filter(|(i, _)| u32::try_from(*i).is_ok_and(|i| spec.shard.owns(i)))
                .map(|(_, p)| store.partition_bytes(&p.partition))
                .sum::<crate::store::Result<u64>>()?,
            false => store.bytes_on_disk()?,
        }),
        batches: None,
    })
}

/// How a load publishes its partitions into the manifest.
struct Commit<'a> {
    dir: &'a DataDir,
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
    /// leaves the old load's manifest until every partition of the new one is published, then
    /// publishes the new one, complete (the swap), and removes the old load's files.
    ///
    /// Locally the commit lock makes the read, merge and rename one step; on object storage
    /// the conditional PUT does, merging again whenever another writer committed in between.
    fn merge(&self, published: &[Partition]) -> crate::store::Result<bool> {
        let (found, next) = match self.dir {
            DataDir::Local(dir) => {
                // Taken by every commit, not only the shards': a load's worker threads commit
                // too, and each acquire locks an open file of its own, so they take turns like
                // processes.
                let _commit = CommitLock::acquire(dir)?;
                let found = Manifest::read(dir)?;
                let next = self.next(found.as_ref(), published)?;
                if let Some(next) = &next {
                    next.write(dir)?;
                }
                (found, next)
            }
            DataDir::Remote(remote) => {
                let mut failed = None;
                let mut last = None;
                let found = remote.commit_manifest(|found| match self.next(found, published) {
                    Ok(next) => {
                        last = Some((found.cloned(), next.clone()));
                        next
                    }
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
                match last {
                    Some((before, next)) => (before, next),
                    None => (found, None),
                }
            }
        };
        let Some(next) = next else {
            // Nothing to publish: complete if what is published is this load, complete.
            return Ok(found.is_some_and(|f| {
                f.same_load(self.load) && f.root == self.load.root && f.complete
            }));
        };
        if let Some(old) = found.filter(|f| f.root != next.root && next.complete) {
            self.remove_replaced(&old, &next)?;
        }
        Ok(next.complete)
    }

    /// The manifest to publish over `found`, with `published` merged in, or `None` to leave it.
    fn next(
        &self,
        found: Option<&Manifest>,
        published: &[Partition],
    ) -> crate::store::Result<Option<Manifest>> {
        let mut next = self.load.clone();
        if self.in_place {
            match found {
                Some(found) if found.same_load(self.load) => {
                    next.partitions = found.partitions.clone();
                }
                // On object storage, where no lock keeps loads apart, a different load that
                // committed its manifest first.
                Some(found) => {
                    return Err(StoreError::DifferentLoad {
                        target: self.dir.describe(),
                        existing: found.describe(),
                    });
                }
                None => {}
            }
            for p in published {
                next.partitions
                    .retain(|q| (&q.month, q.group) != (&p.month, p.group));
                next.partitions.push(p.clone());
            }
        } else {
            for p in self.planned.iter().map(|p| &p.partition) {
                if self.store.has_partition(p)? {
                    next.partitions.push(p.clone());
                }
            }
        }
        next.partitions
            .sort_by(|a, b| (&a.month, a.group).cmp(&(&b.month, b.group)));
        next.complete = next.partitions.len() == self.planned.len();
        let publish = (self.in_place || next.complete) && found != Some(&next);
        Ok(publish.then_some(next))
    }

    /// Removes the files of `old`, the load `next` has just replaced.
    fn remove_replaced(&self, old: &Manifest, next: &Manifest) -> crate::store::Result<()> {
        match (self.dir, old.root.is_empty()) {
            (_, true) => ParquetStore::new(self.dir.clone()).remove_datasets(),
            (DataDir::Local(dir), false) => {
                publish::remove_generations_except(dir, &[&next.root]).map(|_| ())
            }
            (DataDir::Remote(remote), false) => remote.delete_all(&old.root),
        }
    }
}

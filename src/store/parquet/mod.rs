//! The embedded store: a Parquet dataset any Parquet reader (DuckDB, pandas, polars) opens,
//! laid out as [`crate::store::layout`] says.
//!
//! - [`schema`]: the Arrow schemas, writer settings and batch conversions;
//! - [`writer`]: a partition's two files, published only once complete;
//! - [`scan`]: one symbol's rows in a time range, pruned by row-group statistics;
//! - `cache`: the manifest and decoded candles, kept between calls;
//! - here: [`ParquetStore`], its housekeeping (resume, replace) and its
//!   [`Store`] implementation.
//!
//! Files are written under a temporary name, fsynced and renamed ([`crate::store::publish`]):
//! a crash leaves at most an invisible temporary file, removed by the next load.

mod cache;
pub mod scan;
pub mod schema;
pub mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::{Cache, Level};
use scan::{Columns, scan};
pub use writer::PartitionWriter;

use super::layout::{CANDLES_DIR, PartitionFiles, TRADES_DIR};
use super::{DataDir, Manifest, Partition, Result, Store, io_err, publish};
use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TimeResolution, TradeColumns};

/// The embedded Parquet store rooted at a data directory, local or on object storage.
#[derive(Debug, Clone)]
pub struct ParquetStore {
    dir: DataDir,
    cache: Arc<Cache>,
}

impl ParquetStore {
    pub fn new(dir: impl Into<DataDir>) -> Self {
        Self {
            dir: dir.into(),
            cache: Arc::default(),
        }
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// [`scan`] of `file` of the load `manifest` describes, wherever the directory is.
    #[allow(
        clippy::too_many_arguments,
        reason = "scan's arguments, and which file"
    )]
    fn scan_file(
        &self,
        manifest: &Manifest,
        file: &str,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        columns: Columns,
        each: impl FnMut(&arrow_array::RecordBatch, std::ops::Range<usize>, i64) -> bool,
    ) -> Result<()> {
        match &self.dir {
            DataDir::Local(dir) => scan(
                &dir.join(&manifest.root).join(file),
                symbol,
                start,
                end,
                columns,
                each,
            ),
            DataDir::Remote(remote) => {
                let rel = match manifest.root.as_str() {
                    "" => file.to_string(),
                    root => format!("{root}/{file}"),
                };
                let footer = self.cache.footer(&rel, || remote.footer(&rel))?;
                scan::scan_remote(remote, &rel, footer, symbol, start, end, columns, each)
            }
        }
    }

    /// The decoded-candle cache's key of `file`: a replaced load's files are other entries.
    fn cache_key(manifest: &Manifest, file: &str) -> String {
        format!("{}/{file}", manifest.root)
    }

    /// All of `symbol`'s 1-minute candles in `file` of `manifest`'s load, decoded once.
    fn file_candles(
        &self,
        manifest: &Manifest,
        file: &str,
        symbol: &Symbol,
    ) -> Result<Arc<Vec<Candle>>> {
        let key = Self::cache_key(manifest, file);
        self.cache.candles(Level::Minutes, &key, symbol, || {
            let mut all = Vec::new();
            self.scan_file(
                manifest,
                file,
                symbol,
                i64::MIN,
                i64::MAX,
                Columns::All,
                |batch, rows, scale| {
                    schema::read_candles(batch, rows, scale, &mut all);
                    true
                },
            )?;
            Ok(all)
        })
    }

    /// All of `symbol`'s 1-hour candles in `file`, rolled up once from its 1-minute candles.
    fn file_hours(
        &self,
        manifest: &Manifest,
        file: &str,
        symbol: &Symbol,
    ) -> Result<Arc<Vec<Candle>>> {
        let key = Self::cache_key(manifest, file);
        self.cache.candles(Level::Hours, &key, symbol, || {
            Ok(crate::candles::hour_candles(
                &self.file_candles(manifest, file, symbol)?,
            ))
        })
    }

    /// Lends the cached candles at `level` of each partition in range.
    fn visit_cached(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        level: Level,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        let (manifest, partitions) = self.partitions_for(symbol, start, end)?;
        for p in partitions {
            let file = PartitionFiles::of(&p).candles;
            let all = match level {
                Level::Minutes => self.file_candles(&manifest, &file, symbol)?,
                Level::Hours => self.file_hours(&manifest, &file, symbol)?,
            };
            let from = all.partition_point(|c| c.time < start);
            let to = all.partition_point(|c| c.time < end).max(from);
            visit(all.get(from..to).unwrap_or_default());
        }
        Ok(())
    }

    /// The manifest, and those of its partitions that hold `symbol` in `[start, end)`.
    fn partitions_for(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
    ) -> Result<(Arc<Manifest>, Vec<Partition>)> {
        let manifest = self.cache.manifest(&self.dir)?;
        let partitions = manifest
            .partitions
            .iter()
            .filter(|p| p.start < end && start < p.end && p.symbols.contains(symbol))
            .cloned()
            .collect();
        Ok((manifest, partitions))
    }

    /// True if both files of `partition` are published.
    pub fn has_partition(&self, partition: &Partition) -> Result<bool> {
        let files = PartitionFiles::of(partition);
        Ok(match &self.dir {
            DataDir::Local(dir) => {
                dir.join(files.trades).is_file() && dir.join(files.candles).is_file()
            }
            DataDir::Remote(remote) => {
                remote.head(&files.trades)?.is_some() && remote.head(&files.candles)?.is_some()
            }
        })
    }

    pub fn partition_writer(
        &self,
        partition: Partition,
        resolution: TimeResolution,
    ) -> Result<PartitionWriter> {
        match &self.dir {
            DataDir::Local(dir) => PartitionWriter::create(dir, partition, resolution),
            DataDir::Remote(remote) => {
                PartitionWriter::create_remote(remote.clone(), partition, resolution)
            }
        }
    }

    /// Removes leftovers of interrupted writes: temporary files nobody will publish. An object
    /// store has none: an object exists whole or not at all.
    pub fn remove_temporary_files(&self) -> Result<usize> {
        let DataDir::Local(dir) = &self.dir else {
            return Ok(0);
        };
        let mut removed = 0;
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            for path in walk_files(&dir.join(dataset))? {
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(publish::is_temporary)
                {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes the partition files of a load laid out in the directory itself, once a
    /// replacing load's manifest no longer lists them; the manifest and the directory's lock
    /// file stay.
    pub fn remove_datasets(&self) -> Result<()> {
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            match &self.dir {
                DataDir::Local(dir) => remove(&dir.join(dataset), |p| fs::remove_dir_all(p))?,
                DataDir::Remote(remote) => remote.delete_all(dataset)?,
            }
        }
        Ok(())
    }

    /// Bytes of the two files of `partition`.
    pub fn partition_bytes(&self, partition: &Partition) -> Result<u64> {
        let files = PartitionFiles::of(partition);
        let mut total = 0;
        for file in [files.trades, files.candles] {
            total += match &self.dir {
                DataDir::Local(dir) => {
                    let path = dir.join(file);
                    fs::metadata(&path).map_err(io_err(&path))?.len()
                }
                DataDir::Remote(remote) => remote.head(&file)?.map_or(0, |(size, _)| size),
            };
        }
        Ok(total)
    }

    /// Bytes of every published Parquet file.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        let mut total = 0;
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            match &self.dir {
                DataDir::Local(dir) => {
                    for path in walk_files(&dir.join(dataset))? {
                        total += fs::metadata(&path).map_err(io_err(&path))?.len();
                    }
                }
                DataDir::Remote(remote) => {
                    total += remote
                        .list(dataset)?
                        .iter()
                        .map(|(_, size)| size)
                        .sum::<u64>();
                }
            }
        }
        Ok(total)
    }
}

/// Removes `path` with `how`; already gone is fine.
fn remove(path: &Path, how: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    match how(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            out.extend(walk_files(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

impl Store for ParquetStore {
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> Result<TradeColumns> {
        let mut out = TradeColumns::default();
        let limit = limit.unwrap_or(usize::MAX);
        let (manifest, partitions) = self.partitions_for(symbol, start, end)?;
        for p in partitions {
            self.scan_file(
                &manifest,
                &PartitionFiles::of(&p).trades,
                symbol,
                start,
                end,
                Columns::All,
                |batch, rows, scale| {
                    let rows = rows.start..rows.start + rows.len().min(limit - out.len());
                    schema::read_trades(batch, rows, scale, &mut out);
                    out.len() < limit
                },
            )?;
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn minute_candles(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Candle>> {
        let mut out = Vec::new();
        self.visit_minute_candles(symbol, start, end, &mut |c| out.extend_from_slice(c))?;
        Ok(out)
    }

    fn visit_minute_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        self.visit_cached(symbol, start, end, Level::Minutes, visit)
    }

    fn visit_hour_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        self.visit_cached(symbol, start, end, Level::Hours, visit)
    }

    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>> {
        let manifest = self.cache.manifest(&self.dir)?;
        let mut earlier: Vec<&Partition> = manifest
            .partitions
            .iter()
            .filter(|p| p.start < before && p.symbols.contains(symbol))
            .collect();
        earlier.sort_by_key(|p| p.start);
        for p in earlier.into_iter().rev() {
            let all = self.file_candles(&manifest, &PartitionFiles::of(p).candles, symbol)?;
            let upto = all.partition_point(|c| c.time < before);
            if let Some(last) = upto.checked_sub(1).and_then(|i| all.get(i)) {
                return Ok(Some(last.close));
            }
        }
        Ok(None)
    }

    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; ranges.len()];
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
            return Ok(counts);
        };
        let (start, end) = (first.0, last.1);
        let (manifest, partitions) = self.partitions_for(symbol, start, end)?;
        for p in partitions {
            let mut r = 0;
            self.scan_file(
                &manifest,
                &PartitionFiles::of(&p).trades,
                symbol,
                start,
                end,
                Columns::SymbolAndTime,
                |batch, rows, scale| {
                    let Some((times, _)) = schema::raw_times(batch.column(1)) else {
                        return false;
                    };
                    for t in times
                        .get(rows)
                        .unwrap_or_default()
                        .iter()
                        .map(|t| t * scale)
                    {
                        while ranges.get(r).is_some_and(|range| range.1 <= t) {
                            r += 1;
                        }
                        if let (Some(range), Some(count)) = (ranges.get(r), counts.get_mut(r))
                            && range.0 <= t
                        {
                            *count += 1;
                        }
                    }
                    true
                },
            )?;
        }
        Ok(counts)
    }

    fn manifest(&self) -> Result<Manifest> {
        Ok(self.cache.manifest(&self.dir)?.as_ref().clone())
    }

    fn complete(&self) -> Result<bool> {
        Ok(self.cache.manifest(&self.dir)?.complete)
    }
}

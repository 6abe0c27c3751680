//! Writing one partition: both files under temporary names until [`PartitionWriter::finish`]
//! publishes them, so a partition is visible only once complete.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;

use super::schema::{
    CANDLES_DELTA_COLUMNS, TRADES_DELTA_COLUMNS, candles_batch, candles_schema, trades_batch,
    trades_schema, writer_properties,
};
use crate::candles::Candle;
use crate::model::{Symbol, TimeResolution, TradeColumns};
use crate::store::layout::PartitionFiles;
use crate::store::remote::Remote;
use crate::store::{Backend, Partition, Result, StoreError, io_err, publish};

/// A row group closes at the first session boundary past this many rows, so a query for one
/// symbol and day decodes about one row group, found by the row-group statistics.
pub const ROW_GROUP_MIN_ROWS: usize = 128 * 1024;

/// Writing or closing `path` failed: the disk, not the data, is at fault.
fn write_err(path: &Path) -> impl FnOnce(ParquetError) -> StoreError + '_ {
    move |source| {
        StoreError::Unavailable(Backend::Parquet {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One file being written, under its temporary name.
struct Pending {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Pending {
    fn create(path: PathBuf, schema: arrow_schema::SchemaRef, delta: &[&str]) -> Result<Self> {
        let parent = path.parent().unwrap_or(Path::new("."));
        publish::create_dirs(parent)?;
        let tmp = publish::temp_path(&path);
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties(delta)))
            .map_err(write_err(&tmp))?;
        Ok(Self { writer, tmp, path })
    }

    fn write(&mut self, batch: &arrow_array::RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(write_err(&self.tmp))
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(write_err(&self.tmp))
    }

    /// Closes and fsyncs the file; it is published by the caller.
    fn close(self) -> Result<(PathBuf, PathBuf)> {
        let file = self.writer.into_inner().map_err(write_err(&self.tmp))?;
        file.sync_all().map_err(io_err(&self.tmp))?;
        Ok((self.tmp, self.path))
    }
}

/// One partition being written.
pub struct PartitionWriter {
    trades: Pending,
    candles: Pending,
    /// Object storage: the files are written in a local staging directory and uploaded there,
    /// each with one PUT, once complete.
    upload: Option<(Remote, PartitionFiles)>,
    partition: Partition,
    current_symbol: Option<Symbol>,
    resolution: TimeResolution,
}

impl PartitionWriter {
    pub(super) fn create(
        dir: &Path,
        mut partition: Partition,
        resolution: TimeResolution,
    ) -> Result<Self> {
        let files = PartitionFiles::of(&partition);
        let trades = Pending::create(
            dir.join(&files.trades),
            trades_schema(resolution),
            TRADES_DELTA_COLUMNS,
        )?;
        let candles = Pending::create(
            dir.join(&files.candles),
            candles_schema(resolution),
            CANDLES_DELTA_COLUMNS,
        )?;
        partition.trades = 0;
        Ok(Self {
            trades,
            candles,
            upload: None,
            partition,
            current_symbol: None,
            resolution,
        })
    }

    /// A writer of `partition` into the data directory `remote`, staged in a local temporary
    /// directory of this process.
    pub(super) fn create_remote(
        remote: Remote,
        partition: Partition,
        resolution: TimeResolution,
    ) -> Result<Self> {
        let staging = std::env::temp_dir().join(format!("ohlcv-upload-{}", std::process::id()));
        let mut writer = Self::create(&staging, partition, resolution)?;
        writer.upload = Some((remote, PartitionFiles::of(&writer.partition)));
        Ok(writer)
    }

    /// Appends a batch of `symbol`'s trades (time-ordered, after any earlier batch of the
    /// symbol, split on minute boundaries) and its 1-minute candles. Symbols must come in
    /// sorted order.
    pub fn write_batch(
        &mut self,
        symbol: &Symbol,
        trades: TradeColumns,
        candles: &[Candle],
    ) -> Result<()> {
        if self.current_symbol.as_ref() != Some(symbol) {
            // Row groups never span two symbols.
            if self.current_symbol.is_some() {
                self.trades.flush()?;
                self.candles.flush()?;
            }
            self.current_symbol = Some(symbol.clone());
        }
        self.partition.trades += trades.len() as u64;
        let trades = trades_batch(symbol, trades, self.resolution)
            .map_err(|e| write_err(&self.trades.tmp)(e.into()))?;
        self.trades.write(&trades)?;
        let candles = candles_batch(symbol, candles, self.resolution)
            .map_err(|e| write_err(&self.candles.tmp)(e.into()))?;
        self.candles.write(&candles)
    }

    /// Marks the end of a session's trades: the row group closes here if it is big enough, so
    /// that a symbol-day is usually one row group.
    pub fn end_session(&mut self) -> Result<()> {
        if self.trades.writer.in_progress_rows() >= ROW_GROUP_MIN_ROWS {
            self.trades.flush()?;
        }
        Ok(())
    }

    /// Closes, fsyncs and publishes both files; returns the partition as the manifest lists it.
    pub fn finish(self) -> Result<Partition> {
        let (trades_tmp, trades_path) = self.trades.close()?;
        let (candles_tmp, candles_path) = self.candles.close()?;
        // Candles first: a trades file is only ever visible with its candles beside it.
        match self.upload {
            None => {
                publish::publish(&candles_tmp, &candles_path)?;
                publish::publish(&trades_tmp, &trades_path)?;
            }
            Some((remote, files)) => {
                for (tmp, rel) in [(&candles_tmp, &files.candles), (&trades_tmp, &files.trades)] {
                    let bytes = fs::read(tmp).map_err(io_err(tmp))?;
                    remote.put(rel, bytes.into())?;
                    fs::remove_file(tmp).map_err(io_err(tmp))?;
                }
            }
        }
        Ok(self.partition)
    }
}

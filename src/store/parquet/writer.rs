//! Writing one partition: both files under temporary names until [`PartitionWriter::finish`]
//! publishes them, so a partition is visible only once complete.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Numbers the files a process stages for upload, which loads running at once in one process
/// (the API's ingestion jobs, tests) would otherwise give the same name.
static STAGED: AtomicU64 = AtomicU64::new(0);

impl Pending {
    /// The file `path` of the data directory (or generation) `root`.
    fn create(
        root: &Path,
        path: PathBuf,
        schema: arrow_schema::SchemaRef,
        delta: &[&str],
    ) -> Result<Self> {
        let parent = path.parent().unwrap_or(Path::new("."));
        publish::create_dirs(parent, root)?;
        let tmp = publish::temp_path(&path);
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Self::writing(file, tmp, path, schema, delta)
    }

    /// A file to upload as `rel`, staged in the system's temporary directory under a name
    /// that is removed at once: the system frees the file when it is closed, however the
    /// process ends, so a loader killed mid-upload leaves nothing to clean up.
    fn staged(rel: &str, schema: arrow_schema::SchemaRef, delta: &[&str]) -> Result<Self> {
        // Created anew, never opened if it exists: a name taken is another process's (the
        // same pid in another pid namespace sharing the directory) or a leftover, and the next
        // number is tried.
        let (file, tmp) = loop {
            let n = STAGED.fetch_add(1, Ordering::Relaxed);
            let tmp = std::env::temp_dir()
                .join(format!("ohlcv-upload-{}-{n}.parquet", std::process::id()));
            match File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => break (file, tmp),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        };
        fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        Self::writing(file, tmp, PathBuf::from(rel), schema, delta)
    }

    fn writing(
        file: File,
        tmp: PathBuf,
        path: PathBuf,
        schema: arrow_schema::SchemaRef,
        delta: &[&str],
    ) -> Result<Self> {
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

    /// Closes a staged file and returns its bytes, to upload as `self.path`.
    fn into_bytes(self) -> Result<(bytes::Bytes, PathBuf)> {
        let mut file = self.writer.into_inner().map_err(write_err(&self.tmp))?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(io_err(&self.tmp))?;
        Ok((bytes.into(), self.path))
    }
}

/// One partition being written.
pub struct PartitionWriter {
    trades: Pending,
    candles: Pending,
    /// Object storage: the files are staged locally and uploaded there, each with one PUT,
    /// once complete.
    upload: Option<Remote>,
    partition: Partition,
    current_symbol: Option<Symbol>,
    resolution: TimeResolution,
}

impl PartitionWriter {
    pub(super) fn create(
        dir: &Path,
        partition: Partition,
        resolution: TimeResolution,
    ) -> Result<Self> {
        let files = PartitionFiles::of(&partition);
        let trades = Pending::create(
            dir,
            dir.join(&files.trades),
            trades_schema(resolution),
            TRADES_DELTA_COLUMNS,
        )?;
        let candles = Pending::create(
            dir,
            dir.join(&files.candles),
            candles_schema(resolution),
            CANDLES_DELTA_COLUMNS,
        )?;
        Ok(Self::new(trades, candles, None, partition, resolution))
    }

    /// A writer of `partition` into the data directory `remote`, its files staged locally
    /// ([`Pending::staged`]) until each is uploaded whole.
    pub(super) fn create_remote(
        remote: Remote,
        partition: Partition,
        resolution: TimeResolution,
    ) -> Result<Self> {
        let files = PartitionFiles::of(&partition);
        let trades = Pending::staged(
            &files.trades,
            trades_schema(resolution),
            TRADES_DELTA_COLUMNS,
        )?;
        let candles = Pending::staged(
            &files.candles,
            candles_schema(resolution),
            CANDLES_DELTA_COLUMNS,
        )?;
        Ok(Self::new(
            trades,
            candles,
            Some(remote),
            partition,
            resolution,
        ))
    }

    fn new(
        trades: Pending,
        candles: Pending,
        upload: Option<Remote>,
        mut partition: Partition,
        resolution: TimeResolution,
    ) -> Self {
        partition.trades = 0;
        Self {
            trades,
            candles,
            upload,
            partition,
            current_symbol: None,
            resolution,
        }
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
        // Candles first: a trades file is only ever visible with its candles beside it.
        match self.upload {
            None => {
                let (trades_tmp, trades_path) = self.trades.close()?;
                let (candles_tmp, candles_path) = self.candles.close()?;
                publish::publish(&candles_tmp, &candles_path)?;
                publish::publish(&trades_tmp, &trades_path)?;
            }
            Some(remote) => {
                for pending in [self.candles, self.trades] {
                    let (bytes, rel) = pending.into_bytes()?;
                    remote.put(&rel.to_string_lossy(), bytes)?;
                }
            }
        }
        Ok(self.partition)
    }
}

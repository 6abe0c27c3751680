//! Reading one symbol's rows in a time range from a file: row groups are chosen by their
//! statistics (symbol, time), and within a batch the rows, sorted by (symbol, time), are one
//! contiguous run found by binary search.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;

use super::schema::raw_times;
use crate::model::{Nanos, Symbol};
use crate::store::remote::Remote;
use crate::store::{Backend, Result, StoreError, io_err};

/// Which columns a scan decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    All,
    /// Only `symbol` and `time`: enough to count.
    SymbolAndTime,
}

fn read_err(path: &Path) -> impl FnOnce(ParquetError) -> StoreError + '_ {
    move |source| {
        StoreError::Corrupt(Backend::Parquet {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Calls `each(batch, rows, scale)` with every batch of `symbol`'s rows of the file at `path`
/// that may hold times in `[start, end)`, the row range within the batch that does, and the
/// nanoseconds per unit of its time column; stops early when `each` returns false.
pub fn scan(
    path: &Path,
    symbol: &Symbol,
    start: Nanos,
    end: Nanos,
    columns: Columns,
    each: impl FnMut(&RecordBatch, Range<usize>, i64) -> bool,
) -> Result<()> {
    let handle = File::open(path).map_err(io_err(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(read_err(path))?;
    read(builder, path, symbol, start, end, columns, each)
}

/// [`scan`] of the file `rel` of a data directory on object storage, whose footer (and size)
/// the caller has: only the column chunks of the row groups that may match are fetched.
#[allow(
    clippy::too_many_arguments,
    reason = "scan's arguments, and where the file is"
)]
pub fn scan_remote(
    remote: &Remote,
    rel: &str,
    (size, footer): (u64, Arc<ParquetMetaData>),
    symbol: &Symbol,
    start: Nanos,
    end: Nanos,
    columns: Columns,
    each: impl FnMut(&RecordBatch, Range<usize>, i64) -> bool,
) -> Result<()> {
    let origin = PathBuf::from(format!("{}/{rel}", remote.url()));
    let metadata = ArrowReaderMetadata::try_new(footer, ArrowReaderOptions::default())
        .map_err(read_err(&origin))?;
    let (lo, hi, _) = bounds(metadata.schema(), start, end);
    let wanted: Vec<usize> = match columns {
        Columns::All => (0..metadata
            .metadata()
            .file_metadata()
            .schema_descr()
            .num_columns())
            .collect(),
        Columns::SymbolAndTime => vec![0, 1],
    };
    let ranges: Vec<Range<u64>> = row_groups(metadata.metadata(), symbol, lo, hi)
        .into_iter()
        .filter_map(|i| metadata.metadata().row_groups().get(i))
        .flat_map(|rg| {
            wanted.iter().filter_map(|c| rg.columns().get(*c)).map(|c| {
                let (from, len) = c.byte_range();
                from..from + len
            })
        })
        .collect();
    if ranges.is_empty() {
        return Ok(());
    }
    let fetched = remote.fetch(rel, size, ranges)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(fetched, metadata);
    read(builder, &origin, symbol, start, end, columns, each)
}

/// The bounds `[start, end)` in the unit of the time column of a file of `schema`, and the
/// nanoseconds per unit: t * scale < start  <=>  t < ceil(start / scale).
fn bounds(schema: &SchemaRef, start: Nanos, end: Nanos) -> (i64, i64, i64) {
    let scale = match schema.fields().get(1).map(|f| f.data_type()) {
        Some(DataType::Timestamp(TimeUnit::Microsecond, _)) => 1000,
        _ => 1,
    };
    (
        start.div_euclid(scale) + (start.rem_euclid(scale) > 0) as i64,
        end.div_euclid(scale) + (end.rem_euclid(scale) > 0) as i64,
        scale,
    )
}

/// The row groups of a file that may hold `symbol` in `[start, end)` (file units).
fn row_groups(metadata: &ParquetMetaData, symbol: &Symbol, start: i64, end: i64) -> Vec<usize> {
    metadata
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| row_group_may_match(rg, symbol, start, end))
        .map(|(i, _)| i)
        .collect()
}

/// The scan itself, over a file or the ranges fetched of one.
fn read<R: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<R>,
    path: &Path,
    symbol: &Symbol,
    start: Nanos,
    end: Nanos,
    columns: Columns,
    mut each: impl FnMut(&RecordBatch, Range<usize>, i64) -> bool,
) -> Result<()> {
    let (start, end, scale) = bounds(builder.schema(), start, end);
    let row_groups = row_groups(builder.metadata(), symbol, start, end);
    if row_groups.is_empty() {
        return Ok(());
    }
    let mut builder = builder.with_row_groups(row_groups);
    if columns == Columns::SymbolAndTime {
        let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1]);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(read_err(path))?;
    let corrupt = |detail: &str| StoreError::corrupt(path, detail);
    for batch in reader {
        let batch = batch.map_err(|e| read_err(path)(e.into()))?;
        let symbols = batch
            .column(0)
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| corrupt("symbol is not a dictionary column"))?;
        let values = symbols
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt("symbol values"))?;
        let Some(key) = values.iter().position(|v| v == Some(symbol.as_str())) else {
            continue;
        };
        let keys = symbols.keys().values();
        let (times, _) = raw_times(batch.column(1)).ok_or_else(|| corrupt("time column"))?;
        // Rows are sorted by (symbol, time): the match is one contiguous run.
        let first = keys
            .iter()
            .position(|k| *k as usize == key)
            .unwrap_or(keys.len());
        let run = keys.get(first..).unwrap_or_default();
        let last = first + run.iter().take_while(|k| **k as usize == key).count();
        let run_times = times.get(first..last).unwrap_or_default();
        let from = first + run_times.partition_point(|t| *t < start);
        let to = first + run_times.partition_point(|t| *t < end);
        if from < to && !each(&batch, from..to, scale) {
            break;
        }
    }
    Ok(())
}

fn row_group_may_match(rg: &RowGroupMetaData, symbol: &Symbol, start: Nanos, end: Nanos) -> bool {
    let symbol_ok = match rg.column(0).statistics() {
        Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => {
                min.data() <= symbol.as_str().as_bytes() && symbol.as_str().as_bytes() <= max.data()
            }
            _ => true,
        },
        _ => true,
    };
    let time_ok = match rg.column(1).statistics() {
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => *min < end && start <= *max,
            _ => true,
        },
        _ => true,
    };
    symbol_ok && time_ok
}

//! Reading one symbol's rows in a time range from a file: row groups are chosen by their
//! statistics (symbol, time), and within a batch the rows, sorted by (symbol, time), are one
//! contiguous run found by binary search.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;

use super::schema::raw_times;
use crate::model::{Nanos, Symbol};
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
    mut each: impl FnMut(&RecordBatch, Range<usize>, i64) -> bool,
) -> Result<()> {
    let handle = File::open(path).map_err(io_err(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(read_err(path))?;
    let scale = match builder.schema().field(1).data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1000,
        _ => 1,
    };
    // Bounds in the file's unit: t * scale < start  <=>  t < ceil(start / scale).
    let (start, end) = (
        start.div_euclid(scale) + (start.rem_euclid(scale) > 0) as i64,
        end.div_euclid(scale) + (end.rem_euclid(scale) > 0) as i64,
    );
    let row_groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| row_group_may_match(rg, symbol, start, end))
        .map(|(i, _)| i)
        .collect();
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

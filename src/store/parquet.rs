//! The embedded store: a Parquet dataset any Parquet reader (DuckDB, pandas, polars) opens.
//!
//! ```text
//! <data-dir>/manifest.json
//! <data-dir>/trades/month=2024-01/group=0000.parquet      trades, sorted by (symbol, time)
//! <data-dir>/candles_1m/month=2024-01/group=0000.parquet  UTC 1-minute candles, same order
//! ```
//!
//! A partition is one month of a group of symbols. Groups hold as many symbols as it takes to
//! reach about [`TARGET_ROWS_PER_FILE`] trades a month, so 5 busy symbols get a file each and
//! 500 quiet ones share a handful of files instead of flooding the directory. Row groups never
//! span two symbols and close at session boundaries (128 Ki-1 Mi rows), so a query for one symbol and day
//! decodes about one row group, found by the row-group statistics.
//!
//! Files are written under a `.tmp-` name, fsynced and renamed: a partition is visible only
//! once complete, and a crash leaves at most an invisible temporary file, removed by the next
//! load.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::builder::{Decimal64Builder, Decimal128Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal64Type, Decimal128Type, Int8Type, Int32Type, TimestampMicrosecondType,
    TimestampNanosecondType, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int8Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use super::manifest::{self, Manifest, Partition};
use super::{Result, Store, StoreError, io_err};
use crate::candles::Candle;
use crate::model::{Nanos, Symbol, TimeResolution, TradeColumns};

pub const TRADES_DIR: &str = "trades";
pub const CANDLES_DIR: &str = "candles_1m";
/// Aim for files of about this many trades (roughly 20 MB).
pub const TARGET_ROWS_PER_FILE: u64 = 4_000_000;
/// A row group closes at the first session boundary past this many rows...
pub const ROW_GROUP_MIN_ROWS: usize = 128 * 1024;
/// ...or at this many rows, whichever comes first.
const ROW_GROUP_MAX_ROWS: usize = 1024 * 1024;

fn parquet_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> StoreError + '_ {
    move |source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn symbol_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn time_type(resolution: TimeResolution) -> DataType {
    let unit = match resolution {
        TimeResolution::Micros => TimeUnit::Microsecond,
        TimeResolution::Nanos => TimeUnit::Nanosecond,
    };
    DataType::Timestamp(unit, Some("UTC".into()))
}

const PRICE: DataType = DataType::Decimal64(18, 2);

pub fn trades_schema(resolution: TimeResolution) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("symbol", symbol_type(), false),
        Field::new("time", time_type(resolution), false),
        Field::new("trade_id", DataType::UInt64, false),
        Field::new(
            "side",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("price", PRICE, false),
        Field::new("amount", DataType::UInt32, false),
    ]))
}

pub fn candles_schema(resolution: TimeResolution) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("symbol", symbol_type(), false),
        Field::new("time", time_type(resolution), false),
        Field::new("open", PRICE, false),
        Field::new("high", PRICE, false),
        Field::new("low", PRICE, false),
        Field::new("close", PRICE, false),
        Field::new("volume", DataType::UInt64, false),
        Field::new("trades", DataType::UInt64, false),
        // Sum of price x amount in dollars: the vwap's numerator, exact.
        Field::new("notional", DataType::Decimal128(38, 2), false),
    ]))
}

/// Encodings chosen by measurement (docs/BENCHMARKS.md): sorted times, ids and slowly moving
/// prices delta-encode to a few bits each; sizes do best as plain values under zstd.
fn writer_properties(delta_columns: &[&str]) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_MAX_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from("time"), EnabledStatistics::Page)
        .set_column_dictionary_enabled(ColumnPath::from("amount"), false);
    for column in delta_columns {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
    }
    props.build()
}

fn symbol_column(symbol: &Symbol, rows: usize) -> ArrayRef {
    let keys = Int32Array::new(ScalarBuffer::from(vec![0i32; rows]), None);
    let values = Arc::new(StringArray::from(vec![symbol.as_str()]));
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).expect("key 0 is valid"))
}

fn time_column(mut times: Vec<Nanos>, resolution: TimeResolution) -> ArrayRef {
    match resolution {
        TimeResolution::Micros => {
            for t in &mut times {
                *t /= 1000;
            }
            Arc::new(
                TimestampMicrosecondArray::new(ScalarBuffer::from(times), None)
                    .with_timezone("UTC"),
            )
        }
        TimeResolution::Nanos => Arc::new(
            TimestampNanosecondArray::new(ScalarBuffer::from(times), None).with_timezone("UTC"),
        ),
    }
}

/// The raw values of a time column and the nanoseconds per unit.
fn raw_times(array: &dyn Array) -> Option<(&[i64], i64)> {
    if let Some(a) = array.as_primitive_opt::<TimestampMicrosecondType>() {
        Some((a.values(), 1000))
    } else {
        array
            .as_primitive_opt::<TimestampNanosecondType>()
            .map(|a| (&a.values()[..], 1))
    }
}

fn price_column(cents: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Decimal64Builder::with_capacity(cents.size_hint().0);
    b.extend(cents.map(Some));
    Arc::new(
        b.finish()
            .with_precision_and_scale(18, 2)
            .expect("valid decimal"),
    )
}

/// One partition being written: both files live under temporary names until [`finish`].
///
/// [`finish`]: PartitionWriter::finish
pub struct PartitionWriter {
    trades: ArrowWriter<File>,
    candles: ArrowWriter<File>,
    paths: [(PathBuf, PathBuf); 2],
    partition: Partition,
    current_symbol: Option<Symbol>,
    resolution: TimeResolution,
    side_values: ArrayRef,
}

impl PartitionWriter {
    fn create(dir: &Path, mut partition: Partition, resolution: TimeResolution) -> Result<Self> {
        let trades_path = dir.join(&partition.trades_file);
        let candles_path = dir.join(&partition.candles_file);
        let open = |path: &Path,
                    schema: SchemaRef,
                    delta: &[&str]|
         -> Result<(ArrowWriter<File>, PathBuf)> {
            let parent = path.parent().expect("partition files live in a directory");
            fs::create_dir_all(parent).map_err(io_err(parent))?;
            let tmp = manifest::temp_path(path);
            let file = File::create(&tmp).map_err(io_err(&tmp))?;
            let writer = ArrowWriter::try_new(file, schema, Some(writer_properties(delta)))
                .map_err(parquet_err(&tmp))?;
            Ok((writer, tmp))
        };
        let (trades, trades_tmp) = open(
            &trades_path,
            trades_schema(resolution),
            &["time", "trade_id", "price"],
        )?;
        let (candles, candles_tmp) = open(&candles_path, candles_schema(resolution), &["time"])?;
        partition.trades = 0;
        Ok(Self {
            trades,
            candles,
            paths: [(trades_tmp, trades_path), (candles_tmp, candles_path)],
            partition,
            current_symbol: None,
            resolution,
            side_values: Arc::new(StringArray::from(vec!["sell", "buy"])),
        })
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
            if self.current_symbol.is_some() {
                self.flush_row_groups()?;
            }
            self.current_symbol = Some(symbol.clone());
        }
        let rows = trades.len();
        self.partition.trades += rows as u64;
        let TradeColumns {
            times,
            trade_ids,
            prices,
            amounts,
            buys,
        } = trades;
        let sides = Int8Array::from_iter_values(buys.iter().map(|b| *b as i8));
        let columns: Vec<ArrayRef> = vec![
            symbol_column(symbol, rows),
            time_column(times, self.resolution),
            Arc::new(UInt64Array::new(ScalarBuffer::from(trade_ids), None)),
            Arc::new(
                DictionaryArray::<Int8Type>::try_new(sides, self.side_values.clone())
                    .expect("keys 0 and 1"),
            ),
            price_column(prices.into_iter()),
            Arc::new(UInt32Array::new(ScalarBuffer::from(amounts), None)),
        ];
        let path = &self.paths[0].0;
        let batch = RecordBatch::try_new(trades_schema(self.resolution), columns)
            .expect("columns match the schema");
        self.trades.write(&batch).map_err(parquet_err(path))?;
        self.write_candles(symbol, candles)
    }

    /// Marks the end of a session's trades: the row group closes here if it is big enough, so
    /// that a symbol-day is usually one row group.
    pub fn end_session(&mut self) -> Result<()> {
        if self.trades.in_progress_rows() >= ROW_GROUP_MIN_ROWS {
            self.trades.flush().map_err(parquet_err(&self.paths[0].0))?;
        }
        Ok(())
    }

    fn write_candles(&mut self, symbol: &Symbol, candles: &[Candle]) -> Result<()> {
        let mut notional = Decimal128Builder::with_capacity(candles.len());
        notional.extend(candles.iter().map(|c| Some(c.notional as i128)));
        let columns: Vec<ArrayRef> = vec![
            symbol_column(symbol, candles.len()),
            time_column(candles.iter().map(|c| c.time).collect(), self.resolution),
            price_column(candles.iter().map(|c| c.open)),
            price_column(candles.iter().map(|c| c.high)),
            price_column(candles.iter().map(|c| c.low)),
            price_column(candles.iter().map(|c| c.close)),
            Arc::new(UInt64Array::from_iter_values(
                candles.iter().map(|c| c.volume),
            )),
            Arc::new(UInt64Array::from_iter_values(
                candles.iter().map(|c| c.trades),
            )),
            Arc::new(
                notional
                    .finish()
                    .with_precision_and_scale(38, 2)
                    .expect("valid decimal"),
            ),
        ];
        let batch = RecordBatch::try_new(candles_schema(self.resolution), columns)
            .expect("columns match the schema");
        self.candles
            .write(&batch)
            .map_err(parquet_err(&self.paths[1].0))
    }

    fn flush_row_groups(&mut self) -> Result<()> {
        self.trades.flush().map_err(parquet_err(&self.paths[0].0))?;
        self.candles.flush().map_err(parquet_err(&self.paths[1].0))
    }

    /// Closes, fsyncs and publishes both files; returns the partition as the manifest lists it.
    pub fn finish(self) -> Result<Partition> {
        let [(trades_tmp, trades_path), (candles_tmp, candles_path)] = self.paths;
        for (writer, tmp) in [(self.trades, &trades_tmp), (self.candles, &candles_tmp)] {
            let file = writer.into_inner().map_err(parquet_err(tmp))?;
            file.sync_all().map_err(io_err(tmp))?;
        }
        // Candles first: a trades file is only ever visible with its candles beside it.
        manifest::publish(&candles_tmp, &candles_path)?;
        manifest::publish(&trades_tmp, &trades_path)?;
        Ok(self.partition)
    }
}

/// The embedded Parquet store rooted at a data directory.
#[derive(Debug, Clone)]
pub struct ParquetStore {
    dir: PathBuf,
    cache: Arc<Cache>,
}

/// Decoded 1-minute candles kept per (file, symbol), at most this many in all (~256 MiB): a
/// served 1d-candles-for-a-year query then rolls up memory instead of decoding 12 files.
const CACHE_MAX_CANDLES: usize = 4_000_000;

/// What readers keep between calls. Published files never change while the manifest that
/// lists them stays the same, so a new manifest (size or modification time) empties the cache.
#[derive(Debug, Default)]
struct Cache {
    manifest: Mutex<Option<(std::time::SystemTime, u64, Arc<Manifest>)>>,
    candles: Mutex<CandleCache>,
}

#[derive(Debug, Default)]
struct CandleCache {
    /// Candles held, over all entries.
    len: usize,
    entries: HashMap<(Level, String, Symbol), Arc<Vec<Candle>>>,
}

/// The two rollup levels the cache holds: stored UTC 1-minute candles, and UTC 1-hour candles
/// made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Minutes,
    Hours,
}

type LevelFn = fn(&ParquetStore, &str, &Symbol) -> Result<Arc<Vec<Candle>>>;

impl ParquetStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache: Arc::default(),
        }
    }

    fn current_manifest(&self) -> Result<Arc<Manifest>> {
        let path = self.dir.join(manifest::MANIFEST_FILE);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Empty(self.dir.clone()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let stamp = (meta.modified().map_err(io_err(&path))?, meta.len());
        let mut cached = self.cache.manifest.lock().expect("no panics while held");
        if let Some((modified, len, m)) = cached.as_ref()
            && (*modified, *len) == stamp
        {
            return Ok(m.clone());
        }
        let m = Arc::new(
            Manifest::read(&self.dir)?.ok_or_else(|| StoreError::Empty(self.dir.clone()))?,
        );
        *cached = Some((stamp.0, stamp.1, m.clone()));
        *self.cache.candles.lock().expect("no panics while held") = Default::default();
        Ok(m)
    }

    /// All of `symbol`'s 1-minute candles in `file`, decoded once.
    fn file_candles(&self, file: &str, symbol: &Symbol) -> Result<Arc<Vec<Candle>>> {
        self.cached(Level::Minutes, file, symbol, || {
            let mut all = Vec::new();
            self.scan(
                file,
                symbol,
                i64::MIN,
                i64::MAX,
                false,
                |batch, rows, scale| {
                    read_candles(batch, rows, scale, &mut all);
                    true
                },
            )?;
            Ok(all)
        })
    }

    /// All of `symbol`'s 1-hour candles in `file`, rolled up once from its 1-minute candles.
    fn file_hours(&self, file: &str, symbol: &Symbol) -> Result<Arc<Vec<Candle>>> {
        self.cached(Level::Hours, file, symbol, || {
            Ok(crate::candles::hour_candles(
                &self.file_candles(file, symbol)?,
            ))
        })
    }

    /// The cache entry of (`level`, `file`, `symbol`), computed by `compute` on a miss. The
    /// lock is not held while computing: two racing misses compute the same candles twice.
    fn cached(
        &self,
        level: Level,
        file: &str,
        symbol: &Symbol,
        compute: impl FnOnce() -> Result<Vec<Candle>>,
    ) -> Result<Arc<Vec<Candle>>> {
        let key = (level, file.to_string(), symbol.clone());
        if let Some(hit) = self
            .cache
            .candles
            .lock()
            .expect("no panics while held")
            .entries
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let candles = Arc::new(compute()?);
        let mut cache = self.cache.candles.lock().expect("no panics while held");
        if cache.len + candles.len() > CACHE_MAX_CANDLES {
            *cache = CandleCache::default();
        }
        cache.len += candles.len();
        cache.entries.insert(key, candles.clone());
        Ok(candles)
    }

    /// Lends the cached candles (`level`: minutes or hours) of each partition in range.
    fn visit_cached(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        level: LevelFn,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        for p in self.partitions_for(symbol, start, end)? {
            let all = level(self, &p.candles_file, symbol)?;
            let from = all.partition_point(|c| c.time < start);
            let to = all.partition_point(|c| c.time < end);
            visit(&all[from..to]);
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The relative file names of partition (`month`, `group`).
    pub fn partition_files(month: &str, group: u32) -> (String, String) {
        let name = format!("month={month}/group={group:04}.parquet");
        (
            format!("{TRADES_DIR}/{name}"),
            format!("{CANDLES_DIR}/{name}"),
        )
    }

    /// True if both files of `partition` are published.
    pub fn has_partition(&self, partition: &Partition) -> bool {
        self.dir.join(&partition.trades_file).is_file()
            && self.dir.join(&partition.candles_file).is_file()
    }

    pub fn partition_writer(
        &self,
        partition: Partition,
        resolution: TimeResolution,
    ) -> Result<PartitionWriter> {
        PartitionWriter::create(&self.dir, partition, resolution)
    }

    /// Deletes both files of a partition (for retention).
    pub fn remove_partition(&self, partition: &Partition) -> Result<()> {
        for file in [&partition.trades_file, &partition.candles_file] {
            let path = self.dir.join(file);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes leftovers of interrupted writes: `.tmp-` files nobody will publish.
    pub fn remove_temporary_files(&self) -> Result<usize> {
        let mut removed = 0;
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            for path in walk_files(&self.dir.join(dataset))? {
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".tmp-"))
                {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes the whole dataset (for `--replace`).
    pub fn clear(&self) -> Result<()> {
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            let path = self.dir.join(dataset);
            match fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
                _ => {}
            }
        }
        let path = self.dir.join(manifest::MANIFEST_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Bytes of every published Parquet file.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        let mut total = 0;
        for dataset in [TRADES_DIR, CANDLES_DIR] {
            for path in walk_files(&self.dir.join(dataset))? {
                total += fs::metadata(&path).map_err(io_err(&path))?.len();
            }
        }
        Ok(total)
    }

    fn partitions_for(&self, symbol: &Symbol, start: Nanos, end: Nanos) -> Result<Vec<Partition>> {
        let manifest = self.current_manifest()?;
        Ok(manifest
            .partitions
            .iter()
            .filter(|p| p.start < end && start < p.end && p.symbols.contains(symbol))
            .cloned()
            .collect())
    }

    /// Calls `each` with every batch of `symbol`'s rows of `file` that may hold times in
    /// `[start, end)` and the row range within the batch that does.
    fn scan(
        &self,
        file: &str,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        only_symbol_and_time: bool,
        mut each: impl FnMut(&RecordBatch, std::ops::Range<usize>, i64) -> bool,
    ) -> Result<()> {
        let path = self.dir.join(file);
        let handle = File::open(&path).map_err(io_err(&path))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(handle).map_err(parquet_err(&path))?;
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
        if only_symbol_and_time {
            let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1]);
            builder = builder.with_projection(mask);
        }
        let reader = builder
            .with_batch_size(64 * 1024)
            .build()
            .map_err(parquet_err(&path))?;
        for batch in reader {
            let batch = batch.map_err(|e| StoreError::Parquet {
                path: path.clone(),
                source: e.into(),
            })?;
            let corrupt = |detail: &str| StoreError::Corrupt {
                path: path.clone(),
                detail: detail.to_string(),
            };
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
            let last = first
                + keys[first..]
                    .iter()
                    .take_while(|k| **k as usize == key)
                    .count();
            let from = first + times[first..last].partition_point(|t| *t < start);
            let to = first + times[first..last].partition_point(|t| *t < end);
            if from < to && !each(&batch, from..to, scale) {
                break;
            }
        }
        Ok(())
    }
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
        for p in self.partitions_for(symbol, start, end)? {
            self.scan(
                &p.trades_file,
                symbol,
                start,
                end,
                false,
                |batch, rows, scale| {
                    let rows = rows.start..rows.start + rows.len().min(limit - out.len());
                    let col = |i: usize| batch.column(i);
                    let (times, _) = raw_times(col(1)).expect("checked by scan");
                    out.times
                        .extend(times[rows.clone()].iter().map(|t| t * scale));
                    out.trade_ids.extend_from_slice(
                        &col(2).as_primitive::<UInt64Type>().values()[rows.clone()],
                    );
                    let sides = col(3).as_dictionary::<Int8Type>();
                    let sides_values = sides.values().as_string::<i32>();
                    out.buys.extend(
                        sides.keys().values()[rows.clone()]
                            .iter()
                            .map(|k| sides_values.value(*k as usize) == "buy"),
                    );
                    out.prices.extend_from_slice(
                        &col(4).as_primitive::<Decimal64Type>().values()[rows.clone()],
                    );
                    out.amounts
                        .extend_from_slice(&col(5).as_primitive::<UInt32Type>().values()[rows]);
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
        self.visit_cached(symbol, start, end, Self::file_candles, visit)
    }

    fn visit_hour_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        visit: &mut dyn FnMut(&[Candle]),
    ) -> Result<()> {
        self.visit_cached(symbol, start, end, Self::file_hours, visit)
    }

    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> Result<Option<i64>> {
        let manifest = self.current_manifest()?;
        let mut earlier: Vec<&Partition> = manifest
            .partitions
            .iter()
            .filter(|p| p.start < before && p.symbols.contains(symbol))
            .collect();
        earlier.sort_by_key(|p| p.start);
        for p in earlier.into_iter().rev() {
            let all = self.file_candles(&p.candles_file, symbol)?;
            let upto = all.partition_point(|c| c.time < before);
            if upto > 0 {
                return Ok(Some(all[upto - 1].close));
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
        for p in self.partitions_for(symbol, start, end)? {
            let mut r = 0;
            self.scan(
                &p.trades_file,
                symbol,
                start,
                end,
                true,
                |batch, rows, scale| {
                    let (times, _) = raw_times(batch.column(1)).expect("checked by scan");
                    for t in times[rows].iter().map(|t| t * scale) {
                        while r < ranges.len() && ranges[r].1 <= t {
                            r += 1;
                        }
                        if r < ranges.len() && ranges[r].0 <= t {
                            counts[r] += 1;
                        }
                    }
                    true
                },
            )?;
        }
        Ok(counts)
    }

    fn manifest(&self) -> Result<Manifest> {
        Ok(self.current_manifest()?.as_ref().clone())
    }
}

fn read_candles(
    batch: &RecordBatch,
    rows: std::ops::Range<usize>,
    scale: i64,
    out: &mut Vec<Candle>,
) {
    let col = |i: usize| batch.column(i);
    let price = |i: usize| col(i).as_primitive::<Decimal64Type>().values();
    let (times, _) = raw_times(col(1)).expect("checked by scan");
    let (open, high, low, close) = (price(2), price(3), price(4), price(5));
    let volume = col(6).as_primitive::<UInt64Type>().values();
    let trades = col(7).as_primitive::<UInt64Type>().values();
    let notional = col(8).as_primitive::<Decimal128Type>().values();
    out.extend(rows.map(|i| Candle {
        time: times[i] * scale,
        open: open[i],
        high: high[i],
        low: low[i],
        close: close[i],
        volume: volume[i],
        trades: trades[i],
        notional: notional[i] as u128,
    }));
}

/// The month (`YYYY-MM`) an instant falls in, in UTC.
pub fn month_of(t: Nanos) -> String {
    let d = DateTime::from_timestamp_nanos(t);
    format!("{:04}-{:02}", d.year(), d.month())
}

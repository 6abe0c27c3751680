//! The Arrow schemas of the two datasets, the writer settings, and the conversions between
//! record batches and our columns. Prices are `Decimal64(18, 3)` (exact units of $0.001, the
//! model's integers as they are), times UTC timestamps at the load's resolution, the symbol a
//! dictionary. Files of format 1 (whole cents, `Decimal64(18, 2)`) are read by their scale.

use std::sync::Arc;

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
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::candles::Candle;
use crate::model::{Nanos, PRICE_DECIMALS, Symbol, TimeResolution, TradeColumns};

/// A row group holds at most this many rows; it usually closes earlier, at a session
/// boundary ([`super::writer::PartitionWriter::end_session`]).
const ROW_GROUP_MAX_ROWS: usize = 1024 * 1024;

const PRICE: DataType = DataType::Decimal64(18, PRICE_DECIMALS as i8);
const NOTIONAL: DataType = DataType::Decimal128(38, PRICE_DECIMALS as i8);

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
        Field::new("notional", NOTIONAL, false),
    ]))
}

/// Columns written with delta encoding, per dataset.
pub const TRADES_DELTA_COLUMNS: &[&str] = &["time", "trade_id", "price"];
pub const CANDLES_DELTA_COLUMNS: &[&str] = &["time"];

/// Encodings chosen by measurement (docs/BENCHMARKS.md, docs/STORAGE.md): sorted times, ids
/// and slowly moving prices delta-encode to a few bits each; sizes, small numbers in 4-byte
/// words, do best split into byte streams, whose high bytes are nearly all zero, under zstd.
pub fn writer_properties(delta_columns: &[&str]) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_MAX_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from("time"), EnabledStatistics::Page)
        .set_column_dictionary_enabled(ColumnPath::from("amount"), false)
        .set_column_encoding(ColumnPath::from("amount"), Encoding::BYTE_STREAM_SPLIT);
    for column in delta_columns {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*column), false)
            .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
    }
    props.build()
}

fn symbol_column(symbol: &Symbol, rows: usize) -> Result<ArrayRef, ArrowError> {
    let keys = Int32Array::new(ScalarBuffer::from(vec![0i32; rows]), None);
    let values = Arc::new(StringArray::from(vec![symbol.as_str()]));
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys, values,
    )?))
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
pub fn raw_times(array: &dyn Array) -> Option<(&[i64], i64)> {
    if let Some(a) = array.as_primitive_opt::<TimestampMicrosecondType>() {
        Some((a.values(), 1000))
    } else {
        array
            .as_primitive_opt::<TimestampNanosecondType>()
            .map(|a| (&a.values()[..], 1))
    }
}

fn price_column(units: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Decimal64Builder::with_capacity(units.size_hint().0);
    b.extend(units.map(Some));
    Arc::new(b.finish().with_data_type(PRICE))
}

/// What a decimal column's unscaled values are multiplied by to be in units of $0.001: 1 for
/// this format's columns, 10 for format 1's whole cents.
fn to_units(array: &dyn Array) -> i64 {
    let scale = match array.data_type() {
        DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => *s,
        _ => PRICE_DECIMALS as i8,
    };
    10i64.pow((PRICE_DECIMALS as i8 - scale).max(0) as u32)
}

/// One symbol's trades as a batch of [`trades_schema`], built from the columns without
/// copying them.
pub fn trades_batch(
    symbol: &Symbol,
    trades: TradeColumns,
    resolution: TimeResolution,
) -> Result<RecordBatch, ArrowError> {
    let rows = trades.len();
    let TradeColumns {
        times,
        trade_ids,
        prices,
        amounts,
        buys,
    } = trades;
    let sides = Int8Array::from_iter_values(buys.iter().map(|b| *b as i8));
    let side_values: ArrayRef = Arc::new(StringArray::from(vec!["sell", "buy"]));
    let columns: Vec<ArrayRef> = vec![
        symbol_column(symbol, rows)?,
        time_column(times, resolution),
        Arc::new(UInt64Array::new(ScalarBuffer::from(trade_ids), None)),
        Arc::new(DictionaryArray::<Int8Type>::try_new(sides, side_values)?),
        price_column(prices.into_iter()),
        Arc::new(UInt32Array::new(ScalarBuffer::from(amounts), None)),
    ];
    RecordBatch::try_new(trades_schema(resolution), columns)
}

/// One symbol's 1-minute candles as a batch of [`candles_schema`].
pub fn candles_batch(
    symbol: &Symbol,
    candles: &[Candle],
    resolution: TimeResolution,
) -> Result<RecordBatch, ArrowError> {
    let mut notional = Decimal128Builder::with_capacity(candles.len());
    notional.extend(candles.iter().map(|c| Some(c.notional as i128)));
    let notional = notional.finish().with_data_type(NOTIONAL);
    let columns: Vec<ArrayRef> = vec![
        symbol_column(symbol, candles.len())?,
        time_column(candles.iter().map(|c| c.time).collect(), resolution),
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
        Arc::new(notional),
    ];
    RecordBatch::try_new(candles_schema(resolution), columns)
}

/// Appends rows `rows` of a [`trades_schema`] batch whose times count `scale` ns each.
#[allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "the scan checks each file's schema before reading, and `rows` lies within the batch it read"
)]
pub fn read_trades(
    batch: &RecordBatch,
    rows: std::ops::Range<usize>,
    scale: i64,
    out: &mut TradeColumns,
) {
    let col = |i: usize| batch.column(i);
    let (times, _) = raw_times(col(1)).expect("checked by scan");
    out.times
        .extend(times[rows.clone()].iter().map(|t| t * scale));
    out.trade_ids
        .extend_from_slice(&col(2).as_primitive::<UInt64Type>().values()[rows.clone()]);
    let sides = col(3).as_dictionary::<Int8Type>();
    let sides_values = sides.values().as_string::<i32>();
    out.buys.extend(
        sides.keys().values()[rows.clone()]
            .iter()
            .map(|k| sides_values.value(*k as usize) == "buy"),
    );
    let prices = &col(4).as_primitive::<Decimal64Type>().values()[rows.clone()];
    match to_units(col(4).as_ref()) {
        1 => out.prices.extend_from_slice(prices),
        m => out.prices.extend(prices.iter().map(|p| p * m)),
    }
    out.amounts
        .extend_from_slice(&col(5).as_primitive::<UInt32Type>().values()[rows]);
}

/// Appends rows `rows` of a [`candles_schema`] batch whose times count `scale` ns each.
#[allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "the scan checks each file's schema before reading, and `rows` lies within the batch it read"
)]
pub fn read_candles(
    batch: &RecordBatch,
    rows: std::ops::Range<usize>,
    scale: i64,
    out: &mut Vec<Candle>,
) {
    let col = |i: usize| batch.column(i);
    let price = |i: usize| col(i).as_primitive::<Decimal64Type>().values();
    let m = to_units(col(2).as_ref());
    let (times, _) = raw_times(col(1)).expect("checked by scan");
    let (open, high, low, close) = (price(2), price(3), price(4), price(5));
    let volume = col(6).as_primitive::<UInt64Type>().values();
    let trades = col(7).as_primitive::<UInt64Type>().values();
    let notional = col(8).as_primitive::<Decimal128Type>().values();
    out.extend(rows.map(|i| Candle {
        time: times[i] * scale,
        open: open[i] * m,
        high: high[i] * m,
        low: low[i] * m,
        close: close[i] * m,
        volume: volume[i],
        trades: trades[i],
        notional: notional[i] as u128 * m as u128,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_1_whole_cents_read_as_units() {
        // A trades batch as format 1 wrote it: the same columns, prices decimal(18,2).
        let symbol = Symbol::new("AAPL").unwrap();
        let mut trades = TradeColumns::default();
        trades.push(1_000, 0, 185_640, 100, true);
        let batch = trades_batch(&symbol, trades.clone(), TimeResolution::Nanos).unwrap();
        let mut columns = batch.columns().to_vec();
        let cents = arrow_array::Decimal64Array::from(vec![18_564])
            .with_precision_and_scale(18, 2)
            .unwrap();
        columns[4] = Arc::new(cents);
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[4] = Field::new("price", DataType::Decimal64(18, 2), false);
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let mut out = TradeColumns::default();
        read_trades(&old, 0..1, 1, &mut out);
        assert_eq!(out, trades);

        // Candles: prices and the notional.
        let candle = Candle::of_trade(0, 187_125, 3);
        let batch = candles_batch(&symbol, &[candle], TimeResolution::Nanos).unwrap();
        let mut back = Vec::new();
        read_candles(&batch, 0..1, 1, &mut back);
        assert_eq!(back, [candle]);
    }
}

//! The [`Store`](crate::store::Store) read side in Flux, through `/api/v2/query` (InfluxDB 2.x
//! and 1.8+), answered in annotated CSV.
//!
//! Each query filters one measurement and one symbol inside a `range()`, and pivots fields
//! into columns so a row is a trade or a candle. Annotated CSV is read as a stream: an
//! annotation row (`#datatype,...`) announces a new table whose next row is its header, and a
//! table whose header has an `error` column is an error the server met while streaming
//! (<https://docs.influxdata.com/influxdb/v2/reference/syntax/annotated-csv/>).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::client::Client;
use super::line_protocol::{CANDLE, CLAIM, MANIFEST, SHARD, TRADE};
use super::{Claim, InfluxConfig, InfluxError, Result};
use crate::candles::{Candle, CandleRow};
use crate::model::{Nanos, PRICE_UNITS_PER_DOLLAR, Symbol, TradeColumns};
use crate::store::{self, Manifest, Store};

/// Ranges counted per request by [`Store::count_trades`]: one `yield` each.
const COUNTS_PER_QUERY: usize = 100;

/// A Flux string literal. `${` would start an interpolation, so `$` is escaped too.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A Flux time literal (RFC 3339 with nanoseconds).
fn time(t: Nanos) -> String {
    DateTime::<Utc>::from_timestamp_nanos(t).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Flux's time range ends at 2262-04-11; a stop past every stored point.
const END_OF_TIME: &str = "2262-01-01T00:00:00Z";

fn parse_time(s: &str) -> Result<Nanos> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| InfluxError::Protocol(format!("expected an RFC 3339 time, got {s:?}")))
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| InfluxError::Protocol(format!("expected {what}, got {s:?}")))
}

/// A price float back in units of $0.001: exact, as the float is the nearest to a decimal
/// of at most 3 fraction digits (`line_protocol`).
fn price_units(s: &str) -> Result<i64> {
    Ok((parse::<f64>(s, "a price")? * PRICE_UNITS_PER_DOLLAR as f64).round() as i64)
}

/// One row of a result table, by column name.
pub(crate) struct Row<'a> {
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Result<&str> {
        self.columns
            .get(column)
            .and_then(|&i| self.record.get(i))
            .ok_or_else(|| InfluxError::Protocol(format!("no column {column:?} in a Flux result")))
    }
}

/// Reads annotated CSV, calling `each(result name, row)` for every record of every table.
fn read_tables(
    input: impl std::io::Read,
    each: &mut impl FnMut(&str, Row) -> Result<()>,
) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut columns: HashMap<String, usize> = HashMap::new();
    let mut expect_header = true;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(InfluxError::Protocol(format!(
                    "bad CSV from /api/v2/query: {e}"
                )));
            }
        }
        if record.get(0).is_some_and(|f| f.starts_with('#')) {
            expect_header = true;
            continue;
        }
        if expect_header {
            columns = record
                .iter()
                .enumerate()
                .map(|(i, name)| (name.to_string(), i))
                .collect();
            expect_header = false;
            continue;
        }
        if let Some(&i) = columns.get("error") {
            return Err(InfluxError::Server {
                status: 200,
                message: record
                    .get(i)
                    .unwrap_or_default()
                    .chars()
                    .take(600)
                    .collect(),
            });
        }
        let row = Row {
            columns: &columns,
            record: &record,
        };
        let result = row.get("result").unwrap_or_default().to_string();
        each(&result, row)?;
    }
    Ok(())
}

/// What the server computes candles from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleSource<'a> {
    /// The raw trades: `price`, `amount` and the counted field.
    Trades,
    /// 1-minute candles the server wrote into the measurement of kind `base` (named by the
    /// schema, as trades' are), with the fields `open` to `trades`.
    Downsampled(&'a str),
}

/// The columns of a candle the server computes, each from a field by a Flux function, in
/// the order of [`CandleRow`]'s.
const CANDLE_COLUMNS: [&str; 6] = ["open", "high", "low", "close", "volume", "trades"];

impl CandleSource<'_> {
    /// (candle column, field, Flux function) for each of [`CANDLE_COLUMNS`].
    fn rollups(self, schema: super::Schema) -> [(&'static str, &'static str, &'static str); 6] {
        match self {
            CandleSource::Trades => [
                ("open", "price", "first"),
                ("high", "price", "max"),
                ("low", "price", "min"),
                ("close", "price", "last"),
                ("volume", "amount", "sum"),
                ("trades", schema.counted_field(), "count"),
            ],
            CandleSource::Downsampled(_) => [
                ("open", "open", "first"),
                ("high", "high", "max"),
                ("low", "low", "min"),
                ("close", "close", "last"),
                ("volume", "volume", "sum"),
                ("trades", "trades", "sum"),
            ],
        }
    }
}

/// Trades and 1-minute candles in InfluxDB, read with Flux.
pub struct FluxStore {
    client: Client,
}

impl FluxStore {
    pub fn new(config: InfluxConfig) -> Result<Self> {
        Ok(Self {
            client: Client::new(config)?,
        })
    }

    fn bucket(&self) -> &str {
        self.client.config().read_database()
    }

    /// Runs `query` and calls `each(result name, row)` for every record of every table.
    fn each(&self, query: &str, mut each: impl FnMut(&str, Row) -> Result<()>) -> Result<()> {
        read_tables(self.client.flux(query)?, &mut each)
    }

    /// The points of kind `base` ([`TRADE`] or [`CANDLE`]) of one symbol in `[start, stop)`,
    /// `and`-ed with `predicate`, wherever the schema puts them.
    fn select(
        &self,
        base: &str,
        symbol: &Symbol,
        start: &str,
        stop: &str,
        predicate: &str,
    ) -> String {
        let schema = self.client.config().schema;
        let of_symbol = if schema.symbol_tag() {
            format!(" and r.symbol == {}", string(symbol.as_str()))
        } else {
            String::new()
        };
        format!(
            "from(bucket: {})\n  |> range(start: {start}, stop: {stop})\n  |> filter(fn: (r) => r._measurement == {}{of_symbol}{predicate})",
            string(self.bucket()),
            string(&schema.measurement(base, symbol)),
        )
    }

    /// One Flux statement per candle column, each yielding that column of `every`-long candles
    /// of `symbol` in `[start, end)`, computed by the server from `source` with
    /// `aggregateWindow()`, and finished by `finish` (a `yield()`, or a `to()` and then one).
    ///
    /// Windows are cut in `zone` (the `location` option), so daily candles start at the
    /// zone's midnight; `every` is a Flux duration of seconds to days (`1m`, `1h`, `1d`),
    /// whose windows begin where ohlcv's buckets do in a zone with whole-hour offsets. Each
    /// window is stamped with its start (`timeSrc: "_start"`; the default is its stop) and
    /// windows without trades give no candle (`createEmpty: false`), as ohlcv's
    /// `fill=none`. Buy and sell trades are separate series when the side is a tag: they are
    /// grouped into one table and sorted by time, as `first()` and `last()` take a table's
    /// first and last rows. Sources:
    /// <https://docs.influxdata.com/flux/v0/stdlib/universe/aggregatewindow/>,
    /// <https://docs.influxdata.com/flux/v0/stdlib/timezone/location/>.
    fn window_statements(
        &self,
        source: CandleSource,
        symbol: &Symbol,
        (start, end): (&str, &str),
        every: &str,
        zone: chrono_tz::Tz,
        finish: impl Fn(&str) -> String,
    ) -> String {
        let schema = self.client.config().schema;
        let base = match source {
            CandleSource::Trades => TRADE,
            CandleSource::Downsampled(base) => base,
        };
        let merge_sides = if source == CandleSource::Trades && schema.side_tag() {
            let symbol_column = if schema.symbol_tag() {
                ", \"symbol\""
            } else {
                ""
            };
            format!(
                "\n  |> group(columns: [\"_measurement\", \"_field\"{symbol_column}])\n  |> sort(columns: [\"_time\"])"
            )
        } else {
            String::new()
        };
        let mut q = format!(
            "import \"timezone\"\n\noption location = timezone.location(name: {})\n",
            string(zone.name())
        );
        for (column, field, function) in source.rollups(schema) {
            let predicate = format!(" and r._field == {}", string(field));
            q.push_str(&format!(
                "\n{}{merge_sides}\n  |> aggregateWindow(every: {every}, fn: {function}, timeSrc: \"_start\", createEmpty: false){}\n",
                self.select(base, symbol, start, end, &predicate),
                finish(column)
            ));
        }
        q
    }

    /// The Flux query of [`FluxStore::server_candles`].
    pub fn server_candles_query(
        &self,
        source: CandleSource,
        symbol: &Symbol,
        (start, end): (Nanos, Nanos),
        every: &str,
        zone: chrono_tz::Tz,
    ) -> String {
        self.window_statements(
            source,
            symbol,
            (&time(start), &time(end)),
            every,
            zone,
            |column| format!("\n  |> yield(name: {})", string(column)),
        )
    }

    /// `every`-long candles of `symbol` in `[start, end)` computed by the server from `source`
    /// at query time (see [`FluxStore::window_statements`]). The server computes no notional,
    /// so the candles have no VWAP.
    pub fn server_candles(
        &self,
        source: CandleSource,
        symbol: &Symbol,
        range: (Nanos, Nanos),
        every: &str,
        zone: chrono_tz::Tz,
    ) -> Result<Vec<CandleRow>> {
        let q = self.server_candles_query(source, symbol, range, every, zone);
        let mut columns: std::collections::BTreeMap<Nanos, [Option<i64>; 6]> = Default::default();
        self.each(&q, |result, r| {
            let i = CANDLE_COLUMNS
                .iter()
                .position(|c| *c == result)
                .ok_or_else(|| InfluxError::Protocol(format!("unexpected result {result:?}")))?;
            let value = r.get("_value")?;
            let value = if i < 4 {
                self.price(value)?
            } else {
                parse(value, "a sum or count")?
            };
            if let Some(slot) = columns
                .entry(parse_time(r.get("_time")?)?)
                .or_default()
                .get_mut(i)
            {
                *slot = Some(value);
            }
            Ok(())
        })?;
        let negative = |n: i64| InfluxError::Protocol(format!("a negative sum or count {n}"));
        columns
            .into_iter()
            .map(|(time, values)| match values {
                [
                    Some(open),
                    Some(high),
                    Some(low),
                    Some(close),
                    Some(volume),
                    Some(trades),
                ] => Ok(CandleRow {
                    time,
                    ohlc: Some([open, high, low, close]),
                    volume: u64::try_from(volume).map_err(|_| negative(volume))?,
                    trades: u64::try_from(trades).map_err(|_| negative(trades))?,
                    vwap: None,
                }),
                _ => Err(InfluxError::Protocol(format!(
                    "the candle at {} lacks a column",
                    self::time(time)
                ))),
            })
            .collect()
    }

    /// Flux that computes the 1-minute candles of `symbol`'s trades in `[start, stop)` and
    /// writes them with `to()` into this bucket, as the measurement of kind `into` (see
    /// [`CandleSource::Downsampled`]), tagged with the symbol when the schema tags it.
    /// `start` and `stop` are Flux expressions: a task's script reads the minute before each
    /// run (`-task.every`), a run over a load names its range.
    pub fn downsample_flux(&self, symbol: &Symbol, into: &str, start: &str, stop: &str) -> String {
        let config = self.client.config();
        let measurement = config.schema.measurement(into, symbol);
        // A selector (`first`, `max`, ...) returns the whole row it selected, and `to()` writes
        // every string column as a tag: without this, a trade's `side` would split the candles
        // into a series per side.
        let symbol_column = if config.schema.symbol_tag() {
            ", \"symbol\""
        } else {
            ""
        };
        let keep = format!(
            "\n  |> keep(columns: [\"_time\", \"_value\", \"_measurement\", \"_field\"{symbol_column}])"
        );
        self.window_statements(
            CandleSource::Trades,
            symbol,
            (start, stop),
            "1m",
            chrono_tz::UTC,
            |column| {
                format!(
                    "{keep}\n  |> set(key: \"_measurement\", value: {})\n  |> set(key: \"_field\", value: {})\n  |> to(bucket: {}, org: {})\n  |> yield(name: {})",
                    string(&measurement),
                    string(column),
                    string(self.bucket()),
                    string(&config.org),
                    string(column)
                )
            },
        )
    }

    /// [`FluxStore::downsample_flux`] over `[start, end)`.
    pub fn downsample_range_flux(
        &self,
        symbol: &Symbol,
        into: &str,
        (start, end): (Nanos, Nanos),
    ) -> String {
        self.downsample_flux(symbol, into, &time(start), &time(end))
    }

    /// The Flux query of the newest `n` trades of `symbol` in `[start, end)`, newest first.
    pub fn latest_trades_query(
        &self,
        symbol: &Symbol,
        (start, end): (Nanos, Nanos),
        n: usize,
    ) -> String {
        let mut q = self.select(TRADE, symbol, &time(start), &time(end), "");
        q.push_str(&format!(
            "\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> group()\n  |> sort(columns: [\"_time\"], desc: true)\n  |> limit(n: {n})"
        ));
        q
    }

    /// Runs `query` and returns how many rows its tables had: for timing a query by itself.
    pub fn rows(&self, query: &str) -> Result<u64> {
        let mut rows = 0;
        self.each(query, |_, _| {
            rows += 1;
            Ok(())
        })?;
        Ok(rows)
    }

    /// A price as the schema holds it, in units of $0.001.
    fn price(&self, s: &str) -> Result<i64> {
        if self.client.config().schema.integer_prices() {
            parse(s, "a price")
        } else {
            price_units(s)
        }
    }

    /// The `json` field of the manifest point, if there is one.
    fn manifest_json(&self) -> Result<Option<String>> {
        let q = format!(
            "from(bucket: {})\n  |> range(start: 1970-01-01T00:00:00Z, stop: {END_OF_TIME})\n  |> filter(fn: (r) => r._measurement == {} and r._field == \"json\")\n  |> last()",
            string(self.bucket()),
            string(MANIFEST)
        );
        let mut json = None;
        self.each(&q, |_, r| {
            json = Some(r.get("_value")?.to_string());
            Ok(())
        })?;
        Ok(json)
    }

    /// Every load's claim on the bucket (see [`Claim`]).
    pub fn claims(&self) -> Result<Vec<Claim>> {
        let q = format!(
            "from(bucket: {})\n  |> range(start: 1970-01-01T00:00:00Z, stop: {END_OF_TIME})\n  |> filter(fn: (r) => r._measurement == {})\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> keep(columns: [\"_time\", \"fingerprint\", \"load\", \"lease_until\"])",
            string(self.bucket()),
            string(CLAIM)
        );
        let mut claims = Vec::new();
        self.each(&q, |_, r| {
            let time = parse_time(r.get("_time")?)?;
            claims.push(Claim {
                fingerprint: r.get("fingerprint")?.to_string(),
                load: r.get("load")?.to_string(),
                time,
                // A claim without a lease says nothing of a load still running.
                lease_until: r
                    .get("lease_until")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(time),
            });
            Ok(())
        })?;
        Ok(claims)
    }

    /// (index, count) of every shard marked as finished.
    fn shards_done(&self) -> Result<Vec<(u32, u32)>> {
        let q = format!(
            "from(bucket: {})\n  |> range(start: 1970-01-01T00:00:00Z, stop: {END_OF_TIME})\n  |> filter(fn: (r) => r._measurement == {})\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> keep(columns: [\"index\", \"count\"])",
            string(self.bucket()),
            string(SHARD)
        );
        let mut done = Vec::new();
        self.each(&q, |_, r| {
            done.push((
                parse(r.get("index")?, "a shard index")?,
                parse(r.get("count")?, "a shard count")?,
            ));
            Ok(())
        })?;
        Ok(done)
    }
}

impl Store for FluxStore {
    fn trades(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
        limit: Option<usize>,
    ) -> store::Result<TradeColumns> {
        // Buys and sells are separate series (the side tag): group() merges them, and the
        // sort restores time order before the limit takes the first ones.
        let mut q = self.select(TRADE, symbol, &time(start), &time(end), "");
        q.push_str(
            "\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> group()\n  |> sort(columns: [\"_time\"])",
        );
        if let Some(n) = limit {
            q.push_str(&format!("\n  |> limit(n: {n})"));
        }
        let ids = self.client.config().schema.trade_ids();
        q.push_str(&format!(
            "\n  |> keep(columns: [\"_time\", \"side\", \"price\", \"amount\"{}])",
            if ids { ", \"trade_id\"" } else { "" }
        ));
        let mut out = TradeColumns::default();
        self.each(&q, |_, r| {
            out.push(
                parse_time(r.get("_time")?)?,
                if ids {
                    parse(r.get("trade_id")?, "a trade id")?
                } else {
                    0
                },
                self.price(r.get("price")?)?,
                parse(r.get("amount")?, "an amount")?,
                r.get("side")? == "buy",
            );
            Ok(())
        })?;
        if !ids {
            super::number_trades(self, symbol, start, &mut out)?;
        }
        Ok(out)
    }

    fn minute_candles(
        &self,
        symbol: &Symbol,
        start: Nanos,
        end: Nanos,
    ) -> store::Result<Vec<Candle>> {
        let mut q = self.select(CANDLE, symbol, &time(start), &time(end), "");
        q.push_str(
            "\n  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> keep(columns: [\"_time\", \"open\", \"high\", \"low\", \"close\", \"volume\", \"trades\", \"notional\"])",
        );
        let mut out = Vec::new();
        self.each(&q, |_, r| {
            out.push(Candle {
                time: parse_time(r.get("_time")?)?,
                open: self.price(r.get("open")?)?,
                high: self.price(r.get("high")?)?,
                low: self.price(r.get("low")?)?,
                close: self.price(r.get("close")?)?,
                volume: parse(r.get("volume")?, "a volume")?,
                trades: parse(r.get("trades")?, "a trade count")?,
                notional: parse(r.get("notional")?, "a notional")?,
            });
            Ok(())
        })?;
        out.sort_by_key(|c| c.time);
        Ok(out)
    }

    fn previous_close(&self, symbol: &Symbol, before: Nanos) -> store::Result<Option<i64>> {
        let q = self.select(
            CANDLE,
            symbol,
            "1970-01-01T00:00:00Z",
            &time(before),
            " and r._field == \"close\"",
        ) + "\n  |> last()";
        let mut close = None;
        self.each(&q, |_, r| {
            close = Some(self.price(r.get("_value")?)?);
            Ok(())
        })?;
        Ok(close)
    }

    fn count_trades(&self, symbol: &Symbol, ranges: &[(Nanos, Nanos)]) -> store::Result<Vec<u64>> {
        let mut counts = vec![0u64; ranges.len()];
        for (batch_index, batch) in ranges.chunks(COUNTS_PER_QUERY).enumerate() {
            let q: Vec<String> = batch
                .iter()
                .enumerate()
                .map(|(i, (start, end))| {
                    format!(
                        "{}\n  |> group()\n  |> count()\n  |> yield(name: \"c{i}\")",
                        self.select(
                            TRADE,
                            symbol,
                            &time(*start),
                            &time(*end),
                            &format!(
                                " and r._field == {}",
                                string(self.client.config().schema.counted_field())
                            )
                        )
                    )
                })
                .collect();
            self.each(&q.join("\n\n"), |result, r| {
                let i: usize = result
                    .strip_prefix('c')
                    .and_then(|i| i.parse().ok())
                    .filter(|&i| i < batch.len())
                    .ok_or_else(|| {
                        InfluxError::Protocol(format!("unexpected result {result:?}"))
                    })?;
                let slot = counts
                    .get_mut(batch_index * COUNTS_PER_QUERY + i)
                    .ok_or_else(|| {
                        InfluxError::Protocol(format!("unexpected result {result:?}"))
                    })?;
                *slot += parse::<u64>(r.get("_value")?, "a count")?;
                Ok(())
            })?;
        }
        Ok(counts)
    }

    fn manifest(&self) -> store::Result<Manifest> {
        super::manifest(self.client.config(), self.manifest_json()?, || {
            Ok(self.shards_done()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped_and_exact() {
        assert_eq!(string(r#"a"b\c${x}"#), r#""a\"b\\c\${x}""#);
        assert_eq!(
            time(1_704_205_800_000_000_001),
            "2024-01-02T14:30:00.000000001Z"
        );
        assert_eq!(
            parse_time("2024-01-02T14:30:00.000000001Z").unwrap(),
            1_704_205_800_000_000_001
        );
        assert_eq!(
            parse_time("2024-01-02T14:30:00Z").unwrap(),
            1_704_205_800_000_000_000
        );
    }
}

//! The OHLCV query workload, timed cold (the first run after the load) and warm: 1-minute
//! candles of a day, 1-hour candles of a month, 1-day candles of the whole load, the last 100
//! trades; each candle query by every candle path the server offers.

use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use serde::Serialize;

use crate::candles::{Fill, Interval};
use crate::generator::MarketPlan;
use crate::model::Symbol;
use crate::query::{self, CandleQuery};
use crate::store::Store;
use crate::store::influx::client::{Client, quote_ident, quote_string};
use crate::store::influx::flux::{CandleSource, FluxStore};
use crate::store::influx::line_protocol::TRADE;
use crate::store::influx::{Api, InfluxConfig, QueryLanguage, admin, influxql};

/// The zone candles are aligned to: the exchange's.
const ZONE: Tz = chrono_tz::America::New_York;

/// The measurement the downsampling statement writes 1-minute candles into.
pub const DOWNSAMPLED: &str = "candle_1m_cq";

/// The measurement the 2.x downsampling task's script writes 1-minute candles into.
pub const DOWNSAMPLED_TASK: &str = "candle_1m_task";

/// The name of the downsampling statement's cost among the queries.
pub const DOWNSAMPLE: &str = "downsample the symbol's trades into 1m candles";

/// The name of the 2.x downsampling task's creation and deletion among the queries.
pub const TASK: &str = "create and delete the 1m downsampling task";

/// How candles are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandlePath {
    /// 1-minute candles written by the loader, rolled up by ohlcv (what `ohlcv candles` does).
    #[serde(rename = "stored_1m")]
    Stored1m,
    /// Computed by the server from the raw trades at query time (InfluxQL `GROUP BY time`).
    ServerGroupBy,
    /// Computed by the server from the raw trades at query time (Flux `aggregateWindow()`).
    ServerFlux,
    /// Computed once by the server into a measurement of 1-minute candles (the statement a
    /// continuous query runs), then rolled up by the server at query time.
    Downsampled,
    /// Computed once by the server into a measurement of 1-minute candles (the script of a
    /// 2.x task, run once over the load as a query), then rolled up by the server at query
    /// time with Flux.
    DownsampledTask,
    /// Raw trades, no candles.
    Trades,
}

impl CandlePath {
    pub fn label(self) -> &'static str {
        match self {
            CandlePath::Stored1m => "stored 1m (loader)",
            CandlePath::ServerGroupBy => "server GROUP BY time",
            CandlePath::ServerFlux => "server Flux aggregateWindow",
            CandlePath::Downsampled => "downsampled (continuous query)",
            CandlePath::DownsampledTask => "downsampled (task)",
            CandlePath::Trades => "trades",
        }
    }
}

/// One query's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryCost {
    pub name: String,
    pub candle_path: CandlePath,
    /// The first run, right after the load.
    pub cold_ms: Option<f64>,
    /// Of the warm runs that followed.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Rows (candles or trades) the query returned: the same for every path of one query.
    pub rows: Option<u64>,
    pub error: Option<String>,
}

/// What the workload reads: the load's first symbol, the session in the middle of the load,
/// its month, and the whole load.
struct Ranges {
    symbol: Symbol,
    day: (i64, i64),
    month: (i64, i64),
    all: (i64, i64),
}

fn midnight(date: NaiveDate) -> Option<i64> {
    query::parse_time(&date.format("%Y-%m-%d").to_string(), ZONE).ok()
}

impl Ranges {
    fn new(plan: &MarketPlan) -> Option<Self> {
        let sessions = plan.sessions();
        let middle = sessions.get(sessions.len() / 2)?;
        let date = middle.date;
        let first_of_month = date.with_day(1)?;
        let next_month = first_of_month.checked_add_months(chrono::Months::new(1))?;
        Some(Self {
            symbol: plan.symbols().first()?.symbol.clone(),
            day: (midnight(date)?, midnight(date.succ_opt()?)?),
            month: (midnight(first_of_month)?, midnight(next_month)?),
            all: (
                midnight(sessions.first()?.date)?,
                midnight(sessions.last()?.date.succ_opt()?)?,
            ),
        })
    }
}

/// A query to time: returns the rows it read.
type Run<'a> = Box<dyn Fn() -> Result<u64, String> + 'a>;

/// Times every query of the workload against the load of `plan` in `config`'s target, read
/// through `store`: one cold run, then `warm_runs` more.
pub fn run(
    store: &dyn Store,
    config: &InfluxConfig,
    plan: &MarketPlan,
    warm_runs: usize,
) -> Vec<QueryCost> {
    let Some(ranges) = Ranges::new(plan) else {
        return Vec::new();
    };
    // Flux and tasks on 2.x.
    let clients = Client::new(config.clone()).and_then(|client| {
        let flux = (config.api == Api::V2)
            .then(|| FluxStore::new(config.clone()))
            .transpose()?;
        Ok((client, flux))
    });
    let (client, flux) = match clients {
        Ok(clients) => clients,
        Err(e) => {
            return vec![QueryCost {
                name: "connect".into(),
                candle_path: CandlePath::Trades,
                cold_ms: None,
                p50_ms: None,
                p99_ms: None,
                rows: None,
                error: Some(e.to_string()),
            }];
        }
    };
    let db = config.read_database().to_string();
    let influxql = |q: String| -> Run<'_> {
        let (client, db) = (&client, db.clone());
        Box::new(move || {
            client
                .influxql(&q, Some(&db))
                .map(|rows| rows.len() as u64)
                .map_err(|e| e.to_string())
        })
    };
    let stored = |interval: &str, (start, end): (i64, i64)| -> Run<'_> {
        let interval: Result<Interval, String> = interval.parse().map_err(|e| format!("{e}"));
        let symbol = ranges.symbol.clone();
        Box::new(move || {
            let q = CandleQuery {
                symbol: symbol.clone(),
                interval: interval.clone()?,
                start,
                end,
                tz: ZONE,
                fill: Fill::None,
            };
            query::candles(store, &q)
                .map(|rows| rows.len() as u64)
                .map_err(|e| e.to_string())
        })
    };
    let schema = config.schema;
    let within = |base: &str, (start, end): (i64, i64)| {
        influxql::from_where(schema, base, &ranges.symbol, Some(start), end)
    };
    let from_trades = |every: &str, range, tz: &str| {
        format!(
            "SELECT first(\"price\"), max(\"price\"), min(\"price\"), last(\"price\"), sum(\"amount\"), count({}) \
             {} GROUP BY time({every}) fill(none){tz}",
            quote_ident(schema.counted_field()),
            within(TRADE, range)
        )
    };
    let from_downsampled = |every: &str, range, tz: &str| {
        format!(
            "SELECT first(\"open\"), max(\"high\"), min(\"low\"), last(\"close\"), sum(\"volume\"), sum(\"trades\") \
             {} GROUP BY time({every}) fill(none){tz}",
            within(DOWNSAMPLED, range)
        )
    };
    let by_day = format!(" tz({})", quote_string(ZONE.name()));

    // InfluxQL on 1.x, and on 2.x when reads go through it (its v1 compatibility API).
    let influxql_paths = config.api == Api::V1 || config.query_language == QueryLanguage::Influxql;
    let server_candles =
        |flux, source, every, range| flux_candles(flux, source, &ranges.symbol, every, range);

    let mut queries: Vec<(&str, CandlePath, Run<'_>)> = vec![
        (
            "1m candles, a day",
            CandlePath::Stored1m,
            stored("1m", ranges.day),
        ),
        (
            "1h candles, a month",
            CandlePath::Stored1m,
            stored("1h", ranges.month),
        ),
        (
            "1d candles, the load",
            CandlePath::Stored1m,
            stored("1d", ranges.all),
        ),
    ];
    if influxql_paths {
        queries.extend([
            (
                "1m candles, a day",
                CandlePath::ServerGroupBy,
                influxql(from_trades("1m", ranges.day, "")),
            ),
            (
                "1h candles, a month",
                CandlePath::ServerGroupBy,
                influxql(from_trades("1h", ranges.month, "")),
            ),
            (
                "1d candles, the load",
                CandlePath::ServerGroupBy,
                influxql(from_trades("1d", ranges.all, &by_day)),
            ),
        ]);
    }
    if let Some(flux) = &flux {
        queries.extend([
            (
                "1m candles, a day",
                CandlePath::ServerFlux,
                server_candles(flux, CandleSource::Trades, "1m", ranges.day),
            ),
            (
                "1h candles, a month",
                CandlePath::ServerFlux,
                server_candles(flux, CandleSource::Trades, "1h", ranges.month),
            ),
            (
                "1d candles, the load",
                CandlePath::ServerFlux,
                server_candles(flux, CandleSource::Trades, "1d", ranges.all),
            ),
        ]);
    }
    let last_trades: Run<'_> = match &flux {
        Some(flux) if !influxql_paths => {
            let q = flux.latest_trades_query(&ranges.symbol, ranges.all, 100);
            Box::new(move || flux.rows(&q).map_err(|e| e.to_string()))
        }
        _ => influxql(format!(
            "SELECT \"price\", \"amount\", \"side\"{} {} ORDER BY time DESC LIMIT 100",
            if schema.trade_ids() {
                ", \"trade_id\""
            } else {
                ""
            },
            within(TRADE, ranges.all)
        )),
    };
    queries.push(("last 100 trades", CandlePath::Trades, last_trades));
    let mut costs: Vec<QueryCost> = queries
        .iter()
        .map(|(name, path, run)| time(name, *path, run, warm_runs))
        .collect();

    // `SELECT ... INTO` is what a 1.x continuous query runs.
    if config.api == Api::V1 {
        // The queried symbol's trades only: on the year, the statement's cost is mostly the
        // minutes it walks per series, so the whole load would cost as many times more as it
        // has symbols, and a benchmark run that much longer.
        let by_symbol = if schema.symbol_tag() {
            ", \"symbol\""
        } else {
            ""
        };
        let into = format!(
            "SELECT first(\"price\") AS \"open\", max(\"price\") AS \"high\", min(\"price\") AS \"low\", \
             last(\"price\") AS \"close\", sum(\"amount\") AS \"volume\", count({}) AS \"trades\" \
             INTO {} {} GROUP BY time(1m){by_symbol} fill(none)",
            quote_ident(schema.counted_field()),
            quote_ident(&schema.measurement(DOWNSAMPLED, &ranges.symbol)),
            within(TRADE, ranges.all)
        );
        let downsample = influxql(into);
        // Run once: its cost is the downsampling of one symbol's trades.
        costs.push(time(DOWNSAMPLE, CandlePath::Downsampled, &downsample, 0));
        queries = vec![
            (
                "1m candles, a day",
                CandlePath::Downsampled,
                influxql(format!(
                    "SELECT \"open\", \"high\", \"low\", \"close\", \"volume\", \"trades\" {}",
                    within(DOWNSAMPLED, ranges.day)
                )),
            ),
            (
                "1h candles, a month",
                CandlePath::Downsampled,
                influxql(from_downsampled("1h", ranges.month, "")),
            ),
            (
                "1d candles, the load",
                CandlePath::Downsampled,
                influxql(from_downsampled("1d", ranges.all, &by_day)),
            ),
        ];
        costs.extend(
            queries
                .iter()
                .map(|(name, path, run)| time(name, *path, run, warm_runs)),
        );
    }

    // A 2.x task runs its script every minute over the minute before: on a load of past
    // trades it would find none, so the task is created (and deleted) to exercise the API,
    // and its script is run once over the symbol's whole load as a query, which is what
    // the task's runs would have done over that time.
    if let Some(flux) = &flux {
        let symbol = &ranges.symbol;
        let script = format!(
            "option task = {{name: \"ohlcv 1m candles {}\", every: 1m}}\n\n{}",
            symbol.as_str().replace(['"', '\\', '$'], "_"),
            flux.downsample_flux(symbol, DOWNSAMPLED_TASK, "-task.every", "now()")
        );
        let task: Run<'_> = Box::new(move || {
            let id = admin::create_task(config, &script, "ohlcv bench influx: 1-minute candles")
                .map_err(|e| e.to_string())?;
            admin::delete_task(config, &id).map_err(|e| e.to_string())?;
            Ok(1)
        });
        costs.push(time(TASK, CandlePath::DownsampledTask, &task, 0));
        let q = flux.downsample_range_flux(symbol, DOWNSAMPLED_TASK, ranges.all);
        let downsample: Run<'_> = Box::new(move || flux.rows(&q).map_err(|e| e.to_string()));
        costs.push(time(
            DOWNSAMPLE,
            CandlePath::DownsampledTask,
            &downsample,
            0,
        ));
        let source = CandleSource::Downsampled(DOWNSAMPLED_TASK);
        queries = vec![
            (
                "1m candles, a day",
                CandlePath::DownsampledTask,
                server_candles(flux, source, "1m", ranges.day),
            ),
            (
                "1h candles, a month",
                CandlePath::DownsampledTask,
                server_candles(flux, source, "1h", ranges.month),
            ),
            (
                "1d candles, the load",
                CandlePath::DownsampledTask,
                server_candles(flux, source, "1d", ranges.all),
            ),
        ];
        costs.extend(
            queries
                .iter()
                .map(|(name, path, run)| time(name, *path, run, warm_runs)),
        );
    }
    costs
}

/// `every`-long candles of `symbol` in `range`, computed by the server from `source` in Flux.
fn flux_candles<'a>(
    flux: &'a FluxStore,
    source: CandleSource<'static>,
    symbol: &Symbol,
    every: &'static str,
    range: (i64, i64),
) -> Run<'a> {
    let symbol = symbol.clone();
    Box::new(move || {
        flux.server_candles(source, &symbol, range, every, ZONE)
            .map(|rows| rows.len() as u64)
            .map_err(|e| e.to_string())
    })
}

/// Runs `run` once cold and `warm_runs` times warm.
fn time(name: &str, path: CandlePath, run: &Run<'_>, warm_runs: usize) -> QueryCost {
    let timed = || {
        let started = Instant::now();
        run().map(|rows| (started.elapsed().as_secs_f64() * 1000.0, rows))
    };
    let mut cost = QueryCost {
        name: name.into(),
        candle_path: path,
        cold_ms: None,
        p50_ms: None,
        p99_ms: None,
        rows: None,
        error: None,
    };
    match timed() {
        Ok((ms, rows)) => {
            cost.cold_ms = Some(ms);
            cost.rows = Some(rows);
        }
        Err(e) => {
            cost.error = Some(e);
            return cost;
        }
    }
    let mut warm = Vec::with_capacity(warm_runs);
    for _ in 0..warm_runs {
        match timed() {
            Ok((ms, _)) => warm.push(ms),
            Err(e) => {
                cost.error = Some(e);
                return cost;
            }
        }
    }
    warm.sort_by(f64::total_cmp);
    cost.p50_ms = percentile(&warm, 0.5);
    cost.p99_ms = percentile(&warm, 0.99);
    cost
}

/// The nearest-rank percentile `p` of sorted `values`; `None` if there are none.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(5.0));
        assert_eq!(percentile(&v, 0.99), Some(10.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
    }
}

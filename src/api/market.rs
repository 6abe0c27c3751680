//! Market data over HTTP: symbols, candles and trades of the stored load, and its realism
//! report; every parameter validated into a problem document, pages as JSON (written by hand,
//! exact prices) or csv.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AppState, DEFAULT_LIMIT, MAX_BUCKETS, MAX_LIMIT, Problem};
use crate::candles::{self, Fill, Interval};
use crate::format::{self, CandleJson, CandlesPage, Format, TradeJson, TradesPage};
use crate::generator::MarketPlan;
use crate::model::{Nanos, Symbol, TradeColumns, format_time};
use crate::query::{self, CandleQuery, QueryError};
use crate::stats::{self, StatsReport};
use crate::store::{Manifest, Store};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SymbolList {
    symbols: Vec<SymbolInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SymbolInfo {
    symbol: String,
    first_trade: Option<String>,
    last_trade: Option<String>,
    trades: u64,
}

/// Each symbol of the stored load with its first and last trade and count, over the
/// partitions the manifest lists as stored (not those a load has yet to
/// write). A stored partition holds exactly its chunks of the load's plan (`ohlcv verify`), so
/// the plan says which trades those are without reading them; the first and last trade come
/// from generating their chunks, so the list is kept until the manifest changes.
#[utoipa::path(get, path = "/api/v1/symbols", tag = "market data",
    responses(
        (status = 200, description = "The symbols", body = SymbolList),
        (status = 503, description = "No load stored yet, the stored load is incomplete (`load_incomplete`), the store is unreachable, or the request timed out", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn symbols(State(state): State<AppState>) -> Result<Response, Problem> {
    let cache = state.symbols.clone();
    let list = state
        .read(move |store| {
            let manifest = store.manifest().map_err(|e| Problem::from_store(&e))?;
            let cached = |cache: &SymbolsCache| {
                cache
                    .as_ref()
                    .filter(|(of, _)| *of == manifest)
                    .map(|(_, list)| list.clone())
            };
            if let Some(list) = cached(&lock(&cache)) {
                return Ok(list);
            }
            // Computed without the lock, so that requests answered from the cache never wait
            // on one that computes; concurrent first requests after a load each compute it.
            let plan = MarketPlan::new(manifest.load.clone()).map_err(|e| Problem::internal(&e))?;
            let list = Arc::new(SymbolList {
                symbols: stored_symbols(&plan, &manifest),
            });
            *lock(&cache) = Some((manifest, list.clone()));
            Ok(list)
        })
        .await?;
    Ok(axum::Json(list.as_ref()).into_response())
}

fn lock(cache: &std::sync::Mutex<SymbolsCache>) -> std::sync::MutexGuard<'_, SymbolsCache> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

/// The symbol list of the stored load, with the manifest it was computed from.
pub(super) type SymbolsCache = Option<(Manifest, Arc<SymbolList>)>;

/// The symbols of `plan` with the trades of theirs that `manifest`'s partitions hold.
fn stored_symbols(plan: &MarketPlan, manifest: &Manifest) -> Vec<SymbolInfo> {
    let sessions = plan.sessions();
    let mut out = Vec::new();
    for (s, sp) in plan.symbols().iter().enumerate() {
        let stored = |d: &usize| {
            sessions.get(*d).is_some_and(|session| {
                manifest.partitions.iter().any(|p| {
                    p.symbols.contains(&sp.symbol)
                        && p.start <= session.open
                        && session.open < p.end
                })
            })
        };
        let with_trades: Vec<usize> = (0..sessions.len())
            .filter(|d| sp.chunks.get(*d).is_some_and(|c| c.count > 0) && stored(d))
            .collect();
        let edge = |d: Option<&usize>, last: bool| -> Option<Nanos> {
            let mut t = TradeColumns::default();
            plan.generate(s, *d?, &mut t);
            if last {
                t.times.last().copied()
            } else {
                t.times.first().copied()
            }
        };
        out.push(SymbolInfo {
            symbol: sp.symbol.to_string(),
            first_trade: edge(with_trades.first(), false).map(format_time),
            last_trade: edge(with_trades.last(), true).map(format_time),
            trades: with_trades
                .iter()
                .filter_map(|d| sp.chunks.get(*d))
                .map(|c| c.count)
                .sum(),
        });
    }
    out
}

#[derive(Debug, Deserialize)]
struct RangeParams {
    symbol: Option<String>,
    start: Option<String>,
    end: Option<String>,
    tz: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CandleParams {
    #[serde(flatten)]
    range: RangeParams,
    interval: Option<String>,
    fill: Option<String>,
}

struct Validated {
    symbol: Symbol,
    start: Nanos,
    end: Nanos,
    tz: chrono_tz::Tz,
    tz_name: String,
    limit: usize,
}

fn required<'a>(value: &'a Option<String>, param: &'static str) -> Result<&'a str, Problem> {
    value.as_deref().ok_or_else(|| {
        Problem::bad_request("missing_parameter", format!("{param} is required"), param)
    })
}

fn validate(p: &RangeParams) -> Result<Validated, Problem> {
    let symbol = Symbol::new(required(&p.symbol, "symbol")?)
        .map_err(|e| Problem::bad_request("invalid_symbol", e.to_string(), "symbol"))?;
    let tz_name =
        p.tz.clone()
            .unwrap_or_else(|| "America/New_York".to_string());
    let tz = candles::parse_tz(&tz_name)
        .map_err(|e| Problem::bad_request("invalid_tz", e.to_string(), "tz"))?;
    let time = |param: &'static str, v: &Option<String>| {
        query::parse_time(required(v, param)?, tz).map_err(|e| match e {
            QueryError::Time(_) => Problem::bad_request("invalid_time", e.to_string(), param),
            e => Problem::unprocessable("invalid_time", e.to_string(), param),
        })
    };
    let mut start = time("start", &p.start)?;
    let end = time("end", &p.end)?;
    if start >= end {
        return Err(Problem::unprocessable(
            "invalid_range",
            "start must be before end".into(),
            "end",
        ));
    }
    if let Some(cursor) = &p.cursor {
        let at = query::parse_cursor(cursor).ok_or_else(|| {
            Problem::bad_request(
                "invalid_cursor",
                "cursor is the next_cursor of a page, an integer".into(),
                "cursor",
            )
        })?;
        if !(start..end).contains(&at) {
            return Err(Problem::unprocessable(
                "invalid_cursor",
                "cursor is not one this range returned".into(),
                "cursor",
            ));
        }
        start = at;
    }
    let limit = match &p.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid_limit",
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                    "limit",
                )
            })?,
    };
    Ok(Validated {
        symbol,
        start,
        end,
        tz,
        tz_name,
        limit,
    })
}

/// Parses the query string, turning its errors into problem responses.
fn params<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<T, Problem> {
    let raw = raw.unwrap_or_default();
    Query::<T>::try_from_uri(&format!("/?{raw}").parse().map_err(|_| {
        Problem::bad_request("invalid_query", "malformed query string".into(), "query")
    })?)
    .map(|q| q.0)
    .map_err(|_| Problem::bad_request("invalid_query", "malformed query string".into(), "query"))
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// OHLCV candles of one symbol at any interval, aligned in a time zone: what `ohlcv candles`
/// prints.
#[utoipa::path(get, path = "/api/v1/candles", tag = "market data",
    params(
        ("symbol" = String, Query, description = "Ticker: a capital letter, then up to 9 capitals, digits, '.' or '-'", example = "AAPL"),
        ("interval" = String, Query, description = "<n><unit>: n from 1 to 1000000, unit s, m, h, d, w or mo", example = "1m"),
        ("start" = String, Query, description = "RFC 3339 time or YYYY-MM-DD (midnight in tz), inclusive, in the years 1998 to 2261", example = "2024-03-11"),
        ("end" = String, Query, description = "RFC 3339 time or YYYY-MM-DD, exclusive, in the years 1998 to 2261", example = "2024-03-12"),
        ("tz" = Option<String>, Query, description = "IANA zone buckets align to (default America/New_York)"),
        ("fill" = Option<String>, Query, description = "none (default), null or previous: empty session buckets"),
        ("limit" = Option<u16>, Query, description = "Candles per page, 1 to 10000 (default 1000)"),
        ("cursor" = Option<i64>, Query, description = "next_cursor of the previous page: a time in nanoseconds within [start, end)"),
    ),
    responses(
        (status = 200, description = "A page of candles (csv with `Accept: text/csv`, the next cursor in `x-next-cursor`)",
            content((CandlesPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is missing or breaks its pattern, enum or bounds", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed, but no such day or time, a time outside the supported years, start not before end, a cursor outside the range, or more than 1,000,000 buckets", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No load stored yet, the stored load is incomplete (`load_incomplete`), the store is unreachable, or the request timed out", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn candles_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p: CandleParams = params(raw)?;
    let v = validate(&p.range)?;
    let interval: Interval =
        required(&p.interval, "interval")?
            .parse()
            .map_err(|e: candles::CandleError| {
                Problem::bad_request("invalid_interval", e.to_string(), "interval")
            })?;
    let fill: Fill =
        p.fill
            .as_deref()
            .unwrap_or("none")
            .parse()
            .map_err(|e: candles::CandleError| {
                Problem::bad_request("invalid_fill", e.to_string(), "fill")
            })?;
    if interval.approx_buckets(v.start, v.end) > MAX_BUCKETS {
        return Err(Problem::unprocessable(
            "range_too_large",
            format!(
                "the range holds more than {MAX_BUCKETS} {interval} buckets; shorten it or use a larger interval"
            ),
            "end",
        ));
    }
    let q = CandleQuery {
        symbol: v.symbol.clone(),
        interval,
        start: v.start,
        end: v.end,
        tz: v.tz,
        fill,
    };
    let mut rows = state
        .read(move |store| query::candles(store, &q).map_err(|e| Problem::from_query(&e)))
        .await?;
    let next_cursor = rows.get(v.limit).map(|r| query::format_cursor(r.time));
    rows.truncate(v.limit);
    if wants_csv(&headers) {
        let mut body = Vec::new();
        format::write_candles(
            &mut body,
            Format::Csv,
            &v.symbol,
            interval,
            &v.tz_name,
            &rows,
        )
        .map_err(|e| Problem::internal(&e))?;
        return Ok(csv_response(body, next_cursor));
    }
    let page = CandlesPage {
        symbol: v.symbol.to_string(),
        interval: interval.to_string(),
        tz: v.tz_name,
        candles: rows.iter().map(CandleJson::from).collect(),
        next_cursor,
    };
    Ok(json_response(page.to_json()))
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn csv_response(body: Vec<u8>, next_cursor: Option<String>) -> Response {
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        body,
    )
        .into_response();
    if let Some(c) = next_cursor.and_then(|c| c.parse().ok()) {
        r.headers_mut().insert("x-next-cursor", c);
    }
    r
}

/// Trades of one symbol in time order, paged.
#[utoipa::path(get, path = "/api/v1/trades", tag = "market data",
    params(
        ("symbol" = String, Query, description = "Ticker: a capital letter, then up to 9 capitals, digits, '.' or '-'", example = "AAPL"),
        ("start" = String, Query, description = "RFC 3339 time or YYYY-MM-DD (midnight in tz), inclusive, in the years 1998 to 2261", example = "2024-03-11T14:30:00Z"),
        ("end" = String, Query, description = "RFC 3339 time or YYYY-MM-DD, exclusive, in the years 1998 to 2261", example = "2024-03-11T14:31:00Z"),
        ("tz" = Option<String>, Query, description = "IANA zone of bare dates (default America/New_York)"),
        ("limit" = Option<u16>, Query, description = "Trades per page, 1 to 10000 (default 1000)"),
        ("cursor" = Option<i64>, Query, description = "next_cursor of the previous page: a time in nanoseconds within [start, end)"),
    ),
    responses(
        (status = 200, description = "A page of trades (csv with `Accept: text/csv`, the next cursor in `x-next-cursor`)",
            content((TradesPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is missing or breaks its pattern or bounds", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed, but no such day or time, a time outside the supported years, start not before end, or a cursor outside the range", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No load stored yet, the stored load is incomplete (`load_incomplete`), the store is unreachable, or the request timed out", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn trades_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p: RangeParams = params(raw)?;
    let v = validate(&p)?;
    let (symbol, start, end, limit) = (v.symbol.clone(), v.start, v.end, v.limit);
    let mut trades = state
        .read(move |store| {
            store
                .trades(&symbol, start, end, Some(limit + 1))
                .map_err(|e| Problem::from_store(&e))
        })
        .await?;
    let next_cursor = trades.times.get(v.limit).copied().map(query::format_cursor);
    trades.truncate(v.limit);
    if wants_csv(&headers) {
        let mut body = Vec::new();
        format::write_trades(&mut body, Format::Csv, &v.symbol, &trades)
            .map_err(|e| Problem::internal(&e))?;
        return Ok(csv_response(body, next_cursor));
    }
    let page = TradesPage {
        symbol: v.symbol.to_string(),
        trades: (0..trades.len())
            .map(|i| TradeJson::new(&v.symbol, &trades, i))
            .collect(),
        next_cursor,
    };
    Ok(json_response(page.to_json()))
}

/// Reports computed for the stored load, by the symbols asked for: a report reads every trade
/// (seconds on a 300 M-trade load), and a stored load does not change until its manifest does.
#[derive(Debug, Default)]
pub(super) struct StatsCache {
    manifest: Option<Manifest>,
    reports: HashMap<Option<Vec<Symbol>>, Arc<StatsReport>>,
}

impl StatsCache {
    /// Reports kept at most; a full cache is emptied, as the candle cache is.
    const MAX_REPORTS: usize = 16;

    fn report(
        &mut self,
        store: &dyn Store,
        symbols: Option<Vec<Symbol>>,
    ) -> Result<Arc<StatsReport>, Problem> {
        let manifest = store.manifest().map_err(|e| Problem::from_store(&e))?;
        if self.manifest.as_ref() != Some(&manifest) {
            self.reports.clear();
            self.manifest = Some(manifest);
        }
        if let Some(hit) = self.reports.get(&symbols) {
            return Ok(hit.clone());
        }
        let report = Arc::new(
            stats::report(store, symbols.as_deref()).map_err(|e| Problem::from_stats(&e))?,
        );
        if self.reports.len() >= Self::MAX_REPORTS {
            self.reports.clear();
        }
        self.reports.insert(symbols, report.clone());
        Ok(report)
    }
}

#[derive(Debug, Deserialize)]
struct StatsParams {
    symbols: Option<String>,
}

/// The realism report of the stored load, one row per symbol: what `ohlcv stats --format
/// json` prints (csv with `Accept: text/csv`). Computed from the stored candles and every
/// stored trade on the first request after a load changes, then answered from memory.
#[utoipa::path(get, path = "/api/v1/stats", tag = "market data",
    params(
        ("symbols" = Option<String>, Query, description = "Comma-separated symbols of the load (default: all)", example = "AAPL,MSFT"),
    ),
    responses(
        (status = 200, description = "The report (csv with `Accept: text/csv`)",
            content((StatsReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`symbols` breaks its pattern", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A symbol the stored load does not hold", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No load stored yet, the stored load is incomplete (`load_incomplete`), the store is unreachable, or the request timed out", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn stats_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p: StatsParams = params(raw)?;
    let symbols = p
        .symbols
        .map(|list| {
            list.split(',')
                .map(|s| {
                    Symbol::new(s).map_err(|e| {
                        Problem::bad_request("invalid_symbol", e.to_string(), "symbols")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    // One report at a time, waited for here rather than on a store slot. The guard moves into
    // the computation, so a request that times out still leaves its report in the cache and no
    // second computation starts meanwhile.
    let cache = state.stats.clone().lock_owned().await;
    let report = state
        .read(move |store| {
            let mut cache = cache;
            cache.report(store, symbols)
        })
        .await?;
    let format = if wants_csv(&headers) {
        Format::Csv
    } else {
        Format::Json
    };
    let mut body = Vec::new();
    report
        .write(&mut body, format)
        .map_err(|e| Problem::internal(&e))?;
    Ok(match format {
        Format::Csv => csv_response(body, None),
        _ => json_response(body),
    })
}

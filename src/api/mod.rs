//! The HTTP API (`ohlcv serve`): candles, trades and symbols over any [`Store`], with
//! validation of every parameter and `application/problem+json` errors.
//!
//! Store calls block (file or HTTP I/O), so handlers run them on tokio's blocking pool.

mod problem;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::candles::{self, Fill, Interval};
use crate::format::{self, CandleJson, Format, TradeJson};
use crate::generator::MarketPlan;
use crate::model::{Nanos, Symbol, TradeColumns, format_time};
use crate::query::{self, CandleQuery};
use crate::store::Store;
pub use problem::Problem;

/// Default and largest page sizes of `/candles` and `/trades`.
pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 10_000;
/// One request may span at most this many candle buckets (before paging).
pub const MAX_BUCKETS: u64 = 1_000_000;

#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    /// Bounds concurrent store calls: each decodes Parquet pages into memory, and more of them
    /// than cores only queue inside the blocking pool while holding their buffers.
    store_calls: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            store_calls: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
        }
    }

    /// Runs a blocking store call on the blocking pool, at most `2 × cores` at a time.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        let _permit = self
            .store_calls
            .acquire()
            .await
            .map_err(|e| Problem::internal(&e))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| Problem::internal(&e))?
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/symbols", get(symbols))
        .route("/api/v1/candles", get(candles_handler))
        .route("/api/v1/trades", get(trades_handler))
        .route_layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One JSON log line per request: id, method, route (not the raw path), status, latency.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = problem::request_id();
    let mut response = next.run(request).await;
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    if let Ok(value) = id.parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn health() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    match state
        .call(|store| store.manifest().map_err(|e| Problem::from_store(&e)))
        .await
    {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        )
            .into_response(),
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store is not reachable or holds no load",
            None,
        )
        .into_response(),
    }
}

#[derive(Serialize)]
struct SymbolInfo {
    symbol: String,
    first_trade: Option<String>,
    last_trade: Option<String>,
    trades: u64,
}

/// Each symbol of the load with its first and last trade and count, from the load's plan:
/// the store holds exactly what the generator says (`ohlcv verify`).
async fn symbols(State(state): State<AppState>) -> Result<Response, Problem> {
    let list = state
        .call(|store| {
            let manifest = store.manifest().map_err(|e| Problem::from_store(&e))?;
            let plan = MarketPlan::new(manifest.load).map_err(|e| Problem::internal(&e))?;
            let mut out = Vec::new();
            for (s, sp) in plan.symbols().iter().enumerate() {
                let with_trades: Vec<usize> = (0..plan.sessions().len())
                    .filter(|&d| sp.chunks[d].count > 0)
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
                    trades: sp.chunks.iter().map(|c| c.count).sum(),
                });
            }
            Ok(out)
        })
        .await?;
    Ok(axum::Json(serde_json::json!({ "symbols": list })).into_response())
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
        query::parse_time(required(v, param)?, tz)
            .map_err(|e| Problem::bad_request("invalid_time", e.to_string(), param))
    };
    let mut start = time("start", &p.start)?;
    let end = time("end", &p.end)?;
    if start >= end {
        return Err(Problem::bad_request(
            "invalid_range",
            "start must be before end".into(),
            "end",
        ));
    }
    if let Some(cursor) = &p.cursor {
        let at: Nanos = cursor
            .parse()
            .ok()
            .filter(|c| (start..end).contains(c))
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid_cursor",
                    "cursor is not one this range returned".into(),
                    "cursor",
                )
            })?;
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

#[derive(Serialize)]
struct CandlesPage {
    symbol: String,
    interval: String,
    tz: String,
    candles: Vec<CandleJson>,
    next_cursor: Option<String>,
}

async fn candles_handler(
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
        return Err(Problem::bad_request(
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
        .call(move |store| query::candles(store, &q).map_err(|e| Problem::from_query(&e)))
        .await?;
    let next_cursor = (rows.len() > v.limit).then(|| rows[v.limit].time.to_string());
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
    Ok(axum::Json(CandlesPage {
        symbol: v.symbol.to_string(),
        interval: interval.to_string(),
        tz: v.tz_name,
        candles: rows.iter().map(CandleJson::from).collect(),
        next_cursor,
    })
    .into_response())
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

#[derive(Serialize)]
struct TradesPage {
    symbol: String,
    trades: Vec<TradeJson>,
    next_cursor: Option<String>,
}

async fn trades_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p: RangeParams = params(raw)?;
    let v = validate(&p)?;
    let (symbol, start, end, limit) = (v.symbol.clone(), v.start, v.end, v.limit);
    let mut trades = state
        .call(move |store| {
            store
                .trades(&symbol, start, end, Some(limit + 1))
                .map_err(|e| Problem::from_store(&e))
        })
        .await?;
    let next_cursor = (trades.len() > v.limit).then(|| trades.times[v.limit].to_string());
    trades.truncate(v.limit);
    if wants_csv(&headers) {
        let mut body = Vec::new();
        format::write_trades(&mut body, Format::Csv, &v.symbol, &trades)
            .map_err(|e| Problem::internal(&e))?;
        return Ok(csv_response(body, next_cursor));
    }
    Ok(axum::Json(TradesPage {
        symbol: v.symbol.to_string(),
        trades: (0..trades.len())
            .map(|i| format::trade_json(&v.symbol, &trades, i))
            .collect(),
        next_cursor,
    })
    .into_response())
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

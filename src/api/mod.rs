//! The HTTP API (`ohlcv serve`): candles, trades and symbols over any [`Store`], loads as
//! jobs (and the proof of concept's start/stop/status), metrics and the OpenAPI document, with
//! validation of every parameter and `application/problem+json` errors.
//!
//! Store calls block (file or HTTP I/O), so handlers run them on tokio's blocking pool.

mod ingestions;
mod metrics;
mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use crate::candles::{self, Fill, Interval};
use crate::format::{self, CandleJson, CandlesPage, Format, TradeJson, TradesPage};
use crate::generator::MarketPlan;
use crate::ingest::jobs::Jobs;
use crate::model::{Nanos, Symbol, TradeColumns, format_time};
use crate::query::{self, CandleQuery};
use crate::store::Store;
pub use ingestions::LoadDefaults;
pub use problem::Problem;

/// Default and largest page sizes of `/candles` and `/trades`.
pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 10_000;
/// One request may span at most this many candle buckets (before paging).
pub const MAX_BUCKETS: u64 = 1_000_000;
/// Largest request body (ingestion settings are a few hundred bytes).
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    /// Bounds concurrent store calls: each decodes Parquet pages into memory, and more of them
    /// than cores only queue inside the blocking pool while holding their buffers.
    store_calls: Arc<tokio::sync::Semaphore>,
    jobs: Arc<Jobs>,
    load_defaults: Arc<LoadDefaults>,
    metrics: Arc<metrics::Metrics>,
    request_timeout: Duration,
}

impl AppState {
    /// `jobs` load into the same store `store` reads; `load_defaults` fill what an ingestion
    /// request leaves out; a request running longer than `request_timeout` gets a 503.
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<Jobs>,
        load_defaults: LoadDefaults,
        request_timeout: Duration,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            store_calls: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
            metrics: Arc::new(metrics::Metrics::new(jobs.clone())),
            jobs,
            load_defaults: Arc::new(load_defaults),
            request_timeout,
        }
    }

    /// The server's loads, for a graceful shutdown to stop.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
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

/// The OpenAPI document: every route, its parameters and its schemas.
#[derive(OpenApi)]
#[openapi(
    info(title = "OHLCV", description = "Trades and OHLCV candles of a deterministic market, and the loads that store them."),
    paths(
        health, ready, metrics_handler, symbols, candles_handler, trades_handler,
        ingestions::create, ingestions::list, ingestions::get_one, ingestions::cancel,
        ingestions::legacy_status, ingestions::legacy_start, ingestions::legacy_stop,
        ingestions::legacy_config,
    ),
    tags(
        (name = "market data", description = "Symbols, candles and trades"),
        (name = "ingestions", description = "Loads as jobs"),
        (name = "legacy", description = "The proof of concept's API, kept for its users"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/", get(chart))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/symbols", get(symbols))
        .route("/api/v1/candles", get(candles_handler))
        .route("/api/v1/trades", get(trades_handler))
        .route(
            "/api/v1/ingestions",
            post(ingestions::create).get(ingestions::list),
        )
        .route("/api/v1/ingestions/{id}", get(ingestions::get_one))
        .route("/api/v1/ingestions/{id}/cancel", post(ingestions::cancel))
        .route("/api/status", get(ingestions::legacy_status))
        .route("/api/start", post(ingestions::legacy_start))
        .route("/api/stop", post(ingestions::legacy_stop))
        .route("/api/config", get(ingestions::legacy_config))
        .route_layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_request,
        ))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            problem_for_bare_errors,
        ))
        .with_state(state)
}

/// Turns the errors axum and tower answer on their own (unknown route, wrong method, body too
/// large, timeout) into problem details like every other error.
async fn problem_for_bare_errors(
    State(timeout): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!("the request body is over {BODY_LIMIT} bytes"),
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "timeout",
            format!("the request took longer than {} s", timeout.as_secs_f64()),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send application/json".to_string(),
        ),
        s => ("error", s.canonical_reason().unwrap_or("error").to_string()),
    };
    let mut problem = Problem::new(status, code, &detail, None).into_response();
    for name in [
        header::ALLOW,
        header::HeaderName::from_static("x-request-id"),
    ] {
        if let Some(v) = response.headers().get(&name) {
            problem.headers_mut().insert(name, v.clone());
        }
    }
    problem
}

/// One JSON log line per request: id, method, route (not the raw path), status, latency; and
/// the request metrics.
async fn log_request(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = problem::request_id();
    let mut response = next.run(request).await;
    state.metrics.observe(
        metrics::RequestLabels {
            method: method.to_string(),
            route: route.clone(),
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
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

/// A page that draws candles from `/api/v1/candles`: one self-contained file, no CDN.
async fn chart() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("chart.html"),
    )
        .into_response()
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn health() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// The store answers and holds a load.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "The store is unreachable or empty", body = Problem, content_type = "application/problem+json"),
    ))]
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

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Requests, loads and process resources", body = String, content_type = "application/openmetrics-text")))]
async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct SymbolList {
    symbols: Vec<SymbolInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SymbolInfo {
    symbol: String,
    first_trade: Option<String>,
    last_trade: Option<String>,
    trades: u64,
}

/// Each symbol of the load with its first and last trade and count, from the load's plan:
/// the store holds exactly what the generator says (`ohlcv verify`).
#[utoipa::path(get, path = "/api/v1/symbols", tag = "market data",
    responses(
        (status = 200, description = "The symbols", body = SymbolList),
        (status = 503, description = "No load stored yet", body = Problem, content_type = "application/problem+json"),
    ))]
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
    Ok(axum::Json(SymbolList { symbols: list }).into_response())
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

/// OHLCV candles of one symbol at any interval, aligned in a time zone: what `ohlcv candles`
/// prints.
#[utoipa::path(get, path = "/api/v1/candles", tag = "market data",
    params(
        ("symbol" = String, Query, description = "Ticker, [A-Z][A-Z0-9.-]{0,9}", example = "AAPL"),
        ("interval" = String, Query, description = "<n><unit>, unit s, m, h, d, w or mo", example = "1m"),
        ("start" = String, Query, description = "RFC 3339 time or YYYY-MM-DD (midnight in tz), inclusive", example = "2024-03-11"),
        ("end" = String, Query, description = "RFC 3339 time or YYYY-MM-DD, exclusive", example = "2024-03-12"),
        ("tz" = Option<String>, Query, description = "IANA zone buckets align to (default America/New_York)"),
        ("fill" = Option<String>, Query, description = "none (default), null or previous: empty session buckets"),
        ("limit" = Option<u32>, Query, description = "Candles per page, 1 to 10000 (default 1000)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of candles (text/csv when asked for by Accept)", body = CandlesPage),
        (status = 400, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    ))]
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
        ("symbol" = String, Query, description = "Ticker", example = "AAPL"),
        ("start" = String, Query, description = "RFC 3339 time or YYYY-MM-DD, inclusive", example = "2024-03-11T14:30:00Z"),
        ("end" = String, Query, description = "RFC 3339 time or YYYY-MM-DD, exclusive", example = "2024-03-11T14:31:00Z"),
        ("tz" = Option<String>, Query, description = "IANA zone of bare dates (default America/New_York)"),
        ("limit" = Option<u32>, Query, description = "Trades per page, 1 to 10000 (default 1000)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of trades (text/csv when asked for by Accept)", body = TradesPage),
        (status = 400, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    ))]
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
    let page = TradesPage {
        symbol: v.symbol.to_string(),
        trades: (0..trades.len())
            .map(|i| TradeJson::new(&v.symbol, &trades, i))
            .collect(),
        next_cursor,
    };
    Ok(json_response(page.to_json()))
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and stops a running load, its checkpoint written, so the same load started again resumes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let jobs = state.jobs.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tokio::task::spawn_blocking(move || jobs.shutdown())
        .await
        .map_err(std::io::Error::other)
}

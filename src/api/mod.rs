//! The HTTP API (`ohlcv serve`): candles, trades and symbols over any [`Store`], loads as
//! jobs (and the proof of concept's start/stop/status), metrics and the OpenAPI document, with
//! validation of every parameter and `application/problem+json` errors.
//!
//! - here: the state, the router, request logs and ids, health, readiness, metrics, serving;
//! - `market`: symbols, candles, trades and the realism report (`/api/v1/stats`);
//! - `ingestions`: loads as jobs;
//! - `legacy`: the proof of concept's routes, answering as it did;
//! - [`auth`]: the bearer token that guards loads (and, if asked, every route);
//! - `metrics`: the Prometheus registry; `problem`: the error documents;
//! - `contract`: the OpenAPI document, with every bound and status the server keeps.
//!
//! Store calls block (file or HTTP I/O), so handlers run them on tokio's blocking pool.

pub mod auth;
mod contract;
mod ingestions;
mod legacy;
mod market;
mod metrics;
mod problem;
mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::ingest::LoadSpec;
use crate::ingest::jobs::Jobs;
use crate::store::Store;
pub use auth::{Auth, AuthScope};
pub use ingestions::MAX_TRADES as MAX_INGESTION_TRADES;
pub use problem::Problem;
pub use server::Limits;

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
    /// The load `POST /api/start` runs, and what an ingestion request leaves out.
    load_defaults: Arc<LoadSpec>,
    metrics: Arc<metrics::Metrics>,
    settings: Arc<Settings>,
    /// `/api/v1/stats` reports of the stored load, computed one at a time.
    stats: Arc<tokio::sync::Mutex<market::StatsCache>>,
    /// `/api/v1/symbols`'s list of the stored load.
    symbols: Arc<std::sync::Mutex<market::SymbolsCache>>,
}

/// How the server answers, beside what it loads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A request running longer than this gets a 503.
    pub request_timeout: Duration,
    /// Lines per InfluxDB write request, as `/api/config` reports it (`batchSize`).
    pub batch_lines: usize,
    pub auth: Auth,
    /// Most trades one `POST /api/v1/ingestions` may ask for (the document's `maximum`).
    pub max_ingestion_trades: u64,
    /// How many connections are held, and for how long.
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            batch_lines: crate::ingest::WriteOptions::default().batch_lines,
            auth: Auth::open(),
            max_ingestion_trades: ingestions::MAX_TRADES,
            limits: Limits::default(),
        }
    }
}

impl AppState {
    /// `jobs` load into the same store `store` reads; `load_defaults` fill what an ingestion
    /// request leaves out.
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<Jobs>,
        load_defaults: LoadSpec,
        settings: Settings,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            store_calls: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
            metrics: Arc::new(metrics::Metrics::new(jobs.clone())),
            jobs,
            load_defaults: Arc::new(load_defaults),
            settings: Arc::new(settings),
            stats: Arc::default(),
            symbols: Arc::default(),
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
        let id = problem::current_request_id();
        tokio::task::spawn_blocking(move || problem::with_request_id(id, || f(store.as_ref())))
            .await
            .map_err(|e| Problem::internal(&e))?
    }
}

impl AppState {
    /// A [`AppState::call`] that reads the stored load: answered 503 `load_incomplete` unless
    /// the store holds a complete one, so that a load being written (or interrupted) is never
    /// presented as the data. The embedded store stays complete while a replace is written.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        self.call(move |store| {
            if !store.complete().map_err(|e| Problem::from_store(&e))? {
                return Err(Problem::incomplete());
            }
            f(store)
        })
        .await
    }
}

/// The OpenAPI document: every route, its parameters and its schemas.
#[derive(OpenApi)]
#[openapi(
    info(title = "OHLCV", description = "Trades and OHLCV candles of a deterministic market, and the loads that store them."),
    paths(
        health, ready, metrics_handler, market::symbols, market::candles_handler, market::trades_handler,
        market::stats_handler,
        ingestions::create, ingestions::list, ingestions::get_one, ingestions::cancel,
        legacy::status, legacy::start, legacy::stop, legacy::config,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "market data", description = "Symbols, candles, trades and the load's statistics"),
        (name = "ingestions", description = "Loads as jobs"),
        (name = "legacy", description = "The proof of concept's API, kept for its users"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token, for Swagger UI's "Authorize" button and generated clients.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

pub fn router(state: AppState) -> Router {
    let timeout = state.settings.request_timeout;
    let auth = Arc::new(state.settings.auth.clone());
    let guarded = |routes: Router<AppState>, guard: bool| {
        if guard {
            routes.route_layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                auth::require_token,
            ))
        } else {
            routes
        }
    };
    let reads = Router::new()
        .route("/", get(chart))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/symbols", get(market::symbols))
        .route("/api/v1/candles", get(market::candles_handler))
        .route("/api/v1/trades", get(market::trades_handler))
        .route("/api/v1/stats", get(market::stats_handler))
        .route("/api/v1/ingestions", get(ingestions::list))
        .route("/api/v1/ingestions/{id}", get(ingestions::get_one))
        .route("/api/status", get(legacy::status));
    let writes = Router::new()
        .route("/api/v1/ingestions", post(ingestions::create))
        .route("/api/v1/ingestions/{id}/cancel", post(ingestions::cancel))
        .route("/api/start", post(legacy::start))
        .route("/api/stop", post(legacy::stop))
        .route("/api/config", get(legacy::config));
    let openapi = contract::json(&state.settings);
    let served = Arc::new(openapi.clone());
    let serve_doc = move || std::future::ready(axum::Json(served.as_ref().clone()));
    // Swagger UI at /docs, and at /documentation with the JSON at /documentation/json where
    // the proof of concept served them.
    let docs = Router::new()
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .external_url_unchecked("/openapi.json", openapi),
        )
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/documentation")
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
        .route("/documentation/json", get(serve_doc));
    let api = Router::new()
        .route("/health", get(health))
        .merge(guarded(reads, auth.protects_reads()))
        .merge(guarded(writes, !auth.is_open()));
    observed(api, &state)
        .merge(guarded(docs, auth.protects_reads()))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            problem_for_bare_errors,
        ))
        .with_state(state)
}

/// `routes` as the API serves them: a panic in a handler answers a 500 problem document
/// carrying the request's id (the connection and the server live on), a request over the
/// timeout answers 503, and every request is logged and counted.
fn observed(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes
        .route_layer(tower_http::catch_panic::CatchPanicLayer::custom(
            Problem::from_panic,
        ))
        .route_layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.settings.request_timeout,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_request,
        ))
}

/// Turns the errors axum and tower answer on their own (unknown route, wrong method, body too
/// large, timeout) into problem details like every other error. JSON errors are left alone:
/// problem documents, and the proof of concept's `{"error": ...}` answers.
async fn problem_for_bare_errors(
    State(timeout): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"application/json")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
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
    let mut response = problem::scope_request_id(id.clone(), next.run(request)).await;
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

/// The store answers and holds a complete load; otherwise 503 saying which of those fails.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "The store is unreachable, empty, or its load is incomplete (being written or interrupted)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ready(State(state): State<AppState>) -> Response {
    let reason = match state.call(|store| Ok(store.manifest())).await {
        Ok(Ok(m)) if m.complete => {
            return (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": "ready"})),
            )
                .into_response();
        }
        Ok(Ok(m)) => format!(
            "the stored load is incomplete ({} partitions written): a load is writing it or was interrupted",
            m.partitions.len()
        ),
        Ok(Err(crate::store::StoreError::Empty(_))) => "the store holds no load yet".to_string(),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "not ready");
            "the store cannot be read; the server log has the details".to_string()
        }
        Err(_) => "the store is not reachable".to_string(),
    };
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &reason, None).into_response()
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

/// Serves the API on `listener` within the settings' [`Limits`] until `shutdown` resolves,
/// then finishes in-flight requests and stops a running load, its checkpoint written, so the
/// same load started again resumes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let jobs = state.jobs.clone();
    let limits = state.settings.limits;
    // The load is asked to stop as soon as the shutdown begins, not once every connection has
    // closed, so that it stops writing while the requests in flight finish.
    let stopping = jobs.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.cancel_running();
    };
    server::run(listener, router(state), limits, shutdown).await;
    tokio::task::spawn_blocking(move || jobs.shutdown())
        .await
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::GeneratorConfig;
    use crate::ingest::Target;
    use crate::store::parquet::ParquetStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_answers_a_500_with_its_request_id_and_the_server_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new(
            Arc::new(ParquetStore::new(dir.path())),
            Arc::new(Jobs::new(Target::Parquet {
                dir: dir.path().into(),
            })),
            LoadSpec::new(GeneratorConfig::default()),
            Settings::default(),
        );
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let panics: fn() -> &'static str = || panic!("index 7 out of bounds");
                    panics()
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let app = observed(routes, &state).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = reqwest::Client::new();
        let boom = client.get(format!("{url}/boom")).send().await.unwrap();
        assert_eq!(boom.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = boom.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(
            boom.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body: serde_json::Value = boom.json().await.unwrap();
        assert_eq!(body["code"], "internal");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(&id), "{detail}");
        assert!(!detail.contains("index 7"), "{detail}");
        let fine = client.get(format!("{url}/fine")).send().await.unwrap();
        assert_eq!(fine.text().await.unwrap(), "fine");
    }
}

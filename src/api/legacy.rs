//! The proof of concept's API, answering as it did, so its clients (scripts, dashboards,
//! tests) keep working: `GET /api/status`, `POST /api/start`, `POST /api/stop`,
//! `GET /api/config`. The members and messages its clients read are kept exactly; errors are
//! its `{"error": "..."}` rather than problem documents. Members it did not have are only
//! added where its clients ignore them (`/api/config`).
//!
//! Its one load at a time is the latest ingestion job.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::{AppState, Problem, ingestions};
use crate::ingest::Target;
use crate::ingest::jobs::JobState;

const STARTED: &str = "Trade ingestion started";
const STOPPED: &str = "Trade ingestion stopped";
const STOPPING: &str = "Trade ingestion stopping";
const RUNNING: &str = "Trade ingestion is already running";
const NOT_RUNNING: &str = "Trade ingestion is not running";

/// Longest `POST /api/stop` waits for the load to stop before answering 202 instead of 200.
/// A load stops at its next batch boundary, which takes milliseconds unless InfluxDB is
/// retrying a batch.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The proof of concept's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LegacyError {
    error: String,
}

fn conflict(message: &str) -> Response {
    (
        StatusCode::CONFLICT,
        Json(LegacyError {
            error: message.into(),
        }),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Message {
    message: &'static str,
}

/// Writes a float as JavaScript prints numbers, whole ones without a fraction (`100`, not
/// `100.0`), so the answers read exactly as the proof of concept's.
fn js_number<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    // Below 2^53 every whole f64 is an exact integer.
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        s.serialize_i64(*x as i64)
    } else {
        s.serialize_f64(*x)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegacyProgress {
    processed: u64,
    total: u64,
    /// 0 to 100.
    #[serde(serialize_with = "js_number")]
    percentage: f64,
    elapsed_ms: u64,
    /// At the rate so far; 0 once done, and before the first trade is written.
    estimated_remaining_ms: u64,
    #[serde(serialize_with = "js_number")]
    trades_per_second: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LegacyStatus {
    /// `idle` (no load yet, or the last one stopped), `running`, `completed` or `error`.
    status: &'static str,
    /// Absent before any load and on error.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<LegacyProgress>,
    /// On error only: what went wrong, without the server's internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The latest load: idle, running, completed or error.
#[utoipa::path(get, path = "/api/status", tag = "legacy",
    responses((status = 200, description = "The latest load", body = LegacyStatus,
        example = json!({"status": "running", "progress": {"processed": 1200000, "total": 300000000,
            "percentage": 0.4, "elapsedMs": 2000, "estimatedRemainingMs": 498000, "tradesPerSecond": 600000.0}}))))]
pub(super) async fn status(State(state): State<AppState>) -> Response {
    let store = state.jobs.target().store_name();
    let Some(job) = state.jobs.latest().map(|j| j.status(store)) else {
        return Json(LegacyStatus {
            status: "idle",
            progress: None,
            error: None,
        })
        .into_response();
    };
    let status = match job.state {
        JobState::Queued | JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Cancelled => "idle",
        JobState::Failed => {
            return Json(LegacyStatus {
                status: "error",
                progress: None,
                error: job.error,
            })
            .into_response();
        }
    };
    let completed = job.state == JobState::Completed;
    Json(LegacyStatus {
        status,
        progress: Some(LegacyProgress {
            processed: job.processed,
            total: job.total,
            percentage: if completed { 100.0 } else { job.percentage },
            elapsed_ms: job.elapsed_ms,
            estimated_remaining_ms: job.eta_ms.unwrap_or(0),
            trades_per_second: job.trades_per_second,
        }),
        error: None,
    })
    .into_response()
}

/// Starts the server's load (`ohlcv serve`'s load settings).
#[utoipa::path(post, path = "/api/start", tag = "legacy", security(("bearer" = [])),
    responses(
        (status = 202, description = "Started", body = Message, example = json!({"message": STARTED})),
        (status = 409, description = "A load is running", body = LegacyError, example = json!({"error": RUNNING})),
    ))]
pub(super) async fn start(State(state): State<AppState>) -> Result<Response, Problem> {
    // Starting fails only when a load is running (the server's own load was checked when
    // it started).
    if state.jobs.ensure_idle().is_err() {
        return Ok(conflict(RUNNING));
    }
    let spec = ingestions::planned(&state, ingestions::IngestionRequest::default()).await?;
    let Ok(job) = state.jobs.start(spec) else {
        return Ok(conflict(RUNNING));
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/ingestions/{}", job.id))],
        Json(Message { message: STARTED }),
    )
        .into_response())
}

/// Stops the running load, and answers once it has stopped: what it wrote stays, and
/// `/api/start` resumes it.
#[utoipa::path(post, path = "/api/stop", tag = "legacy", security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopped", body = Message, example = json!({"message": STOPPED})),
        (status = 202, description = "Still stopping after 10 s (InfluxDB retrying a batch)", body = Message, example = json!({"message": STOPPING})),
        (status = 409, description = "No load is running", body = LegacyError, example = json!({"error": NOT_RUNNING})),
    ))]
pub(super) async fn stop(State(state): State<AppState>) -> Response {
    let Ok(job) = state.jobs.cancel_running() else {
        return conflict(NOT_RUNNING);
    };
    let wait = STOP_WAIT.min(state.settings.request_timeout / 2);
    if job.ended_within(wait).await {
        Json(Message { message: STOPPED }).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(Message { message: STOPPING })).into_response()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegacyConfig {
    /// `TOTAL_TRADES`: the trades `/api/start` loads.
    total_trades: u64,
    /// `BATCH_SIZE`: lines per InfluxDB write request.
    batch_size: usize,
    symbols: Vec<String>,
    start_date: String,
    end_date: String,
    seed: u64,
    store: &'static str,
    writers: Option<usize>,
    gzip: Option<bool>,
    /// InfluxDB's URL, org, bucket and API version; never a credential.
    influxdb: Option<Value>,
}

/// The load settings, without any secret.
#[utoipa::path(get, path = "/api/config", tag = "legacy", security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings", body = LegacyConfig),
    ))]
pub(super) async fn config(State(state): State<AppState>) -> Response {
    let c = &state.load_defaults.load;
    let target = state.jobs.target();
    let (writers, gzip, influxdb) = match target {
        Target::Parquet { .. } => (None, None, None),
        Target::Influx { config, write, .. } => (
            Some(write.writers),
            Some(write.gzip),
            Some(serde_json::json!({
                "url": config.public_url(),
                "api": config.api,
                "org": config.org,
                "bucket": config.bucket,
                "queryLanguage": config.query_language,
            })),
        ),
    };
    Json(LegacyConfig {
        total_trades: c.trades,
        batch_size: state.settings.batch_lines,
        symbols: c.symbols.iter().map(ToString::to_string).collect(),
        start_date: c.start.to_string(),
        end_date: c.end.to_string(),
        seed: c.seed,
        store: target.store_name(),
        writers,
        gzip,
        influxdb,
    })
    .into_response()
}

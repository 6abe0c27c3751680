//! Loads through the API: `/api/v1/ingestions`, jobs with ids.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use super::{AppState, Problem};
use crate::generator::MarketPlan;
use crate::ingest::LoadSpec;
use crate::ingest::jobs::{JobError, JobState, JobStatus};
use crate::model::Symbol;

/// Largest load one request may ask for: 10 billion trades.
const MAX_TRADES: u64 = 10_000_000_000;
const MAX_SYMBOLS: usize = 10_000;

fn invalid(code: &'static str, detail: impl Into<String>, param: &'static str) -> Problem {
    Problem::bad_request(code, detail.into(), param)
}

/// Validates an ingestion request body: every field optional, each checked, the server's
/// load (`ohlcv serve`'s load flags) standing for those left out.
pub(super) fn spec(state: &AppState, body: &Bytes) -> Result<LoadSpec, Problem> {
    let mut spec = state.load_defaults.as_ref().clone();
    let r: IngestionRequest = if body.is_empty() {
        IngestionRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            // serde's message names the field and what was expected, never server state.
            let detail = e.to_string();
            let detail = detail.split(" at line ").next().unwrap_or_default();
            invalid(
                "invalid_body",
                format!("invalid JSON body: {detail}"),
                "body",
            )
        })?
    };
    let config = &mut spec.load;
    if let Some(t) = &r.trades {
        config.trades = t
            .as_u64()
            .filter(|t| (1..=MAX_TRADES).contains(t))
            .ok_or_else(|| {
                invalid(
                    "invalid_trades",
                    format!("trades must be an integer from 1 to {MAX_TRADES}"),
                    "trades",
                )
            })?;
    }
    if let Some(s) = &r.symbols {
        let list = s
            .as_array()
            .filter(|l| (1..=MAX_SYMBOLS).contains(&l.len()))
            .ok_or_else(|| {
                invalid(
                    "invalid_symbols",
                    format!("symbols must be an array of 1 to {MAX_SYMBOLS} symbols"),
                    "symbols",
                )
            })?;
        config.symbols = list
            .iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| invalid("invalid_symbol", "symbols must be strings", "symbols"))
                    .and_then(|s| {
                        Symbol::new(s)
                            .map_err(|e| invalid("invalid_symbol", e.to_string(), "symbols"))
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    let date = |param: &'static str, v: &Option<Value>| -> Result<Option<NaiveDate>, Problem> {
        v.as_ref()
            .map(|v| {
                v.as_str()
                    .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .ok_or_else(|| {
                        invalid(
                            "invalid_date",
                            format!("{param} must be a YYYY-MM-DD date"),
                            param,
                        )
                    })
            })
            .transpose()
    };
    config.start = date("start", &r.start)?.unwrap_or(config.start);
    config.end = date("end", &r.end)?.unwrap_or(config.end);
    if config.start > config.end {
        return Err(invalid(
            "invalid_range",
            "start must not be after end",
            "end",
        ));
    }
    if let Some(seed) = &r.seed {
        config.seed = seed.as_u64().ok_or_else(|| {
            invalid(
                "invalid_seed",
                "seed must be a non-negative integer",
                "seed",
            )
        })?;
    }
    if let Some(store) = &r.store {
        let store = store.as_str().unwrap_or_default();
        if !matches!(store, "parquet" | "influxdb") {
            return Err(invalid(
                "invalid_store",
                "store must be \"parquet\" or \"influxdb\"",
                "store",
            ));
        }
        let serving = state.jobs.target().store_name();
        if store != serving {
            return Err(invalid(
                "store_not_configured",
                format!(
                    "this server loads into {serving}; start it with --store {store} to load there"
                ),
                "store",
            ));
        }
    }
    let flag = |param: &'static str, v: &Option<Value>, default: bool| -> Result<bool, Problem> {
        v.as_ref().map_or(Ok(default), |v| {
            v.as_bool().ok_or_else(|| {
                invalid(
                    "invalid_flag",
                    format!("{param} must be true or false"),
                    param,
                )
            })
        })
    };
    spec.replace = flag("replace", &r.replace, spec.replace)?;
    spec.resume = flag("resume", &r.resume, spec.resume)?;
    // The plan fails fast on settings no generator run could satisfy (no session in range).
    MarketPlan::new(spec.load.clone())
        .map_err(|e| invalid("invalid_load", e.to_string(), "body"))?;
    Ok(spec)
}

fn busy(e: &JobError) -> Problem {
    let code = match e {
        JobError::Busy(_) => "already_running",
        JobError::NotRunning => "not_running",
    };
    Problem::new(StatusCode::CONFLICT, code, &e.to_string(), None)
}

fn status(state: &AppState, id: u64) -> Result<JobStatus, Problem> {
    state
        .jobs
        .get(id)
        .map(|j| j.status(state.jobs.target().store_name()))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no ingestion {id}"),
                Some("id"),
            )
        })
}

fn parse_id(raw: &str) -> Result<u64, Problem> {
    raw.parse()
        .map_err(|_| invalid("invalid_id", "an ingestion id is a positive integer", "id"))
}

/// Starts a load with the body's settings (the server's defaults for those left out).
#[utoipa::path(post, path = "/api/v1/ingestions", tag = "ingestions", security(("bearer" = [])),
    request_body(content = IngestionRequest, content_type = "application/json", description = "Every field optional"),
    responses(
        (status = 202, description = "Started; Location names it", body = JobStatus),
        (status = 400, description = "Invalid setting", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The server has a token and the request does not", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A load is already running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Problem> {
    let job = state
        .jobs
        .start(spec(&state, &body)?)
        .map_err(|e| busy(&e))?;
    let location = format!("/api/v1/ingestions/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job.status(state.jobs.target().store_name())),
    )
        .into_response())
}

/// The body of `POST /api/v1/ingestions`. Fields are read as JSON values and checked one by
/// one in [`spec`], so each wrong one gets its own error code.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestionRequest {
    /// Number of trades, exactly.
    #[schema(value_type = Option<u64>, example = 1000000)]
    trades: Option<Value>,
    #[schema(value_type = Option<Vec<String>>, example = json!(["AAPL", "MSFT"]))]
    symbols: Option<Value>,
    /// First date, inclusive.
    #[schema(value_type = Option<String>, format = Date, example = "2024-01-01")]
    start: Option<Value>,
    /// Last date, inclusive.
    #[schema(value_type = Option<String>, format = Date, example = "2024-12-31")]
    end: Option<Value>,
    #[schema(value_type = Option<u64>)]
    seed: Option<Value>,
    /// `parquet` or `influxdb`: must be the store the server serves.
    #[schema(value_type = Option<String>)]
    store: Option<Value>,
    /// Delete a different load found in the store.
    #[schema(value_type = Option<bool>)]
    replace: Option<Value>,
    /// InfluxDB: skip chunks this load's checkpoint lists as written.
    #[schema(value_type = Option<bool>)]
    resume: Option<Value>,
}

/// Every ingestion since the server started, oldest first.
#[utoipa::path(get, path = "/api/v1/ingestions", tag = "ingestions",
    responses((status = 200, description = "The ingestions", body = IngestionList)))]
pub(super) async fn list(State(state): State<AppState>) -> Response {
    let store = state.jobs.target().store_name();
    let ingestions = state.jobs.all().iter().map(|j| j.status(store)).collect();
    Json(IngestionList { ingestions }).into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct IngestionList {
    ingestions: Vec<JobStatus>,
}

/// One ingestion's state, progress and batch statistics.
#[utoipa::path(get, path = "/api/v1/ingestions/{id}", tag = "ingestions",
    params(("id" = u64, Path, description = "The ingestion's id")),
    responses(
        (status = 200, description = "The ingestion", body = JobStatus),
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ingestion", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(Json(status(&state, parse_id(&id)?)?).into_response())
}

/// Asks a running ingestion to stop. It ends `cancelled` once the batches in flight are
/// acknowledged; what it wrote stays, and the same load started again resumes it.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/cancel", tag = "ingestions", security(("bearer" = [])),
    params(("id" = u64, Path, description = "The ingestion's id")),
    responses(
        (status = 202, description = "Stopping", body = JobStatus),
        (status = 401, description = "The server has a token and the request does not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ingestion", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is not running", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let current = status(&state, id)?;
    if !matches!(current.state, JobState::Queued | JobState::Running) {
        return Err(busy(&JobError::NotRunning));
    }
    let job = state.jobs.cancel_running().map_err(|e| busy(&e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(job.status(state.jobs.target().store_name())),
    )
        .into_response())
}

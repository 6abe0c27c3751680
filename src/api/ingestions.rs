//! Loads through the API: `/api/v1/ingestions`, jobs with ids.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use super::{AppState, Problem};
use crate::generator::MarketPlan;
use crate::ingest::LoadSpec;
use crate::ingest::jobs::{JobError, JobStatus};
use crate::model::Symbol;
use crate::{calendar, query};

/// Largest load one request may ask for, unless `ohlcv serve --max-ingestion-trades` says
/// less: 10 billion trades.
pub const MAX_TRADES: u64 = 10_000_000_000;
/// Most symbols one request may name: the longest such body stays under the 64 KiB limit.
pub(super) const MAX_SYMBOLS: usize = 1_000;
/// Most (symbol, session) chunks one request may plan: the plan holds each chunk's state in
/// memory before a trade is written, so 1,000 symbols over 1998-2261 would take gigabytes.
/// Two million is 1,000 symbols over eight years, or the default five over 1,500.
pub(super) const MAX_CHUNKS: usize = 2_000_000;

fn invalid(code: &'static str, detail: impl Into<String>, param: &'static str) -> Problem {
    Problem::bad_request(code, detail.into(), param)
}

/// Reads the body of `POST /api/v1/ingestions`: a JSON object, sent as `application/json`.
fn request(headers: &HeaderMap, body: &Bytes) -> Result<IngestionRequest, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the settings as application/json",
            Some("body"),
        ));
    }
    if body.is_empty() {
        return Err(invalid(
            "missing_body",
            "the body is a JSON object of settings; {} loads the server's own",
            "body",
        ));
    }
    // A struct reads from a JSON array too (its fields in order); the document says object.
    serde_json::from_slice::<Value>(body)
        .and_then(|v| {
            if v.is_object() {
                serde_json::from_value(v)
            } else {
                Err(serde::de::Error::custom("expected a JSON object"))
            }
        })
        .map_err(|e| {
            // serde's message names the field and what was expected, never server state.
            let detail = e.to_string();
            let detail = detail.split(" at line ").next().unwrap_or_default();
            invalid(
                "invalid_body",
                format!("invalid JSON body: {detail}"),
                "body",
            )
        })
}

/// Validates ingestion settings: every field optional, each checked, the server's load
/// (`ohlcv serve`'s load flags) standing for those left out. A setting that breaks the
/// document is a 400; settings the document admits that make no load (start after end, no
/// session, another store) are a 422.
pub(super) fn spec(state: &AppState, r: &IngestionRequest) -> Result<LoadSpec, Problem> {
    let mut spec = state.load_defaults.as_ref().clone();
    let max_trades = state.settings.max_ingestion_trades;
    let config = &mut spec.load;
    if let Some(t) = &r.trades {
        config.trades = whole(t)
            .filter(|t| (1..=max_trades).contains(t))
            .ok_or_else(|| {
                invalid(
                    "invalid_trades",
                    format!("trades must be an integer from 1 to {max_trades}"),
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
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = config.symbols.iter().find(|s| !seen.insert(*s)) {
            return Err(invalid(
                "invalid_symbols",
                format!("symbols must each appear once; {twice} is repeated"),
                "symbols",
            ));
        }
    }
    let date = |param: &'static str, v: &Option<Value>| -> Result<Option<NaiveDate>, Problem> {
        let Some(v) = v else {
            return Ok(None);
        };
        let s = v
            .as_str()
            .filter(|s| query::is_date_shaped(s))
            .ok_or_else(|| {
                invalid(
                    "invalid_date",
                    format!(
                        "{param} must be a YYYY-MM-DD date in {}",
                        calendar::supported_range()
                    ),
                    param,
                )
            })?;
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                Problem::unprocessable("invalid_date", format!("{param}: no such day {s}"), param)
            })
    };
    config.start = date("start", &r.start)?.unwrap_or(config.start);
    config.end = date("end", &r.end)?.unwrap_or(config.end);
    if config.start > config.end {
        return Err(Problem::unprocessable(
            "invalid_range",
            "start must not be after end".into(),
            "end",
        ));
    }
    if let Some(seed) = &r.seed {
        config.seed = whole(seed).ok_or_else(|| {
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
            return Err(Problem::unprocessable(
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
    let chunks = calendar::sessions(config.start, config.end)
        .len()
        .saturating_mul(config.symbols.len());
    if chunks > MAX_CHUNKS {
        return Err(Problem::unprocessable(
            "load_too_large",
            format!(
                "{} symbols over these dates make {chunks} symbol-sessions; at most {MAX_CHUNKS} per ingestion",
                config.symbols.len()
            ),
            "body",
        ));
    }
    // The plan fails fast on settings no generator run could satisfy (no session in range).
    MarketPlan::new(spec.load.clone())
        .map_err(|e| Problem::unprocessable("invalid_load", e.to_string(), "body"))?;
    Ok(spec)
}

fn busy(e: &JobError) -> Problem {
    let code = match e {
        JobError::Busy(_) => "already_running",
        JobError::NotRunning => "not_running",
    };
    Problem::new(StatusCode::CONFLICT, code, &e.to_string(), None)
}

/// [`spec`] on the blocking pool: it plans the load, up to [`MAX_CHUNKS`] chunks of work that
/// must not stall a runtime worker.
pub(super) async fn planned(
    state: &AppState,
    request: IngestionRequest,
) -> Result<LoadSpec, Problem> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || spec(&state, &request))
        .await
        .map_err(|e| Problem::internal(&e))?
}

fn status(state: &AppState, id: u64) -> Result<JobStatus, Problem> {
    state
        .jobs
        .get(id)
        .map(|j| j.status(state.jobs.target().store_name()))
        .ok_or_else(|| not_found(id))
}

fn not_found(id: u64) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no ingestion {id}"),
        Some("id"),
    )
}

fn parse_id(raw: &str) -> Result<u64, Problem> {
    raw.parse()
        .map_err(|_| invalid("invalid_id", "an ingestion id is a positive integer", "id"))
}

/// Starts a load with the body's settings (the server's defaults for those left out).
#[utoipa::path(post, path = "/api/v1/ingestions", tag = "ingestions", security(("bearer" = [])),
    request_body(content = IngestionRequest, content_type = "application/json",
        description = "A JSON object; every field optional, `{}` for the server's own load"),
    responses(
        (status = 202, description = "Started; Location names it", body = JobStatus,
            links(
                ("GetIngestion" = (operation_id = "get_one", parameters(("id" = "$response.body#/id")))),
                ("CancelIngestion" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, description = "No body, or a setting breaks its type, pattern, enum or bounds", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A load is already running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed settings that make no load: no such day, start after end, no session in the range, more than 2,000,000 symbol-sessions (`load_too_large`), or a store the server does not load into", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let request = request(&headers, &body)?;
    state.jobs.ensure_idle().map_err(|e| busy(&e))?;
    let spec = planned(&state, request).await?;
    let job = state.jobs.start(spec).map_err(|e| busy(&e))?;
    let location = format!("/api/v1/ingestions/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job.status(state.jobs.target().store_name())),
    )
        .into_response())
}

/// The body of `POST /api/v1/ingestions`. Fields are read as JSON values and checked one by
/// one in [`spec`], so each wrong one gets its own error code; a field sent as `null` is kept
/// (and refused), not taken for one left out. The document's schema of it is written out in
/// `contract`, with the bounds [`spec`] checks.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestionRequest {
    /// Number of trades, exactly.
    #[schema(value_type = Option<u64>, example = 1000000)]
    #[serde(default, deserialize_with = "present")]
    trades: Option<Value>,
    #[schema(value_type = Option<Vec<String>>, example = json!(["AAPL", "MSFT"]))]
    #[serde(default, deserialize_with = "present")]
    symbols: Option<Value>,
    /// First date, inclusive.
    #[schema(value_type = Option<String>, format = Date, example = "2024-01-01")]
    #[serde(default, deserialize_with = "present")]
    start: Option<Value>,
    /// Last date, inclusive.
    #[schema(value_type = Option<String>, format = Date, example = "2024-12-31")]
    #[serde(default, deserialize_with = "present")]
    end: Option<Value>,
    #[schema(value_type = Option<u64>)]
    #[serde(default, deserialize_with = "present")]
    seed: Option<Value>,
    /// `parquet` or `influxdb`: must be the store the server serves.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    store: Option<Value>,
    /// Delete a different load found in the store.
    #[schema(value_type = Option<bool>)]
    #[serde(default, deserialize_with = "present")]
    replace: Option<Value>,
    /// InfluxDB: skip chunks this load's checkpoint lists as written.
    #[schema(value_type = Option<bool>)]
    #[serde(default, deserialize_with = "present")]
    resume: Option<Value>,
}

/// A JSON number that is a whole, non-negative u64: JSON Schema counts `7.0` as an integer.
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            // Saturates at u64::MAX, the one value the range's rounded end lets through.
            .map(|f| f as u64)
    })
}

/// A field's value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// The ingestions the server keeps (the latest `--ingestion-history`), oldest first.
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
        (status = 400, description = "Not an id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ingestion", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is not running", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let job = match state.jobs.cancel(id) {
        Some(cancelled) => cancelled.map_err(|e| busy(&e))?,
        None => return Err(not_found(id)),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(job.status(state.jobs.target().store_name())),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Settings;
    use crate::generator::GeneratorConfig;
    use crate::ingest::Target;
    use crate::ingest::jobs::Jobs;
    use crate::store::parquet::ParquetStore;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn state(dir: &std::path::Path) -> AppState {
        AppState::new(
            Arc::new(ParquetStore::new(dir)),
            Arc::new(Jobs::new(Target::Parquet { dir: dir.into() })),
            LoadSpec::new(GeneratorConfig {
                trades: 1_000,
                ..GeneratorConfig::default()
            }),
            Settings {
                max_ingestion_trades: 1_000_000,
                ..Settings::default()
            },
        )
    }

    /// JSON values near what each field takes, and far from it.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0u64..2_000_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "(19|20|22|00)[0-9]{2}-[01][0-9]-[0-3][0-9]".prop_map(Value::from),
            "[A-Z][A-Z0-9.-]{0,11}".prop_map(Value::from),
            "parquet|influxdb|.{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(Value::from)
        })
    }

    /// Each field left out, valid, or anything at all; sometimes a field that does not exist.
    fn body() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        let field = |name: &'static str, valid: BoxedStrategy<Value>| {
            prop::option::of(prop_oneof![3 => valid, 1 => value()])
                .prop_map(move |v| v.map(|v| (name.to_string(), v)))
        };
        let date = "2024-0[1-9]-[01][1-9]".prop_map(Value::from).boxed();
        (
            (
                field("trades", (1u64..5_000).prop_map(Value::from).boxed()),
                field(
                    "symbols",
                    prop::collection::vec("[A-Z]{1,4}", 1..4)
                        .prop_map(Value::from)
                        .boxed(),
                ),
                field("start", date.clone()),
                field("end", date),
            ),
            (
                field("seed", any::<u64>().prop_map(Value::from).boxed()),
                field("store", Just(Value::from("parquet")).boxed()),
                field("replace", any::<bool>().prop_map(Value::from).boxed()),
                field("resume", any::<bool>().prop_map(Value::from).boxed()),
                prop::option::weighted(0.1, value())
                    .prop_map(|v| v.map(|v| ("other".to_string(), v))),
            ),
        )
            .prop_map(|((a, b, c, d), (e, f, g, h, i))| {
                [a, b, c, d, e, f, g, h]
                    .into_iter()
                    .flatten()
                    .chain(i)
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any body is refused with a problem, or becomes a load within the document's bounds
        /// whose fields, sent back, give the same load.
        #[test]
        fn ingestion_bodies_never_panic_and_accepted_ones_round_trip(body in body()) {
            let dir = tempfile::tempdir().unwrap();
            let state = state(dir.path());
            let Ok(request) = serde_json::from_value::<IngestionRequest>(Value::Object(body)) else {
                return Ok(());
            };
            let Ok(accepted) = spec(&state, &request) else {
                return Ok(());
            };
            let load = &accepted.load;
            prop_assert!((1..=1_000_000).contains(&load.trades));
            prop_assert!(!load.symbols.is_empty() && load.symbols.len() <= MAX_SYMBOLS);
            prop_assert!(load.start <= load.end);
            let again = serde_json::json!({
                "trades": load.trades,
                "symbols": load.symbols.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "start": load.start.to_string(),
                "end": load.end.to_string(),
                "seed": load.seed,
                "replace": accepted.replace,
                "resume": accepted.resume,
            });
            let request: IngestionRequest = serde_json::from_value(again).unwrap();
            let round = spec(&state, &request).unwrap();
            prop_assert_eq!(&round.load, load);
            prop_assert_eq!((round.replace, round.resume), (accepted.replace, accepted.resume));
        }
    }

    #[test]
    fn a_load_too_large_to_plan_is_refused_before_planning() {
        let dir = tempfile::tempdir().unwrap();
        let symbols: Vec<String> = (0..1_000).map(|i| format!("S{i}")).collect();
        let request: IngestionRequest = serde_json::from_value(serde_json::json!({
            "symbols": symbols, "start": "1998-01-01", "end": "2261-12-31"
        }))
        .unwrap();
        let refused = spec(&state(dir.path()), &request).unwrap_err();
        let body = serde_json::to_value(&refused).unwrap();
        assert_eq!(body["code"], "load_too_large");
        assert_eq!(body["status"], 422);
    }
}

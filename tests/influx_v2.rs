//! The InfluxDB 2.x write and setup APIs, against a strict in-process server that follows the
//! documented v2 API (auth header, org/bucket/precision parameters, gzip bodies, line protocol
//! validated by InfluxData's parser, status codes and their bodies), and can be told to
//! misbehave the way a real server does under load: 503/429 with `Retry-After`, 5xx, 413, 422,
//! 400, dropped connections. A real 2.x cannot be made to do those on demand.
//!
//! The test against a real InfluxDB 2.x is ignored unless asked for: see its documentation.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::influx::InfluxLoad;
use common::influx::{claim_of, claimants, load_in_shards, run};
use common::{assert_verifies, flux};
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::{RetryPolicy, WriteOptions};
use ohlcv::store::Store;
use ohlcv::store::influx::{
    self, Api, InfluxConfig, Precision, QueryLanguage, SetupOutcome, setup,
};

const TOKEN: &str = "test-token-do-not-leak";

/// A misbehaviour for the next write request.
#[derive(Clone)]
enum Fault {
    Status {
        code: u16,
        retry_after: Option<u64>,
        body: &'static str,
    },
}

#[derive(Default)]
struct Server {
    buckets: Mutex<HashMap<String, u64>>,
    /// (series key, timestamp) → point: what a real server keeps, duplicates overwriting.
    points: Mutex<HashMap<(String, i64), flux::Point>>,
    faults: Mutex<VecDeque<Fault>>,
    max_body: Mutex<Option<usize>>,
    writes: AtomicU64,
    gzip_writes: AtomicU64,
    health_checks: AtomicU64,
    /// Connections to drop before answering, through the proxy.
    drop_connections: AtomicU64,
    /// Task id → its Flux script.
    tasks: Mutex<HashMap<String, String>>,
    tasks_created: AtomicU64,
}

fn problem(code: StatusCode, kind: &str, message: &str) -> Response {
    (
        code,
        [("content-type", "application/json")],
        format!(
            r#"{{"code":"{kind}","message":{}}}"#,
            serde_json::to_string(message).unwrap()
        ),
    )
        .into_response()
}

/// Every route but `/health` wants the token first, as a real server's do.
async fn require_token(request: Request, next: Next) -> Response {
    let header = request.headers().get("authorization");
    if header.and_then(|v| v.to_str().ok()) == Some(&format!("Token {TOKEN}")) {
        next.run(request).await
    } else {
        problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        )
    }
}

async fn write(
    State(s): State<Arc<Server>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(org), Some(bucket)) = (q.get("org"), q.get("bucket")) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid",
            "org and bucket are required",
        );
    };
    if org != "ohlcv-poc" {
        return problem(
            StatusCode::NOT_FOUND,
            "not found",
            &format!("organization name \"{org}\" not found"),
        );
    }
    if !s.buckets.lock().unwrap().contains_key(bucket) {
        return problem(
            StatusCode::NOT_FOUND,
            "not found",
            &format!("bucket \"{bucket}\" not found"),
        );
    }
    if q.get("precision").map(String::as_str) != Some("ns") {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid",
            "this test server expects precision=ns",
        );
    }
    if let Some(Fault::Status {
        code,
        retry_after,
        body,
    }) = s.faults.lock().unwrap().pop_front()
    {
        let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return r;
    }
    // Like InfluxDB OSS behind a proxy with a body limit: checked before gzip is undone.
    if s.max_body
        .lock()
        .unwrap()
        .is_some_and(|max| body.len() > max)
    {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
            "request body too large",
        );
    }
    let text = match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip") => {
            s.gzip_writes.fetch_add(1, Ordering::Relaxed);
            let mut out = String::new();
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut out)
                .is_err()
            {
                return problem(StatusCode::BAD_REQUEST, "invalid", "bad gzip body");
            }
            out
        }
        Some(other) => {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid",
                &format!("encoding {other}"),
            );
        }
        None => String::from_utf8(body.to_vec()).unwrap(),
    };
    let mut parsed = Vec::new();
    for line in influxdb_line_protocol::parse_lines(&text) {
        use influxdb_line_protocol::FieldValue;
        match line {
            Ok(l) => parsed.push((
                l.series.to_string(),
                flux::Point {
                    measurement: l.series.measurement.to_string(),
                    tags: l
                        .series
                        .tag_set
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    time: l.timestamp.expect("timestamps are always sent"),
                    fields: l
                        .field_set
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                FieldValue::I64(i) => flux::Value::Int(*i),
                                FieldValue::U64(u) => flux::Value::UInt(*u),
                                FieldValue::F64(f) => flux::Value::Float(*f),
                                FieldValue::String(s) => flux::Value::Str(s.to_string()),
                                FieldValue::Boolean(b) => flux::Value::Bool(*b),
                            };
                            (k.to_string(), v)
                        })
                        .collect(),
                },
            )),
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("unable to parse: {e}"),
                );
            }
        }
    }
    let mut points = s.points.lock().unwrap();
    for (series, point) in parsed {
        points.insert((series, point.time), point);
    }
    s.writes.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

/// `/api/v2/query` with a Flux query in a JSON body, answered in annotated CSV.
async fn query(
    State(s): State<Arc<Server>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if q.get("org").map(String::as_str) != Some("ohlcv-poc") {
        return problem(StatusCode::NOT_FOUND, "not found", "organization not found");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            "expected application/json",
        );
    }
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid", &e.to_string()),
    };
    if request["type"] != "flux"
        || request["dialect"]["annotations"] != serde_json::json!(["datatype"])
    {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid",
            "this test server answers type flux with the datatype annotation",
        );
    }
    let Some(text) = request["query"].as_str() else {
        return problem(StatusCode::BAD_REQUEST, "invalid", "no query");
    };
    let points: Vec<flux::Point> = s.points.lock().unwrap().values().cloned().collect();
    let buckets = s.buckets.lock().unwrap().clone();
    match flux::evaluate(text, &|b| buckets.contains_key(b), &points) {
        Ok((csv, written)) => {
            // A point written again keeps the fields it had that the new one lacks, as
            // InfluxDB merges the field sets of duplicate points
            // (<https://docs.influxdata.com/influxdb/v2/write-data/best-practices/duplicate-points/>).
            let mut points = s.points.lock().unwrap();
            for point in written {
                let key = (
                    flux::series_key(&point.measurement, &point.tags),
                    point.time,
                );
                let stored = points.entry(key).or_insert_with(|| flux::Point {
                    fields: Vec::new(),
                    ..point.clone()
                });
                for (name, value) in point.fields {
                    stored.fields.retain(|(n, _)| *n != name);
                    stored.fields.push((name, value));
                }
            }
            (
                StatusCode::OK,
                [("content-type", "text/csv; charset=utf-8")],
                csv,
            )
                .into_response()
        }
        Err(e) if e.starts_with("could not find bucket") => {
            problem(StatusCode::NOT_FOUND, "not found", &e)
        }
        Err(e) => problem(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("compilation failed: {e}"),
        ),
    }
}

/// `/api/v2/delete`: the points in `[start, stop]` (both inclusive, as InfluxDB's) matching a
/// predicate of `key="value"` terms joined by ` AND `, `_measurement` or tags, the subset of
/// the delete predicate syntax the store sends. Anything else is refused.
async fn delete(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let time = |key: &str| {
        chrono::DateTime::parse_from_rfc3339(v[key].as_str().unwrap())
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
    };
    let (Some(start), Some(stop)) = (time("start"), time("stop")) else {
        return problem(StatusCode::BAD_REQUEST, "invalid", "bad start or stop");
    };
    let terms: Option<Vec<(&str, &str)>> = v["predicate"]
        .as_str()
        .unwrap()
        .split(" AND ")
        .map(|term| {
            let (key, value) = term.split_once('=')?;
            Some((key, value.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect();
    let Some(terms) = terms else {
        return problem(StatusCode::BAD_REQUEST, "invalid", "unsupported predicate");
    };
    s.points.lock().unwrap().retain(|_, point| {
        let matches = point.time >= start
            && point.time <= stop
            && terms.iter().all(|&(key, value)| {
                if key == "_measurement" {
                    point.measurement == value
                } else {
                    point.tags.iter().any(|(k, v)| k == key && v == value)
                }
            });
        !matches
    });
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /api/v2/tasks`: a task of the org whose script starts with its `option task`,
/// which names it and says when it runs (`every` or `cron`); it is kept, not run
/// (<https://docs.influxdata.com/influxdb/v2/api/#operation/PostTasks>,
/// <https://docs.influxdata.com/flux/v0/spec/options/#task>).
async fn create_task(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid", &e.to_string()),
    };
    if v["org"] != "ohlcv-poc" && v["orgID"] != "0000000000000001" {
        return problem(StatusCode::NOT_FOUND, "not found", "organization not found");
    }
    let Some(flux) = v["flux"].as_str() else {
        return problem(StatusCode::BAD_REQUEST, "invalid", "flux is required");
    };
    let status = v["status"].as_str().unwrap_or("active");
    let options = flux
        .strip_prefix("option task = {")
        .and_then(|rest| rest.split_once('}'))
        .map(|(options, _)| options);
    let Some(options) = options
        .filter(|o| o.contains("name: \"") && (o.contains("every: ") || o.contains("cron: ")))
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the script must start with option task = {name: ..., every: ...}",
        );
    };
    if !["active", "inactive"].contains(&status) {
        return problem(StatusCode::BAD_REQUEST, "invalid", "unknown status");
    }
    let id = format!(
        "{:016x}",
        s.tasks_created.fetch_add(1, Ordering::Relaxed) + 1
    );
    s.tasks.lock().unwrap().insert(id.clone(), flux.to_string());
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        serde_json::json!({
            "id": id,
            "orgID": "0000000000000001",
            "org": "ohlcv-poc",
            "status": status,
            "flux": flux,
            "options": options,
        })
        .to_string(),
    )
        .into_response()
}

/// `DELETE /api/v2/tasks/{id}`.
async fn delete_task(
    State(s): State<Arc<Server>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match s.tasks.lock().unwrap().remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => problem(StatusCode::NOT_FOUND, "not found", "task not found"),
    }
}

async fn health(State(s): State<Arc<Server>>) -> Response {
    s.health_checks.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, r#"{"name":"influxdb","status":"pass"}"#).into_response()
}

async fn orgs(Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("org").map(String::as_str) == Some("ohlcv-poc") {
        (
            StatusCode::OK,
            r#"{"orgs":[{"id":"0000000000000001","name":"ohlcv-poc"}]}"#,
        )
            .into_response()
    } else {
        problem(StatusCode::NOT_FOUND, "not found", "organization not found")
    }
}

async fn list_buckets(
    State(s): State<Arc<Server>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let buckets = s.buckets.lock().unwrap();
    let found: Vec<serde_json::Value> = buckets
        .iter()
        .filter(|(name, _)| q.get("name").is_none_or(|n| n == *name))
        .map(|(name, secs)| serde_json::json!({"id": "b1", "name": name, "retentionRules": [{"type": "expire", "everySeconds": secs}]}))
        .collect();
    (
        StatusCode::OK,
        serde_json::json!({ "buckets": found }).to_string(),
    )
        .into_response()
}

async fn create_bucket(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["orgID"], "0000000000000001");
    let secs = v["retentionRules"][0]["everySeconds"].as_u64().unwrap();
    s.buckets
        .lock()
        .unwrap()
        .insert(v["name"].as_str().unwrap().to_string(), secs);
    (StatusCode::CREATED, body).into_response()
}

/// The server on a real port, behind a proxy that can drop connections.
struct Harness {
    state: Arc<Server>,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

fn start() -> Harness {
    let state = Arc::new(Server::default());
    let runtime = common::runtime();
    let app = Router::new()
        .route("/api/v2/write", post(write))
        .route("/api/v2/query", post(query))
        .route("/api/v2/delete", post(delete))
        .route("/api/v2/orgs", get(orgs))
        .route("/api/v2/buckets", get(list_buckets).post(create_bucket))
        .route("/api/v2/tasks", post(create_task))
        .route("/api/v2/tasks/{id}", axum::routing::delete(delete_task))
        .route_layer(axum::middleware::from_fn(require_token))
        .route("/health", get(health))
        .with_state(state.clone());
    let url = runtime.block_on(async {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inner_addr = inner.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(inner, app).await.unwrap() });
        let outer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", outer.local_addr().unwrap());
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = outer.accept().await.unwrap();
                let s = s.clone();
                tokio::spawn(async move {
                    // A connection whose first request is a write may be hung up on, unanswered.
                    let mut head = vec![0u8; 1024];
                    let Ok(n) = tokio::io::AsyncReadExt::read(&mut client, &mut head).await else {
                        return;
                    };
                    let is_write = head[..n].starts_with(b"POST /api/v2/write");
                    let drop_it = is_write
                        && s.drop_connections
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok();
                    if drop_it {
                        return;
                    }
                    let mut server = tokio::net::TcpStream::connect(inner_addr).await.unwrap();
                    if tokio::io::AsyncWriteExt::write_all(&mut server, &head[..n])
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        url
    });
    Harness {
        state,
        url,
        _runtime: runtime,
    }
}

fn influx_config(url: &str, token: &str, bucket: &str) -> InfluxConfig {
    common::influx::config(url, Api::V2, Some(token), bucket)
}

/// Small batches and quick retries, so that a few thousand trades meet every fault injected.
fn options(
    influx: InfluxConfig,
    load: GeneratorConfig,
    checkpoints: &std::path::Path,
) -> InfluxLoad {
    let write = WriteOptions {
        batch_lines: 2_000,
        batch_bytes: 256 * 1024,
        writers: 2,
        gzip: false,
        precision: Precision::Ns,
        retry: RetryPolicy {
            interval: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_time: Duration::from_secs(30),
            jitter: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        breaker_threshold: 4,
    };
    common::influx::options(load, influx, write, checkpoints)
}

impl Harness {
    /// `bucket` on this server, with the token it accepts.
    fn config(&self, bucket: &str) -> InfluxConfig {
        influx_config(&self.url, TOKEN, bucket)
    }

    /// Loads `load` into the bucket `ready` creates.
    fn options(&self, load: &GeneratorConfig, checkpoints: &std::path::Path) -> InfluxLoad {
        options(self.config("trades"), load.clone(), checkpoints)
    }
}

/// Trades plus their 1-minute candles plus the manifest and the claim's first and last
/// points, as distinct points.
fn expected_points(load: &GeneratorConfig) -> usize {
    let plan = ohlcv::generator::MarketPlan::new(load.clone()).unwrap();
    let mut n = 3;
    for s in 0..plan.symbols().len() {
        for d in 0..plan.sessions().len() {
            let mut t = ohlcv::model::TradeColumns::default();
            plan.generate(s, d, &mut t);
            n += t.len() + ohlcv::candles::minute_candles(&t).len();
        }
    }
    n
}

fn ready(h: &Harness) {
    h.state
        .buckets
        .lock()
        .unwrap()
        .insert("trades".into(), 3650 * 86_400);
}

#[test]
fn setup_creates_the_bucket_with_its_retention_once() {
    let h = start();
    let c = h.config("trades");
    assert_eq!(setup(&c).unwrap(), SetupOutcome::Created);
    assert_eq!(h.state.buckets.lock().unwrap()["trades"], 3650 * 86_400);
    assert_eq!(setup(&c).unwrap(), SetupOutcome::Exists);
    let shorter = InfluxConfig {
        retention_days: 30,
        ..c.clone()
    };
    assert_eq!(
        setup(&shorter).unwrap(),
        SetupOutcome::RetentionDiffers {
            existing_days: Some(3650)
        }
    );
    let err = setup(&InfluxConfig {
        org: "elsewhere".into(),
        bucket: "other".into(),
        ..c
    })
    .unwrap_err();
    assert!(err.to_string().contains("elsewhere"), "{err}");
}

#[test]
fn gzip_bodies_land_every_point_exactly_once() {
    let h = start();
    ready(&h);
    let load = common::small_config(20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut o = h.options(&load, dir.path());
    o.write().gzip = true;
    let (result, stats) = run(&o);
    let summary = result.unwrap();
    assert_eq!(summary.written, 20_000);
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
    let s = stats.summary();
    assert!(
        s.bytes_sent < s.bytes_raw / 3,
        "gzip shrinks line protocol: {s:?}"
    );
    // Every batch, the claim's two writes (at the start, at the end) and the manifest's two
    // (at the start, when complete) included.
    assert_eq!(h.state.gzip_writes.load(Ordering::Relaxed), s.batches);
}

#[test]
fn retry_after_and_server_errors_are_retried() {
    let h = start();
    ready(&h);
    let load = common::small_config(10_000);
    {
        let mut f = h.state.faults.lock().unwrap();
        f.push_back(Fault::Status {
            code: 503,
            retry_after: Some(1),
            body: "",
        });
        f.push_back(Fault::Status {
            code: 429,
            retry_after: Some(1),
            body: "",
        });
        f.push_back(Fault::Status {
            code: 500,
            retry_after: None,
            body: r#"{"code":"internal error","message":"boom"}"#,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let (result, stats) = run(&h.options(&load, dir.path()));
    result.unwrap();
    assert_eq!(stats.summary().retried, 3);
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
}

#[test]
fn repeated_failures_pause_until_health_answers() {
    let h = start();
    ready(&h);
    let load = common::small_config(5_000);
    let dir = tempfile::tempdir().unwrap();
    // Six 502s in a row open the breaker (threshold 4).
    {
        let mut f = h.state.faults.lock().unwrap();
        for _ in 0..6 {
            f.push_back(Fault::Status {
                code: 502,
                retry_after: None,
                body: "bad gateway",
            });
        }
    }
    let (result, stats) = run(&h.options(&load, dir.path()));
    result.unwrap();
    assert!(stats.summary().retried >= 6);
    assert!(
        h.state.health_checks.load(Ordering::Relaxed) >= 1,
        "the breaker probed /health"
    );
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
}

#[test]
fn dropped_connections_are_retried() {
    let h = start();
    ready(&h);
    let load = common::small_config(5_000);
    let dir = tempfile::tempdir().unwrap();
    h.state.drop_connections.store(2, Ordering::Relaxed);
    let (result, stats) = run(&h.options(&load, dir.path()));
    result.unwrap();
    assert!(stats.summary().retried >= 1);
    assert_eq!(h.state.drop_connections.load(Ordering::Relaxed), 0);
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
}

#[test]
fn too_large_batches_are_split() {
    let h = start();
    ready(&h);
    *h.state.max_body.lock().unwrap() = Some(64 * 1024);
    let load = common::small_config(10_000);
    let dir = tempfile::tempdir().unwrap();
    let (result, stats) = run(&h.options(&load, dir.path()));
    result.unwrap();
    assert!(stats.summary().split >= 1);
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
}

#[test]
fn fatal_answers_stop_the_load_with_a_clear_error_and_no_secret() {
    let h = start();
    ready(&h);
    let load = common::small_config(2_000);
    let dir = tempfile::tempdir().unwrap();

    let (result, _) = run(&options(
        influx_config(&h.url, "wrong-token", "trades"),
        load.clone(),
        dir.path(),
    ));
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("rejected the credentials (HTTP 401)"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("wrong-token") && !format!("{err:?}").contains("wrong-token")
    );

    let (result, _) = run(&options(h.config("missing"), load.clone(), dir.path()));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("\"missing\""), "{err}");

    let good = h.options(&load, dir.path());
    let bad_line = r#"{"code":"invalid","message":"unable to parse 'trade,symbol=X price=': missing field value"}"#;
    for (code, body, expect) in [
        (400, bad_line, "unable to parse 'trade,symbol=X price='"),
        (
            422,
            r#"{"code":"unprocessable entity","message":"partial write: points beyond retention policy dropped=7"}"#,
            "dropped 7 points",
        ),
    ] {
        h.state.faults.lock().unwrap().push_back(Fault::Status {
            code,
            retry_after: None,
            body,
        });
        let (result, stats) = run(&good);
        let err = result.unwrap_err().to_string();
        assert!(err.contains(expect), "{err}");
        assert_eq!(stats.summary().failed, 1);
        h.state.faults.lock().unwrap().clear();
    }
}

#[test]
fn a_different_load_is_refused_unless_replaced() {
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let first = common::small_config(3_000);
    run(&h.options(&first, dir.path())).0.unwrap();
    let second = GeneratorConfig {
        seed: 99,
        ..common::small_config(4_000)
    };
    let o = h.options(&second, dir.path());
    let err = run(&o).0.unwrap_err().to_string();
    assert!(
        err.contains("different load") && err.contains("--replace"),
        "{err}"
    );
    run(&o.replacing()).0.unwrap();
    assert_eq!(
        h.state.points.lock().unwrap().len(),
        expected_points(&second)
    );
}

/// Over Flux: a different load claiming the bucket refuses a load before it writes anything
/// (it takes its own claim back through the delete API); the claiming load's shards go on;
/// `--replace` deletes them all and loads anew.
#[test]
fn a_different_loads_claim_refuses_a_load_until_replaced() {
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let claiming = GeneratorConfig {
        seed: 11,
        ..common::small_config(4_000)
    };
    let claim = claim_of(&claiming);
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v2/write?org={}&bucket=trades&precision=ns",
            h.url,
            common::influx::ORG
        ))
        .header("authorization", format!("Token {TOKEN}"))
        .body(ohlcv::store::influx::line_protocol::claim_line(&claim))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let load = common::small_config(3_000);
    let o = h.options(&load, dir.path());
    let err = run(&o).0.unwrap_err().to_string();
    assert!(
        err.starts_with("another load is writing ") && err.contains("seed 11"),
        "{err}"
    );
    let measurements = || -> Vec<String> {
        let points = h.state.points.lock().unwrap();
        let mut m: Vec<String> = points.values().map(|p| p.measurement.clone()).collect();
        m.sort();
        m.dedup();
        m
    };
    assert_eq!(measurements(), ["ohlcv_claim"], "no trade, no manifest");
    assert_eq!(influx::claims(&h.config("trades")).unwrap(), vec![claim]);

    // The claiming load's own shard is not refused by its claim.
    let mut shard = h.options(&claiming, dir.path());
    shard.spec.shard = ohlcv::ingest::Shard { index: 0, count: 2 };
    assert!(run(&shard).0.unwrap().written > 0);

    run(&o.replacing()).0.unwrap();
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
    assert_eq!(
        claimants(&h.config("trades")),
        vec![claim_of(&load).fingerprint]
    );
}

/// Flux reads give exactly what the embedded store gives for the same seed: trades, candles
/// at several intervals and zones, previous closes, verify's counts.
#[test]
fn flux_reads_equal_the_embedded_store() {
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(12_000);
    run(&h.options(&load, dir.path())).0.unwrap();
    let store = influx::open(h.config("trades")).unwrap();
    assert_verifies(&*store, (100, 1), 12_000);

    let (_data, parquet) = common::embedded(&load);
    assert_eq!(
        store.manifest().unwrap().load,
        parquet.manifest().unwrap().load
    );
    for symbol in &load.symbols {
        let first = parquet.trades(symbol, 0, i64::MAX, Some(5)).unwrap();
        assert_eq!(
            store.trades(symbol, 0, i64::MAX / 2, Some(5)).unwrap(),
            first
        );
    }
    common::assert_same_data(
        &*store,
        &parquet,
        &load,
        &[
            ("1m", chrono_tz::America::New_York),
            ("1h", chrono_tz::Asia::Kathmandu),
            ("1d", chrono_tz::America::New_York),
            ("13s", chrono_tz::UTC),
        ],
        ("2024-03-01", "2024-03-20"),
    );
    let missing = influx::open(h.config("nowhere")).unwrap();
    let err = missing.manifest().unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
}

/// Without the `trade_id` field, Flux reads number the trades as the generator does: from
/// the middle of a session and across sessions, the same trades with the same ids as the
/// embedded store, and the load verifies.
#[test]
fn flux_reads_number_the_trades_of_a_load_without_trade_ids() {
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(6_000);
    let config = InfluxConfig {
        schema: influx::Schema::NoTradeId,
        ..h.config("trades")
    };
    run(&options(config.clone(), load.clone(), dir.path()))
        .0
        .unwrap();
    assert!(
        h.state
            .points
            .lock()
            .unwrap()
            .values()
            .all(|p| p.fields.iter().all(|(name, _)| name != "trade_id"))
    );
    let store = influx::open(config).unwrap();
    assert_verifies(&*store, (100, 1), 6_000);
    let (_data, parquet) = common::embedded(&load);
    for symbol in &load.symbols {
        let all = parquet.trades(symbol, 0, i64::MAX / 2, None).unwrap();
        let from = all.times[all.len() / 2] - 1;
        let want = parquet
            .trades(symbol, from, i64::MAX / 2, Some(700))
            .unwrap();
        assert!(want.trade_ids[0] > 0);
        assert_eq!(
            store.trades(symbol, from, i64::MAX / 2, Some(700)).unwrap(),
            want
        );
    }
}

/// What the server's candles of `symbol` are checked against: ohlcv's own, from the embedded
/// store of the same load, without the VWAP the server does not compute. The day and month
/// hold the switch to daylight saving time (2024-03-10), so daily windows are cut in New
/// York's zone across both offsets.
fn assert_server_candles_equal_ohlcvs(
    flux: &influx::FluxStore,
    source: influx::flux::CandleSource,
    load: &GeneratorConfig,
    parquet: &dyn Store,
) {
    use ohlcv::candles::{CandleRow, Fill};
    use ohlcv::query::{self, CandleQuery};
    let tz = chrono_tz::America::New_York;
    let at = |date: &str| query::parse_time(date, tz).unwrap();
    for symbol in &load.symbols {
        for (every, start, end) in [
            ("1m", "2024-03-12", "2024-03-13"),
            ("1h", "2024-03-01", "2024-04-01"),
            ("1d", "2024-02-26", "2024-04-06"),
        ] {
            let q = CandleQuery {
                symbol: symbol.clone(),
                interval: every.parse().unwrap(),
                start: at(start),
                end: at(end),
                tz,
                fill: Fill::None,
            };
            let want: Vec<CandleRow> = query::candles(parquet, &q)
                .unwrap()
                .into_iter()
                .map(|c| CandleRow { vwap: None, ..c })
                .collect();
            assert!(want.len() > 1, "{symbol} {every}");
            let got = flux
                .server_candles(source, symbol, (q.start, q.end), every, tz)
                .unwrap();
            assert_eq!(got, want, "{symbol} {every} from {source:?}");
        }
    }
}

/// Candles the server computes with `aggregateWindow()` from the raw trades, and from the
/// 1-minute candles the downsampling task's script writes, are ohlcv's own, value for value,
/// in every schema.
#[test]
fn flux_server_candles_equal_ohlcvs_own_in_every_schema() {
    use influx::flux::CandleSource;
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(6_000);
    let (_data, parquet) = common::embedded(&load);
    for schema in influx::Schema::ALL {
        // A server per schema: this one keeps every bucket's points together.
        let h = start();
        ready(&h);
        let config = InfluxConfig {
            schema,
            ..h.config("trades")
        };
        run(&options(config.clone(), load.clone(), dir.path()))
            .0
            .unwrap();
        let flux = influx::FluxStore::new(config).unwrap();
        assert_server_candles_equal_ohlcvs(&flux, CandleSource::Trades, &load, &parquet);

        let into = ohlcv::bench::workload::DOWNSAMPLED_TASK;
        for symbol in &load.symbols {
            let written = flux
                .rows(&flux.downsample_range_flux(symbol, into, (0, i64::MAX / 2)))
                .unwrap();
            assert!(written > 0, "{schema}");
        }
        assert_server_candles_equal_ohlcvs(&flux, CandleSource::Downsampled(into), &load, &parquet);
    }
}

/// `bench influx`'s workload on 2.x: the Flux paths beside the stored candles, every candle
/// query giving as many candles on each path, and the downsampling task created through the
/// tasks API and deleted.
#[test]
fn the_workload_times_the_flux_paths_and_creates_the_task() {
    use ohlcv::bench::workload::{self, CandlePath};
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(6_000);
    run(&h.options(&load, dir.path())).0.unwrap();
    let config = h.config("trades");
    let store = influx::open(config.clone()).unwrap();
    let plan = ohlcv::generator::MarketPlan::new(load).unwrap();
    let costs = workload::run(&*store, &config, &plan, 2);

    let count = |path| costs.iter().filter(|q| q.candle_path == path).count();
    assert_eq!(count(CandlePath::Stored1m), 3);
    assert_eq!(count(CandlePath::ServerFlux), 3);
    assert_eq!(count(CandlePath::DownsampledTask), 5);
    assert_eq!(count(CandlePath::Trades), 1);
    assert_eq!(
        count(CandlePath::ServerGroupBy) + count(CandlePath::Downsampled),
        0
    );
    let mut rows: HashMap<&str, u64> = HashMap::new();
    for q in &costs {
        assert_eq!(q.error, None, "{q:?}");
        assert!(q.cold_ms.is_some(), "{q:?}");
        if q.name == workload::TASK || q.name == workload::DOWNSAMPLE {
            continue;
        }
        assert!(q.p50_ms.is_some() && q.p50_ms <= q.p99_ms, "{q:?}");
        let seen = *rows.entry(q.name.as_str()).or_insert(q.rows.unwrap());
        assert_eq!(Some(seen), q.rows, "{} on {:?}", q.name, q.candle_path);
    }
    assert_eq!(rows["last 100 trades"], 100);
    assert!(rows["1m candles, a day"] > 1 && rows["1d candles, the load"] > 1);

    assert_eq!(h.state.tasks_created.load(Ordering::Relaxed), 1);
    assert!(
        h.state.tasks.lock().unwrap().is_empty(),
        "the task is deleted"
    );
    let json = serde_json::to_value(&costs).unwrap();
    let paths: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["candle_path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"server_flux") && paths.contains(&"downsampled_task"));
    assert_eq!(
        CandlePath::ServerFlux.label(),
        "server Flux aggregateWindow"
    );
    assert_eq!(CandlePath::DownsampledTask.label(), "downsampled (task)");
}

/// Every shard leaves a mark; the load reads as complete once all shards have.
#[test]
fn a_sharded_load_is_complete_when_every_shard_is() {
    let h = start();
    ready(&h);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(6_000);
    let store = influx::open(h.config("trades")).unwrap();
    load_in_shards(&*store, &h.options(&load, dir.path()), 2, |o| {
        run(&o).0.unwrap();
    });
    assert_verifies(&*store, (100, 2), 6_000);
}

/// The bucket `<prefix>-<pid>` of the real InfluxDB 2.x that `INFLUXDB_URL`, `INFLUXDB_TOKEN`
/// and `INFLUXDB_ORG` (default `ohlcv-poc`) name.
fn real_2x(prefix: &str) -> InfluxConfig {
    let variable = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: this test runs against a real InfluxDB 2.x")
        })
    };
    let (url, token) = (variable("INFLUXDB_URL"), variable("INFLUXDB_TOKEN"));
    let org = std::env::var("INFLUXDB_ORG").unwrap_or_else(|_| common::influx::ORG.into());
    let bucket = format!("{prefix}-{}", std::process::id());
    InfluxConfig {
        org,
        ..influx_config(&url, &token, &bucket)
    }
}

/// Against a real InfluxDB 2.x, ignored unless asked for as
/// `real_influxdb_2x_when_configured` is: in a bucket `ohlcv-test-candles-<pid>`, which it
/// drops, the candles the server computes with Flux from 6,000 trades, and from the 1-minute
/// candles the downsampling task's script writes, equal ohlcv's value for value; the
/// benchmark's workload creates and deletes its task through the tasks API, and no query of
/// it fails.
#[test]
#[ignore = "needs INFLUXDB_URL and INFLUXDB_TOKEN"]
fn real_influxdb_2x_server_candles_when_configured() {
    use influx::flux::CandleSource;
    use ohlcv::bench::workload::{self, CandlePath};
    let c = real_2x("ohlcv-test-candles");
    assert_eq!(setup(&c).unwrap(), SetupOutcome::Created);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(6_000);
    run(&options(c.clone(), load.clone(), dir.path()))
        .0
        .unwrap();
    let (_data, parquet) = common::embedded(&load);
    let flux = influx::FluxStore::new(c.clone()).unwrap();
    assert_server_candles_equal_ohlcvs(&flux, CandleSource::Trades, &load, &parquet);
    for symbol in &load.symbols {
        let q = flux.downsample_range_flux(symbol, workload::DOWNSAMPLED_TASK, (0, i64::MAX / 2));
        assert!(flux.rows(&q).unwrap() > 0);
    }
    let downsampled = CandleSource::Downsampled(workload::DOWNSAMPLED_TASK);
    assert_server_candles_equal_ohlcvs(&flux, downsampled, &load, &parquet);

    let store = influx::open(c.clone()).unwrap();
    let plan = ohlcv::generator::MarketPlan::new(load).unwrap();
    let costs = workload::run(&*store, &c, &plan, 1);
    for q in &costs {
        assert_eq!(q.error, None, "{q:?}");
    }
    assert!(costs.iter().any(|q| q.name == workload::TASK));
    assert!(
        costs
            .iter()
            .any(|q| q.candle_path == CandlePath::ServerFlux)
    );
    influx::drop_target(&c).unwrap();
}

/// Against a real InfluxDB 2.x: creates a bucket `ohlcv-test-<pid>` in the organisation
/// `INFLUXDB_ORG` (default `ohlcv-poc`), loads 20,000 trades into it and verifies them through
/// Flux and InfluxQL. Run it with
///
/// ```text
/// INFLUXDB_URL=http://localhost:8086 INFLUXDB_TOKEN=<a token that may create buckets> \
///     cargo test --test influx_v2 -- --ignored
/// ```
#[test]
#[ignore = "needs INFLUXDB_URL and INFLUXDB_TOKEN"]
fn real_influxdb_2x_when_configured() {
    let c = real_2x("ohlcv-test");
    assert_eq!(setup(&c).unwrap(), SetupOutcome::Created);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(20_000);
    let summary = run(&options(c.clone(), load, dir.path())).0.unwrap();
    assert_eq!(summary.written, 20_000);
    // Both languages: Flux natively, InfluxQL through the v1 compatibility API.
    for query_language in [QueryLanguage::Flux, QueryLanguage::Influxql] {
        let store = influx::open(InfluxConfig {
            query_language,
            ..c.clone()
        })
        .unwrap();
        let report = ohlcv::verify::verify(&*store, 100, 1).unwrap();
        assert!(report.ok(), "{query_language:?}: {:?}", report.listed);
    }
}

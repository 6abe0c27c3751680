//! The InfluxDB 2.x write and setup APIs, against a strict in-process server that follows the
//! documented v2 API (auth header, org/bucket/precision parameters, gzip bodies, line protocol
//! validated by InfluxData's parser, status codes and their bodies), and can be told to
//! misbehave the way a real server does under load: 503/429 with `Retry-After`, 5xx, 413, 422,
//! 400, dropped connections. A real 2.x cannot be made to do those on demand.
//!
//! Tests against a real InfluxDB 2.x run when INFLUXDB_URL and INFLUXDB_TOKEN are set.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::influx::{
    self, BatchStats, InfluxLoadOptions, RetryPolicy, Shard, WriteOptions,
};
use ohlcv::ingest::{IngestError, Progress};
use ohlcv::store::influx::{Api, InfluxConfig, Secret, SetupOutcome, setup};

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
    /// (series key, timestamp) → fields: what a real server keeps, duplicates overwriting.
    points: Mutex<HashMap<(String, i64), String>>,
    faults: Mutex<VecDeque<Fault>>,
    max_body: Mutex<Option<usize>>,
    writes: AtomicU64,
    gzip_writes: AtomicU64,
    health_checks: AtomicU64,
    /// Connections to drop before answering, through the proxy.
    drop_connections: AtomicU64,
    /// The `json` field of the last `ohlcv_load` point.
    manifest: Mutex<Option<String>>,
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

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Token {TOKEN}"))
}

async fn write(
    State(s): State<Arc<Server>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
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
        if let Ok(l) = &line
            && l.series.measurement.as_str() == "ohlcv_load"
            && let Some((_, influxdb_line_protocol::FieldValue::String(json))) = l.field_set.first()
        {
            *s.manifest.lock().unwrap() = Some(json.to_string());
        }
        match line {
            Ok(l) => parsed.push((
                l.series.to_string(),
                l.timestamp.expect("timestamps are always sent"),
                l.field_set
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
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
    for (series, time, fields) in parsed {
        points.insert((series, time), fields);
    }
    s.writes.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

/// The v1 compatibility `/query`, for the one statement the loader sends before writing:
/// reading the manifest point. Anything else is refused, as a real server refuses what it
/// cannot parse.
async fn query(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
    let form: HashMap<String, String> = serde_urlencoded_like(&body);
    if form.get("q").map(String::as_str) != Some(r#"SELECT last("json") FROM "ohlcv_load""#) {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported by this test server"}"#,
        )
            .into_response();
    }
    let series = match s.manifest.lock().unwrap().as_ref() {
        Some(json) => {
            serde_json::json!([{"name": "ohlcv_load", "columns": ["time", "last"], "values": [[0, json]]}])
        }
        None => serde_json::json!([]),
    };
    (
        StatusCode::OK,
        serde_json::json!({"results": [{"statement_id": 0, "series": series}]}).to_string(),
    )
        .into_response()
}

fn serde_urlencoded_like(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// `/api/v2/delete` with a `_measurement="..."` predicate.
async fn delete(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let predicate = v["predicate"].as_str().unwrap();
    let measurement = predicate
        .strip_prefix("_measurement=\"")
        .and_then(|p| p.strip_suffix('"'))
        .unwrap();
    s.points
        .lock()
        .unwrap()
        .retain(|(series, _), _| series.split(',').next() != Some(measurement));
    if measurement == "ohlcv_load" {
        *s.manifest.lock().unwrap() = None;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn health(State(s): State<Arc<Server>>) -> Response {
    s.health_checks.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, r#"{"name":"influxdb","status":"pass"}"#).into_response()
}

async fn orgs(Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
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
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
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

async fn create_bucket(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        );
    }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/api/v2/write", post(write))
        .route("/health", get(health))
        .route("/query", post(query))
        .route("/api/v2/delete", post(delete))
        .route("/api/v2/orgs", get(orgs))
        .route("/api/v2/buckets", get(list_buckets).post(create_bucket))
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
    InfluxConfig {
        url: InfluxConfig::parse_url(url).unwrap(),
        api: Api::V2,
        token: Some(Secret::new(token)),
        org: "ohlcv-poc".into(),
        bucket: bucket.into(),
        database: bucket.into(),
        username: None,
        password: None,
        retention_days: 3650,
    }
}

fn options(
    influx: InfluxConfig,
    load: GeneratorConfig,
    checkpoints: &std::path::Path,
) -> InfluxLoadOptions {
    InfluxLoadOptions {
        config: load,
        influx,
        write: WriteOptions {
            batch_lines: 2_000,
            batch_bytes: 256 * 1024,
            writers: 2,
            gzip: false,
            retry: RetryPolicy {
                interval: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                max_time: Duration::from_secs(30),
                jitter: Duration::from_millis(5),
                ..RetryPolicy::default()
            },
            breaker_threshold: 4,
        },
        shard: Shard::ALL,
        resume: false,
        replace: false,
        checkpoint_dir: checkpoints.to_path_buf(),
        threads: 2,
        retention_days: 3650,
        now: chrono::Utc::now(),
    }
}

/// Trades plus their 1-minute candles plus the manifest point, as distinct points.
fn expected_points(load: &GeneratorConfig) -> usize {
    let plan = ohlcv::generator::MarketPlan::new(load.clone()).unwrap();
    let mut n = 1;
    for s in 0..plan.symbols().len() {
        for d in 0..plan.sessions().len() {
            let mut t = ohlcv::model::TradeColumns::default();
            plan.generate(s, d, &mut t);
            n += t.len() + ohlcv::candles::minute_candles(&t).len();
        }
    }
    n
}

fn run(
    o: &InfluxLoadOptions,
) -> (
    Result<influx::InfluxLoadSummary, IngestError>,
    Arc<BatchStats>,
) {
    let stats = Arc::new(BatchStats::default());
    (influx::load(o, &Progress::default(), &stats), stats)
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
    let c = influx_config(&h.url, TOKEN, "trades");
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
    let o = InfluxLoadOptions {
        write: WriteOptions {
            gzip: true,
            ..options(
                influx_config(&h.url, TOKEN, "trades"),
                load.clone(),
                dir.path(),
            )
            .write
        },
        ..options(
            influx_config(&h.url, TOKEN, "trades"),
            load.clone(),
            dir.path(),
        )
    };
    let (result, stats) = run(&o);
    let summary = result.unwrap();
    assert_eq!(summary.written, 20_000);
    assert_eq!(h.state.points.lock().unwrap().len(), expected_points(&load));
    let s = stats.summary();
    assert!(
        s.bytes_sent < s.bytes_raw / 3,
        "gzip shrinks line protocol: {s:?}"
    );
    // Every batch, the manifest's two writes (at the start, when complete) included.
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
    let o = options(
        influx_config(&h.url, TOKEN, "trades"),
        load.clone(),
        dir.path(),
    );
    let (result, stats) = run(&o);
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
    let o = options(
        influx_config(&h.url, TOKEN, "trades"),
        load.clone(),
        dir.path(),
    );
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
    let (result, stats) = run(&o);
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
    let o = options(
        influx_config(&h.url, TOKEN, "trades"),
        load.clone(),
        dir.path(),
    );
    h.state.drop_connections.store(2, Ordering::Relaxed);
    let (result, stats) = run(&o);
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
    let (result, stats) = run(&options(
        influx_config(&h.url, TOKEN, "trades"),
        load.clone(),
        dir.path(),
    ));
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

    let (result, _) = run(&options(
        influx_config(&h.url, TOKEN, "missing"),
        load.clone(),
        dir.path(),
    ));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("\"missing\""), "{err}");

    let good = options(influx_config(&h.url, TOKEN, "trades"), load, dir.path());
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
    run(&options(
        influx_config(&h.url, TOKEN, "trades"),
        first,
        dir.path(),
    ))
    .0
    .unwrap();
    let second = GeneratorConfig {
        seed: 99,
        ..common::small_config(4_000)
    };
    let o = options(
        influx_config(&h.url, TOKEN, "trades"),
        second.clone(),
        dir.path(),
    );
    let err = run(&o).0.unwrap_err().to_string();
    assert!(
        err.contains("different load") && err.contains("--replace"),
        "{err}"
    );
    run(&InfluxLoadOptions { replace: true, ..o }).0.unwrap();
    assert_eq!(
        h.state.points.lock().unwrap().len(),
        expected_points(&second)
    );
}

/// Against a real InfluxDB 2.x, when one is configured.
#[test]
fn real_influxdb_2x_when_configured() {
    let (Ok(url), Ok(token)) = (
        std::env::var("INFLUXDB_URL"),
        std::env::var("INFLUXDB_TOKEN"),
    ) else {
        eprintln!(
            "skipped: set INFLUXDB_URL and INFLUXDB_TOKEN to run the tests against a real InfluxDB 2.x"
        );
        return;
    };
    let org = std::env::var("INFLUXDB_ORG").unwrap_or_else(|_| "ohlcv-poc".into());
    let bucket = format!("ohlcv-test-{}", std::process::id());
    let c = InfluxConfig {
        org,
        ..influx_config(&url, &token, &bucket)
    };
    assert_eq!(setup(&c).unwrap(), SetupOutcome::Created);
    let dir = tempfile::tempdir().unwrap();
    let load = common::small_config(20_000);
    let stats = Arc::new(BatchStats::default());
    let summary = influx::load(
        &options(c.clone(), load, dir.path()),
        &Progress::default(),
        &stats,
    )
    .unwrap();
    assert_eq!(summary.written, 20_000);
    let store = ohlcv::store::influx::InfluxStore::new(c).unwrap();
    let report = ohlcv::verify::verify(&store, 100, 1).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
}

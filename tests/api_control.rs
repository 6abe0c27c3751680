//! Loads through the API (jobs and the proof of concept's start/stop/status/config), the
//! OpenAPI document and Swagger UI, metrics, limits and timeouts, and the absence of secrets,
//! over real HTTP on 127.0.0.1:0 with the embedded store on disk.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::WriteOptions;
use ohlcv::store::influx::{Api, InfluxConfig, QueryLanguage, Secret};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::{Store, StoreError};
use ohlcv::verify;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

fn json_of(r: reqwest::blocking::Response) -> (u16, Value) {
    (r.status().as_u16(), r.json().unwrap())
}

fn post(url: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = Client::new().post(url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().unwrap())
}

fn get(url: &str) -> (u16, Value) {
    json_of(Client::new().get(url).send().unwrap())
}

/// The API over an empty embedded store, loading 1,000 trades when asked to load.
fn serve_empty() -> (String, tokio::runtime::Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (url, runtime) = common::serve(common::app_state(
        dir.path(),
        common::small_config(1_000),
        TIMEOUT,
    ));
    (url, runtime, dir)
}

#[test]
fn a_load_is_started_watched_cancelled_and_resumed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let load = GeneratorConfig {
        trades: 3_000_000,
        ..common::small_config(0)
    };
    let (url, _rt) = common::serve(common::app_state(dir.path(), load.clone(), TIMEOUT));

    let r = Client::new()
        .post(format!("{url}/api/v1/ingestions"))
        .json(&json!({"trades": 3_000_000, "store": "parquet"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/api/v1/ingestions/1");
    let job = format!("{url}{location}");

    let running = common::watch(&job, "the load to start", |v| {
        v["processed"].as_u64() > Some(0)
    });
    assert_eq!(running["state"], "running");
    assert_eq!(running["total"], 3_000_000);
    // One load at a time.
    let (status, problem) = post(&format!("{url}/api/v1/ingestions"), Some(json!({})));
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("already_running"))
    );
    let (status, _) = post(&format!("{url}/api/start"), None);
    assert_eq!(status, 409);
    let (status, legacy) = get(&format!("{url}/api/status"));
    assert_eq!((status, legacy["status"].as_str()), (200, Some("running")));
    assert!(legacy["progress"]["total"].as_u64() == Some(3_000_000));

    let (status, _) = post(&format!("{job}/cancel"), None);
    assert_eq!(status, 202);
    let cancelled = common::watch(&job, "the load to stop", |v| v["state"] != "running");
    assert_eq!(cancelled["state"], "cancelled");
    let (_, legacy) = get(&format!("{url}/api/status"));
    assert_eq!(legacy["status"], "idle");
    let (status, problem) = post(&format!("{job}/cancel"), None);
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("not_running"))
    );
    let (status, legacy) = post(&format!("{url}/api/stop"), None);
    assert_eq!(
        (status, legacy),
        (409, json!({"error": "Trade ingestion is not running"}))
    );

    // The same load again finishes it: the store then holds exactly the load.
    let (status, started) = post(&format!("{url}/api/start"), None);
    assert_eq!(status, 202, "{started}");
    let done = common::watch_to_the_end(&format!("{url}/api/v1/ingestions/2"));
    assert_eq!(done["state"], "completed", "{done}");
    let (_, legacy) = get(&format!("{url}/api/status"));
    assert_eq!(legacy["status"], "completed");
    assert_eq!(legacy["progress"]["percentage"], 100.0);
    common::assert_verifies(&ParquetStore::new(dir.path()), (50, 1), 3_000_000);

    let (_, list) = get(&format!("{url}/api/v1/ingestions"));
    assert_eq!(list["ingestions"].as_array().unwrap().len(), 2);
    let (status, _) = get(&format!("{url}/api/v1/ingestions/99"));
    assert_eq!(status, 404);

    let metrics = Client::new()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for needle in [
        "ohlcv_load_trades_written_total ",
        "http_requests_total{method=\"POST\",route=\"/api/v1/ingestions\",status=\"202\"} 1",
        "http_request_duration_seconds_bucket{le=",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_network_receive_bytes_total ",
        "ohlcv_load_batches_in_flight ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[test]
fn ingestion_settings_are_validated() {
    let (url, _rt, _dir) = serve_empty();
    let create = format!("{url}/api/v1/ingestions");
    for (body, code, param) in [
        (json!({"trades": 0}), "invalid_trades", "trades"),
        (json!({"trades": "many"}), "invalid_trades", "trades"),
        (json!({"symbols": []}), "invalid_symbols", "symbols"),
        (json!({"symbols": ["aapl"]}), "invalid_symbol", "symbols"),
        (json!({"start": "2024-13-01"}), "invalid_date", "start"),
        (
            json!({"start": "2024-05-01", "end": "2024-04-01"}),
            "invalid_range",
            "end",
        ),
        (json!({"seed": -1}), "invalid_seed", "seed"),
        (json!({"store": "mongodb"}), "invalid_store", "store"),
        (
            json!({"store": "influxdb"}),
            "store_not_configured",
            "store",
        ),
        (json!({"replace": "yes"}), "invalid_flag", "replace"),
        (
            json!({"start": "2024-03-30", "end": "2024-03-31"}),
            "invalid_load",
            "body",
        ),
        (json!({"trade": 5}), "invalid_body", "body"),
        (json!([1, 2]), "invalid_body", "body"),
        // Outside the supported years: refused before any calendar arithmetic can overflow.
        (
            json!({"trades": 1000, "start": "0479-04-18", "end": "0479-05-01"}),
            "invalid_date",
            "start",
        ),
        (
            json!({"trades": 1000, "start": "2300-01-01", "end": "2300-02-01"}),
            "invalid_date",
            "start",
        ),
        (json!({"trades": null}), "invalid_trades", "trades"),
        (
            json!({"symbols": ["AAPL", "AAPL"]}),
            "invalid_symbols",
            "symbols",
        ),
        (json!({"start": "2024-02-30"}), "invalid_date", "start"),
        (
            json!({"trades": 20_000_000_000u64}),
            "invalid_trades",
            "trades",
        ),
    ] {
        let r = Client::new().post(&create).json(&body).send().unwrap();
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (status, v) = json_of(r);
        // Settings the document admits that make no load are 422s; the rest break it.
        let unprocessable = ["invalid_range", "store_not_configured", "invalid_load"];
        let want = if unprocessable.contains(&code) || body["start"] == "2024-02-30" {
            422
        } else {
            400
        };
        assert_eq!(
            (status, v["code"].as_str(), v["param"].as_str()),
            (want, Some(code), Some(param)),
            "{body}: {v}"
        );
    }
    // The body is a JSON object sent as JSON: none, or another type, is refused.
    for (content_type, body, status, code) in [
        (Some("application/json"), "{not json", 400, "invalid_body"),
        (Some("application/json"), "", 400, "missing_body"),
        (None, "{}", 415, "unsupported_media_type"),
        (Some("text/plain"), "{}", 415, "unsupported_media_type"),
    ] {
        let mut r = Client::new().post(&create).body(body);
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        let (got, v) = json_of(r.send().unwrap());
        assert_eq!((got, v["code"].as_str()), (status, Some(code)), "{body:?}");
    }
    assert_eq!(
        get(&format!("{url}/api/v1/ingestions")).1["ingestions"],
        json!([])
    );
    let r = Client::new()
        .post(&create)
        .body(vec![b' '; 100_000])
        .send()
        .unwrap();
    let (status, v) = json_of(r);
    assert_eq!((status, v["code"].as_str()), (413, Some("body_too_large")));
    let (status, v) = get(&format!("{url}/api/v1/ingestions/x1"));
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_id")));
    let (status, v) = get(&format!("{url}/no/such/route"));
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
    let r = Client::new()
        .delete(format!("{url}/api/status"))
        .send()
        .unwrap();
    let (status, v) = json_of(r);
    assert_eq!(
        (status, v["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Nothing was started by any of these.
    assert_eq!(get(&format!("{url}/api/status")).1["status"], "idle");
}

#[test]
fn the_openapi_document_lists_every_route_and_swagger_ui_is_served_locally() {
    let (url, _rt, _dir) = serve_empty();
    let (status, doc) = get(&format!("{url}/openapi.json"));
    assert_eq!(status, 200);
    let routes = [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/api/v1/symbols", "get"),
        ("/api/v1/candles", "get"),
        ("/api/v1/trades", "get"),
        ("/api/v1/stats", "get"),
        ("/api/v1/ingestions", "post"),
        ("/api/v1/ingestions", "get"),
        ("/api/v1/ingestions/{id}", "get"),
        ("/api/v1/ingestions/{id}/cancel", "post"),
        ("/api/status", "get"),
        ("/api/start", "post"),
        ("/api/stop", "post"),
        ("/api/config", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(listed, routes.len(), "{:?}", paths.keys());
    for (path, method) in routes {
        let op = &doc["paths"][path][method];
        let ok = op["responses"]
            .as_object()
            .and_then(|r| r.iter().find(|(code, _)| code.starts_with('2')))
            .unwrap_or_else(|| panic!("{method} {path} has no success response"))
            .1;
        assert!(
            ok["content"]
                .as_object()
                .is_some_and(|c| c.values().all(|m| m.get("schema").is_some())),
            "{method} {path}: {ok}"
        );
        // Every route is served: none answers 404 or 405.
        let r = Client::new()
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{url}{}", path.replace("{id}", "1")),
            )
            .send()
            .unwrap();
        assert!(
            ![404, 405].contains(&r.status().as_u16()) || path.contains("{id}"),
            "{method} {path}: {}",
            r.status()
        );
    }
    for schema in [
        "CandlesPage",
        "TradesPage",
        "StatsReport",
        "SymbolStats",
        "JobStatus",
        "Problem",
        "SymbolList",
        "IngestionRequest",
        "LegacyStatus",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
    let page = Client::new().get(format!("{url}/docs/")).send().unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("swagger"), "{html}");
    assert!(
        !html.contains("https://"),
        "Swagger UI must come from the binary, not a CDN"
    );
    let init = Client::new()
        .get(format!("{url}/docs/swagger-initializer.js"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}

/// Captures every log line of this test binary.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_never_reach_a_response_or_a_log_line() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();
    const TOKEN: &str = "tok-3f9a-never-shown";
    const PASSWORD: &str = "pw-77c1-never-shown";
    // An InfluxDB target that refuses connections: the load fails, and says so.
    let port = common::free_port();
    let influx = InfluxConfig {
        username: Some("admin".into()),
        password: Some(Secret::new(PASSWORD)),
        query_language: QueryLanguage::Influxql,
        schema: ohlcv::store::influx::Schema::Tags,
        ..common::influx::config(
            &format!("http://admin:{PASSWORD}@127.0.0.1:{port}"),
            Api::V2,
            Some(TOKEN),
            "trades",
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let write = WriteOptions {
        retry: ohlcv::ingest::RetryPolicy {
            interval: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            max_time: Duration::from_millis(50),
            ..Default::default()
        },
        ..WriteOptions::default()
    };
    let state = common::influx::app_state(
        influx,
        write,
        dir.path(),
        common::small_config(1_000),
        TIMEOUT,
    );
    let (url, _rt) = common::serve(state);
    let (status, started) = post(
        &format!("{url}/api/v1/ingestions"),
        Some(json!({"store": "influxdb"})),
    );
    assert_eq!(status, 202, "{started}");
    let failed = common::watch(
        &format!("{url}/api/v1/ingestions/1"),
        "the load to fail",
        |v| v["state"] == "failed",
    );
    assert!(
        failed["error"].as_str().unwrap().contains("unreachable"),
        "{failed}"
    );
    let mut bodies = vec![failed.to_string()];
    for path in [
        "/api/config",
        "/api/status",
        "/api/v1/ingestions",
        "/ready",
        "/api/v1/symbols",
        "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02",
        "/api/v1/trades?symbol=AAPL&start=2024-03-01&end=2024-03-02",
        "/metrics",
        "/openapi.json",
    ] {
        let r = Client::new().get(format!("{url}{path}")).send().unwrap();
        assert!(
            r.status().as_u16() < 500 || r.status() == 503,
            "{path}: {}",
            r.status()
        );
        let headers = format!("{:?}", r.headers());
        bodies.push(format!("{headers} {}", r.text().unwrap()));
    }
    let config = &bodies[1];
    assert!(config.contains("\"bucket\":\"trades\""), "{config}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("load failed"), "{logs}");
    for text in bodies.iter().chain([&logs]) {
        for secret in [TOKEN, PASSWORD] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
}

/// A store that answers only when the test lets it: a real store cannot be made this slow on
/// demand.
struct Stalled(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl Store for Stalled {
    fn trades(
        &self,
        _: &ohlcv::model::Symbol,
        _: i64,
        _: i64,
        _: Option<usize>,
    ) -> Result<ohlcv::model::TradeColumns, StoreError> {
        unreachable!("only manifest is called")
    }
    fn minute_candles(
        &self,
        _: &ohlcv::model::Symbol,
        _: i64,
        _: i64,
    ) -> Result<Vec<ohlcv::candles::Candle>, StoreError> {
        unreachable!("only manifest is called")
    }
    fn previous_close(&self, _: &ohlcv::model::Symbol, _: i64) -> Result<Option<i64>, StoreError> {
        unreachable!("only manifest is called")
    }
    fn count_trades(
        &self,
        _: &ohlcv::model::Symbol,
        _: &[(i64, i64)],
    ) -> Result<Vec<u64>, StoreError> {
        unreachable!("only manifest is called")
    }
    fn manifest(&self) -> Result<ohlcv::store::Manifest, StoreError> {
        let _ = self.0.lock().unwrap().recv();
        Err(StoreError::Empty("stalled".into()))
    }
}

#[test]
fn a_request_over_the_timeout_gets_a_503_problem() {
    let (release, stalled) = std::sync::mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state_over(
        Arc::new(Stalled(std::sync::Mutex::new(stalled))),
        common::parquet_target(dir.path()),
        common::small_config(1_000),
        Duration::from_millis(200),
    );
    let (url, _rt) = common::serve(state);
    let (status, v) = get(&format!("{url}/ready"));
    assert_eq!((status, v["code"].as_str()), (503, Some("timeout")), "{v}");
    release.send(()).unwrap();
    assert_eq!(get(&format!("{url}/health")).0, 200);
}

#[test]
fn a_graceful_shutdown_stops_a_running_load_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let load = GeneratorConfig {
        trades: 5_000_000,
        ..common::small_config(0)
    };
    let state = common::app_state(dir.path(), load, TIMEOUT);
    let jobs = state.jobs().clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (url, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(ohlcv::api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        (url, server)
    });
    let (status, _) = post(&format!("{url}/api/start"), None);
    assert_eq!(status, 202);
    common::watch(
        &format!("{url}/api/v1/ingestions/1"),
        "the load to start",
        |v| v["processed"].as_u64() > Some(0),
    );
    stop.send(()).unwrap();
    runtime
        .block_on(async { tokio::time::timeout(common::DEADLINE, server).await })
        .expect("serve() returns once the load has stopped")
        .unwrap()
        .unwrap();
    // serve() returned only after the load stopped at a batch boundary.
    let job = jobs.latest().unwrap();
    assert_eq!(job.state(), ohlcv::ingest::jobs::JobState::Cancelled);
    let report = verify::verify(&ParquetStore::new(dir.path()), 10, 1).unwrap();
    assert!(
        report.listed.iter().any(|l| l.contains("incomplete")),
        "{:?}",
        report.listed
    );
}

#[test]
fn the_chart_page_is_served_from_the_binary() {
    let (url, _rt, _dir) = serve_empty();
    let r = Client::new().get(format!("{url}/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().unwrap();
    assert!(html.contains("/api/v1/candles") && html.contains("<canvas"));
    assert!(!html.contains("https://"), "no CDN");
}

/// A 500 names the request it answers: the id in its body is the one in its `x-request-id`
/// header, and the log line with the cause carries it too.
#[test]
fn an_internal_error_carries_the_request_id_of_its_header() {
    let dir = tempfile::tempdir().unwrap();
    // A damaged dataset: a manifest that is not JSON.
    std::fs::write(dir.path().join("manifest.json"), "{\"format_version\":").unwrap();
    let (url, _rt) = common::serve(common::app_state(
        dir.path(),
        common::small_config(1_000),
        TIMEOUT,
    ));
    let r = reqwest::blocking::get(format!("{url}/api/v1/symbols")).unwrap();
    assert_eq!(r.status(), 500);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["code"], "internal", "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.ends_with(&format!("request id {id}")),
        "{detail} vs {id}"
    );
    assert!(
        !detail.contains("manifest.json"),
        "no path reaches a client: {detail}"
    );
}

//! The proof of concept's clients, speaking to `ohlcv serve` as they spoke to it: over real
//! HTTP, with the server configured only through the proof of concept's environment names
//! (`PORT`, `TOTAL_TRADES`, `BATCH_SIZE`, `SYMBOLS`, `START_DATE`, `END_DATE`, `LOG_LEVEL`,
//! `INFLUXDB_*`), and its answers compared member for member with its contract.

mod common;

use common::influxd::Influxd;
use common::process::{ServeProcess, ohlcv};
use ohlcv::store::influx::{self, Api};
use ohlcv::store::parquet::ParquetStore;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// Status, content type and JSON body.
fn answer(r: Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    (status, content_type, r.json().unwrap())
}

fn get(server: &ServeProcess, path: &str) -> (u16, String, Value) {
    answer(reqwest::blocking::get(format!("{}{path}", server.url)).unwrap())
}

fn post(server: &ServeProcess, path: &str) -> (u16, String, Value) {
    answer(
        Client::new()
            .post(format!("{}{path}", server.url))
            .send()
            .unwrap(),
    )
}

const JSON: &str = "application/json";

/// Polls `/api/status` until `done` holds.
fn status_until(server: &ServeProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::watch(&format!("{}/api/status", server.url), what, done)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

const PROGRESS_KEYS: [&str; 6] = [
    "elapsedMs",
    "estimatedRemainingMs",
    "percentage",
    "processed",
    "total",
    "tradesPerSecond",
];

#[test]
fn a_long_load_is_started_watched_refused_twice_and_stopped() {
    let mut server = ServeProcess::start(
        &[
            ("TOTAL_TRADES", "200000000"),
            ("BATCH_SIZE", "5000"),
            ("SYMBOLS", "AAPL,MSFT,AMZN"),
            ("START_DATE", "2024-01-01T00:00:00Z"),
            ("END_DATE", "2024-12-31T23:59:59Z"),
            ("LOG_LEVEL", "info"),
        ],
        &[],
    );
    assert_eq!(
        get(&server, "/api/status"),
        (200, JSON.into(), json!({"status": "idle"}))
    );
    let (status, _, config) = get(&server, "/api/config");
    assert_eq!(status, 200);
    assert_eq!(
        (&config["totalTrades"], &config["batchSize"]),
        (&json!(200_000_000), &json!(5000))
    );
    assert_eq!(config["symbols"], json!(["AAPL", "MSFT", "AMZN"]));
    assert_eq!(
        (&config["startDate"], &config["endDate"], &config["store"]),
        (
            &json!("2024-01-01"),
            &json!("2024-12-31"),
            &json!("parquet")
        )
    );

    assert_eq!(
        post(&server, "/api/start"),
        (
            202,
            JSON.into(),
            json!({"message": "Trade ingestion started"})
        )
    );
    let running = status_until(&server, "the load to write", |v| {
        v["progress"]["processed"].as_u64() > Some(0)
    });
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(keys(&running), ["progress", "status"]);
    let progress = &running["progress"];
    assert_eq!(keys(progress), PROGRESS_KEYS);
    assert_eq!(progress["total"], 200_000_000);
    let percentage = progress["percentage"].as_f64().unwrap();
    assert!(percentage > 0.0 && percentage < 100.0, "{progress}");
    assert!(
        progress["tradesPerSecond"].as_f64() > Some(0.0),
        "{progress}"
    );
    assert!(
        progress["estimatedRemainingMs"].as_u64() > Some(0),
        "{progress}"
    );

    assert_eq!(
        post(&server, "/api/start"),
        (
            409,
            JSON.into(),
            json!({"error": "Trade ingestion is already running"})
        )
    );
    assert_eq!(
        post(&server, "/api/stop"),
        (
            200,
            JSON.into(),
            json!({"message": "Trade ingestion stopped"})
        )
    );
    // Stopped by the time /api/stop answered: nothing runs, and nothing more is written.
    let (_, _, after) = get(&server, "/api/status");
    assert_eq!(after["status"], "idle", "{after}");
    let processed = after["progress"]["processed"].as_u64().unwrap();
    assert!(processed < 200_000_000);
    assert_eq!(
        get(&server, "/api/status").2["progress"]["processed"],
        processed
    );
    assert_eq!(
        post(&server, "/api/stop"),
        (
            409,
            JSON.into(),
            json!({"error": "Trade ingestion is not running"})
        )
    );

    // Swagger UI where the proof of concept served it, and its document beside it.
    let page = reqwest::blocking::get(format!("{}/documentation", server.url)).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("swagger-ui"));
    let (status, _, doc) = get(&server, "/documentation/json");
    assert_eq!(status, 200);
    for path in ["/api/status", "/api/start", "/api/stop", "/api/config"] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let log = server.log();
    let serving = log.lines().find(|l| l.contains(r#""message":"serving""#));
    assert!(
        serving.is_some_and(|l| l.contains(r#""store":"parquet""#)),
        "{log}"
    );
    // SIGTERM ends it cleanly, as a service manager expects.
    let status = server.terminate().expect("ohlcv serve ends on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_small_load_completes_with_exact_figures() {
    let server = ServeProcess::start(
        &[
            ("TOTAL_TRADES", "1000"),
            ("BATCH_SIZE", "10"),
            ("SYMBOLS", "AAPL,MSFT"),
            ("START_DATE", "2024-03-01T00:00:00Z"),
            ("END_DATE", "2024-03-08T23:59:59Z"),
            ("LOG_LEVEL", "warn"),
        ],
        &[],
    );
    let (_, _, config) = get(&server, "/api/config");
    assert_eq!(
        (&config["totalTrades"], &config["batchSize"]),
        (&json!(1000), &json!(10))
    );
    assert_eq!(post(&server, "/api/start").0, 202);
    let done = status_until(&server, "the load to end", |v| v["status"] != "running");
    assert_eq!(done["status"], "completed", "{done}");
    let progress = &done["progress"];
    assert_eq!(keys(progress), PROGRESS_KEYS);
    assert_eq!(
        (
            &progress["processed"],
            &progress["total"],
            &progress["percentage"],
            &progress["estimatedRemainingMs"]
        ),
        (&json!(1000), &json!(1000), &json!(100), &json!(0))
    );
    // Written as JavaScript writes numbers: 100, not 100.0.
    let raw = reqwest::blocking::get(format!("{}/api/status", server.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(raw.contains(r#""percentage":100,"#), "{raw}");
    // The load is the one configured: 1,000 trades of AAPL and MSFT from 2024-03-01 to 03-08.
    let store = ParquetStore::new(server.dir().join("data"));
    common::assert_verifies(&store, (50, 1), 1000);
    let manifest = ohlcv::store::Store::manifest(&store).unwrap();
    assert_eq!(
        (manifest.load.start, manifest.load.end),
        (common::date(2024, 3, 1), common::date(2024, 3, 8))
    );
    // LOG_LEVEL=warn: no request or load lines.
    let log = server.log();
    assert!(!log.contains(r#""level":"INFO""#), "{log}");
}

#[test]
fn influxdb_url_alone_selects_influxdb_and_a_failed_load_reports_an_error() {
    let influxd = Influxd::start();
    let url = influxd.url();
    // The proof of concept's names, and one of ours: influxd 1.6 has no v2 API.
    let env = [
        ("INFLUXDB_URL", url.as_str()),
        ("INFLUXDB_BUCKET", "compat"),
        ("INFLUXDB_API", "v1"),
        ("TOTAL_TRADES", "2000"),
        ("BATCH_SIZE", "100"),
        ("SYMBOLS", "AAPL"),
        ("START_DATE", "2024-03-01T00:00:00Z"),
        ("END_DATE", "2024-03-08T23:59:59Z"),
    ];
    let server = ServeProcess::start(&env, &[]);
    assert_eq!(get(&server, "/api/config").2["store"], "influxdb");
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains(r#""message":"serving""#) && l.contains(r#""store":"influxdb""#)),
        "{log}"
    );

    // No database yet: the load fails, and says so as the proof of concept did.
    assert_eq!(post(&server, "/api/start").0, 202);
    let failed = status_until(&server, "the load to end", |v| v["status"] != "running");
    assert_eq!(keys(&failed), ["error", "status"], "{failed}");
    assert_eq!(failed["status"], "error");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist")),
        "{failed}"
    );

    let setup = ohlcv(server.dir(), &env)
        .args(["influx", "setup"])
        .output()
        .unwrap();
    assert!(setup.status.success(), "{setup:?}");
    assert_eq!(post(&server, "/api/start").0, 202);
    let done = status_until(&server, "the load to end", |v| v["status"] != "running");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"]["processed"], 2000);
    let store = influx::open(common::influx::config(&url, Api::V1, None, "compat")).unwrap();
    common::assert_verifies(store.as_ref(), (50, 1), 2000);
}

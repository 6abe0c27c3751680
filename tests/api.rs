//! The HTTP API over real HTTP, on 127.0.0.1:0, backed by a real load in the embedded store.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use reqwest::blocking::Client;

struct Server {
    url: String,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn start(dir: tempfile::TempDir) -> Server {
    let (url, runtime) = common::serve(common::app_state(
        dir.path(),
        common::small_config(1_000),
        std::time::Duration::from_secs(30),
    ));
    Server {
        url,
        _dir: dir,
        _runtime: runtime,
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::load(dir.path(), &common::options(common::small_config(60_000)));
        start(dir)
    })
}

fn get(path: &str) -> reqwest::blocking::Response {
    Client::new()
        .get(format!("{}{path}", server().url))
        .send()
        .unwrap()
}

fn problem(path: &str) -> (u16, serde_json::Value) {
    let r = get(path);
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    (status, r.json().unwrap())
}

/// The `items` of every page of `path`, `limit` a page, following `next_cursor` to the end.
fn paged(path: &str, limit: usize, items: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: serde_json::Value = match &cursor {
            Some(c) => get(&format!("{path}&limit={limit}&cursor={c}")),
            None => get(&format!("{path}&limit={limit}")),
        }
        .json()
        .unwrap();
        all.extend(page[items].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

#[test]
fn health_and_ready() {
    let r = get("/health");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"].len(), 16);
    assert_eq!(get("/ready").status(), 200);
    let empty = start(tempfile::tempdir().unwrap());
    let r = Client::new()
        .get(format!("{}/ready", empty.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = Client::new()
        .get(format!("{}/api/v1/symbols", empty.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
}

#[test]
fn symbols_list_counts_and_edges() {
    let v: serde_json::Value = get("/api/v1/symbols").json().unwrap();
    let list = v["symbols"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list.iter()
            .map(|s| s["trades"].as_u64().unwrap())
            .sum::<u64>(),
        60_000
    );
    let aapl = list.iter().find(|s| s["symbol"] == "AAPL").unwrap();
    let first = aapl["first_trade"].as_str().unwrap();
    let trades: serde_json::Value =
        get("/api/v1/trades?symbol=AAPL&start=2024-01-01&end=2025-01-01&limit=1")
            .json()
            .unwrap();
    assert_eq!(trades["trades"][0]["time"], first);
    // Answered again from the list kept for this manifest.
    let again: serde_json::Value = get("/api/v1/symbols").json().unwrap();
    assert_eq!(again, v);
}

#[test]
fn candles_json_csv_and_paging() {
    let base = "/api/v1/candles?symbol=AAPL&interval=1h&start=2024-03-01&end=2024-03-08";
    let v: serde_json::Value = get(base).json().unwrap();
    assert_eq!(v["symbol"], "AAPL");
    assert_eq!(v["interval"], "1h");
    assert_eq!(v["tz"], "America/New_York");
    let all = v["candles"].as_array().unwrap().clone();
    assert_eq!(all.len(), 35, "5 sessions of 7 hourly buckets");
    assert!(v["next_cursor"].is_null());

    // Pages of 10 put together give the same candles.
    assert_eq!(paged(base, 10, "candles"), all);

    let r = Client::new()
        .get(format!("{}{base}", server().url))
        .header("accept", "text/csv")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().unwrap();
    assert_eq!(
        text.lines().next(),
        Some("time,symbol,open,high,low,close,volume,trades,vwap")
    );
    assert_eq!(text.lines().count(), 36);
}

/// The route's trades of AAPL on 2024-03-04, from the generator.
fn aapl_on_march_4() -> ohlcv::model::TradeColumns {
    let plan = ohlcv::generator::MarketPlan::new(common::small_config(60_000)).unwrap();
    let day = plan
        .sessions()
        .iter()
        .position(|s| s.date == common::date(2024, 3, 4))
        .unwrap();
    let mut trades = ohlcv::model::TradeColumns::default();
    plan.generate(0, day, &mut trades);
    trades
}

#[test]
fn half_cent_prices_are_exact_in_json_and_csv() {
    let path = "/api/v1/trades?symbol=AAPL&start=2024-03-04&end=2024-03-05&limit=10000";
    let want = aapl_on_march_4();
    let printed: Vec<String> = want
        .prices
        .iter()
        .map(|p| ohlcv::model::Price::from_units(*p).unwrap().to_string())
        .collect();
    assert!(
        printed.iter().any(|p| p.len() - p.find('.').unwrap() == 4),
        "the day has half-cent prints"
    );

    let json = get(path).text().unwrap();
    let tokens: Vec<&str> = json
        .split("\"price\":")
        .skip(1)
        .map(|s| s.split(',').next().unwrap())
        .collect();
    assert_eq!(tokens, printed);
    // A reader parsing the numbers as floats gets every price back to the $0.001.
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let parsed: Vec<i64> = doc["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["price"].as_f64().unwrap() * 1e3).round() as i64)
        .collect();
    assert_eq!(parsed, want.prices);

    let csv = Client::new()
        .get(format!("{}{path}", server().url))
        .header("accept", "text/csv")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let column: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(column, printed);
}

#[test]
fn trades_page_with_cursors() {
    let base = "/api/v1/trades?symbol=MSFT&start=2024-03-04&end=2024-03-05";
    let seen: Vec<u64> = paged(base, 250, "trades")
        .iter()
        .map(|t| t["trade_id"].as_u64().unwrap())
        .collect();
    assert!(seen.len() > 250);
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps, no repeats"
    );
}

#[test]
fn invalid_parameters_get_problem_details() {
    let cases = [
        (
            "/api/v1/candles?interval=1m&start=2024-03-01&end=2024-03-02",
            "missing_parameter",
            "symbol",
        ),
        (
            "/api/v1/candles?symbol=aapl&interval=1m&start=2024-03-01&end=2024-03-02",
            "invalid_symbol",
            "symbol",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=0m&start=2024-03-01&end=2024-03-02",
            "invalid_interval",
            "interval",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=yesterday&end=2024-03-02",
            "invalid_time",
            "start",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-02&end=2024-03-01",
            "invalid_range",
            "end",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&tz=Mars/Base",
            "invalid_tz",
            "tz",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&fill=zero",
            "invalid_fill",
            "fill",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&limit=0",
            "invalid_limit",
            "limit",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&limit=10001",
            "invalid_limit",
            "limit",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1s&start=2000-01-01&end=2024-03-02",
            "range_too_large",
            "end",
        ),
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&cursor=12",
            "invalid_cursor",
            "cursor",
        ),
        (
            "/api/v1/trades?symbol=AAPL&start=2024-03-01",
            "missing_parameter",
            "end",
        ),
    ];
    // Well-formed times outside the supported years are refused, naming them.
    for path in [
        "/api/v1/candles?symbol=AAPL&interval=1d&start=1500-01-01&end=2024-03-02",
        "/api/v1/trades?symbol=AAPL&start=2024-03-01&end=9999-01-01T00:00:00Z",
    ] {
        let (status, body) = problem(path);
        assert_eq!(
            (status, &body["code"]),
            (400, &serde_json::json!("invalid_time")),
            "{path}"
        );
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("the supported years 1998 to 2261")),
            "{path}: {body}"
        );
    }
    // Well-formed requests the server cannot serve are 422s; requests breaking the document
    // 400s.
    let unprocessable = ["invalid_range", "range_too_large", "invalid_cursor"];
    for (path, status, code, param) in [
        (
            "/api/v1/candles?symbol=AAPL&interval=1m&start=2024-03-01&end=2024-03-02&cursor=",
            400,
            "invalid_cursor",
            "cursor",
        ),
        (
            "/api/v1/trades?symbol=AAPL&start=2024-02-30&end=2024-03-02",
            422,
            "invalid_time",
            "start",
        ),
        (
            "/api/v1/trades?symbol=A%20B&start=2024-03-01&end=2024-03-02",
            400,
            "invalid_symbol",
            "symbol",
        ),
    ] {
        let (got, body) = problem(path);
        assert_eq!(
            (got, &body["code"], &body["param"]),
            (status, &serde_json::json!(code), &serde_json::json!(param)),
            "{path}"
        );
    }
    for (path, code, param) in cases {
        let (status, body) = problem(path);
        let want = if unprocessable.contains(&code) {
            422
        } else {
            400
        };
        assert_eq!(status, want, "{path}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert_eq!(body["param"], param, "{path}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[test]
fn stats_answer_the_librarys_numbers() {
    let store = ohlcv::store::parquet::ParquetStore::new(server()._dir.path());
    let want = serde_json::to_value(ohlcv::stats::report(&store, None).unwrap()).unwrap();
    let r = get("/api/v1/stats");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let got: serde_json::Value = r.json().unwrap();
    assert_eq!(got["load"], want["load"]);
    assert_eq!(got["complete"], true);
    let (got, want) = (
        got["symbols"].as_array().unwrap(),
        want["symbols"].as_array().unwrap(),
    );
    assert_eq!(got.len(), 3);
    for (got, want) in got.iter().zip(want) {
        let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (key, value) in want {
            // JSON text parsed back may differ from the f64 in the last ulp.
            match (value.as_f64(), got[key].as_f64()) {
                (Some(w), Some(g)) => {
                    assert!((w - g).abs() <= 1e-12 * w.abs(), "{key}: {g} vs {w}")
                }
                _ => assert_eq!(&got[key], value, "{key}"),
            }
        }
    }

    // Some symbols: their rows of the whole report, in the order asked.
    let some: serde_json::Value = get("/api/v1/stats?symbols=ZZ.B,AAPL").json().unwrap();
    let names: Vec<&str> = some["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ZZ.B", "AAPL"]);
    assert_eq!(
        some["symbols"][1],
        get("/api/v1/stats").json::<serde_json::Value>().unwrap()["symbols"][0]
    );

    let r = Client::new()
        .get(format!("{}/api/v1/stats?symbols=MSFT", server().url))
        .header("accept", "text/csv")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("symbol,sessions,trades,volume,volume_share,"));
    assert!(lines[1].starts_with("MSFT,"));
}

#[test]
fn stats_problems() {
    for (path, code) in [
        ("/api/v1/stats?symbols=aapl", "invalid_symbol"),
        ("/api/v1/stats?symbols=", "invalid_symbol"),
        ("/api/v1/stats?symbols=AAPL,,MSFT", "invalid_symbol"),
        ("/api/v1/stats?symbols=AAPL,NVDA", "unknown_symbol"),
    ] {
        let (status, body) = problem(path);
        let want = if code == "unknown_symbol" { 422 } else { 400 };
        assert_eq!(status, want, "{path}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert_eq!(body["param"], "symbols", "{path}: {body}");
    }
    let empty = start(tempfile::tempdir().unwrap());
    let r = Client::new()
        .get(format!("{}/api/v1/stats", empty.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "no_data");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever arrives in the query string, the answer is never a server error.
    #[test]
    fn random_query_strings_never_produce_a_5xx(
        path in prop_oneof![Just("/api/v1/candles"), Just("/api/v1/trades"), Just("/api/v1/symbols"), Just("/api/v1/stats")],
        query in "[a-z=&%0-9A-Z:+._/-]{0,80}",
        interval in prop_oneof![Just("1m"), Just("5s"), Just("1mo"), Just("x"), Just("")],
    ) {
        let url = format!("{}{path}?symbol=AAPL&start=2024-03-01&end=2024-03-05&interval={interval}&{query}", server().url);
        let status = Client::new().get(url).send().unwrap().status();
        prop_assert!(status.as_u16() < 500, "{status}");
    }
}

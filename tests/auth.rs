//! The API's bearer token: which routes need it, what a client without it gets, and that
//! `ohlcv serve` will not expose an unprotected API beyond loopback. Over real HTTP, in
//! process and as the `ohlcv` binary.

mod common;

use std::sync::Arc;

use common::process::{ServeProcess, ohlcv};
use ohlcv::api::{AppState, Auth, AuthScope, Settings};
use ohlcv::ingest::jobs::Jobs;
use ohlcv::secret::Secret;
use ohlcv::store::parquet::ParquetStore;
use reqwest::Method;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

const TOKEN: &str = "tok-8c1d-never-print-me";

/// Routes that change state, and `/api/config`.
const PROTECTED: [(&str, &str); 5] = [
    ("POST", "/api/v1/ingestions"),
    ("POST", "/api/v1/ingestions/1/cancel"),
    ("POST", "/api/start"),
    ("POST", "/api/stop"),
    ("GET", "/api/config"),
];

/// Routes that only read.
const READS: [&str; 13] = [
    "/",
    "/ready",
    "/metrics",
    "/api/v1/symbols",
    "/api/v1/candles?symbol=AAPL&interval=1d&start=2024-03-01&end=2024-03-08",
    "/api/v1/trades?symbol=AAPL&start=2024-03-01&end=2024-03-08",
    "/api/v1/stats",
    "/api/v1/ingestions",
    "/api/status",
    "/docs/",
    "/openapi.json",
    "/documentation/",
    "/documentation/json",
];

/// The API over an embedded store holding a small load, with `auth`.
fn serve(auth: Auth) -> (String, tokio::runtime::Runtime, tempfile::TempDir) {
    let (dir, _) = common::embedded(&common::small_config(1_000));
    let state = AppState::new(
        Arc::new(ParquetStore::new(dir.path())),
        Arc::new(Jobs::new(common::parquet_target(dir.path()))),
        common::load_defaults(common::small_config(1_000)),
        Settings {
            auth,
            ..Settings::default()
        },
    );
    let (url, runtime) = common::serve(state);
    (url, runtime, dir)
}

fn send(method: &str, url: &str, token: Option<&str>) -> Response {
    let mut request = Client::new().request(Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method == "POST" {
        request = request.json(&json!({}));
    }
    request.send().unwrap()
}

/// Asserts a 401 problem with the challenge RFC 6750 asks for.
fn assert_unauthorized(r: Response, challenge: &str, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(r.headers()["www-authenticate"], challenge, "{what}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().unwrap();
    assert_eq!(body["code"], "unauthorized", "{what}");
}

#[test]
fn every_protected_route_needs_the_token_and_reads_stay_open() {
    let (url, _rt, _dir) = serve(Auth::token(Secret::new(TOKEN), AuthScope::Writes));
    for (method, path) in PROTECTED {
        let what = format!("{method} {path}");
        assert_unauthorized(
            send(method, &format!("{url}{path}"), None),
            r#"Bearer realm="ohlcv""#,
            &what,
        );
        assert_unauthorized(
            send(
                method,
                &format!("{url}{path}"),
                Some("tok-8c1d-never-print-ma"),
            ),
            r#"Bearer realm="ohlcv", error="invalid_token""#,
            &what,
        );
    }
    // None of those started anything.
    let list: Value = send("GET", &format!("{url}/api/v1/ingestions"), None)
        .json()
        .unwrap();
    assert_eq!(list, json!({"ingestions": []}));
    for path in READS {
        let r = send("GET", &format!("{url}{path}"), None);
        assert_eq!(r.status(), 200, "{path}");
    }

    // With the token, each does its work.
    let with_token = |method, path: &str| send(method, &format!("{url}{path}"), Some(TOKEN));
    assert_eq!(with_token("POST", "/api/v1/ingestions").status(), 202);
    common::watch_to_the_end(&format!("{url}/api/v1/ingestions/1"));
    assert_eq!(
        with_token("POST", "/api/v1/ingestions/1/cancel").status(),
        409
    );
    assert_eq!(with_token("POST", "/api/start").status(), 202);
    common::watch_to_the_end(&format!("{url}/api/v1/ingestions/2"));
    assert_eq!(with_token("POST", "/api/stop").status(), 409);
    let config = with_token("GET", "/api/config");
    assert_eq!(config.status(), 200);
    assert!(!config.text().unwrap().contains(TOKEN));
}

#[test]
fn with_auth_all_every_route_but_health_needs_the_token() {
    let (url, _rt, _dir) = serve(Auth::token(Secret::new(TOKEN), AuthScope::All));
    assert_eq!(send("GET", &format!("{url}/health"), None).status(), 200);
    for path in READS {
        assert_unauthorized(
            send("GET", &format!("{url}{path}"), None),
            r#"Bearer realm="ohlcv""#,
            path,
        );
        assert_eq!(
            send("GET", &format!("{url}{path}"), Some(TOKEN)).status(),
            200,
            "{path}"
        );
    }
    for (method, path) in PROTECTED {
        assert_eq!(
            send(method, &format!("{url}{path}"), None).status(),
            401,
            "{path}"
        );
    }
}

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port().to_string();
    for (env, args) in [
        (vec![], vec!["--bind", "0.0.0.0"]),
        (vec![("OHLCV_BIND", "0.0.0.0")], vec![]),
    ] {
        let out = ohlcv(dir.path(), &env)
            .args(["serve", "--port", &port])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for needle in [
            "0.0.0.0",
            "OHLCV_API_TOKEN",
            "--api-token-file",
            "--allow-unauthenticated",
        ] {
            assert!(stderr.contains(needle), "{needle} missing from {stderr}");
        }
    }
    let out = ohlcv(dir.path(), &[("OHLCV_AUTH", "all")])
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--auth all")
    );

    // Told to, it serves, and warns that it is open.
    let open = ServeProcess::start(&[], &["--bind", "0.0.0.0", "--allow-unauthenticated"]);
    assert_eq!(
        send("POST", &format!("{}/api/stop", open.url), None).status(),
        409
    );
    let log = open.log();
    assert!(
        log.lines()
            .any(|l| l.contains(r#""level":"WARN""#) && l.contains("without an API token")),
        "{log}"
    );
}

#[test]
fn the_token_protects_a_public_address_and_never_appears_in_a_log_or_answer() {
    let server = ServeProcess::start(&[("OHLCV_API_TOKEN", TOKEN)], &["--bind", "0.0.0.0"]);
    let url = &server.url;
    let mut answers = String::new();
    for token in [None, Some("wrong"), Some(TOKEN)] {
        for (method, path) in PROTECTED {
            let r = send(method, &format!("{url}{path}"), token);
            answers.push_str(&format!("{:?}", r.headers()));
            answers.push_str(&r.text().unwrap());
        }
    }
    assert!(answers.contains("unauthorized"));
    assert!(!answers.contains(TOKEN), "{answers}");
    let log = server.log();
    assert!(log.contains(r#""auth":"bearer token""#), "{log}");
    assert!(log.contains(r#""status":401"#), "{log}");
    assert!(!log.contains(TOKEN), "{log}");

    // From a file, trimmed; an empty one is refused.
    let file = server.dir().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = ServeProcess::start(&[], &["--api-token-file", file.to_str().unwrap()]);
    let stop = |token| {
        send("POST", &format!("{}/api/stop", from_file.url), token)
            .status()
            .as_u16()
    };
    assert_eq!((stop(None), stop(Some(TOKEN))), (401, 409));
    std::fs::write(&file, "\n").unwrap();
    let out = ohlcv(server.dir(), &[])
        .args(["serve", "--api-token-file", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(stderr.contains("is empty"), "{stderr}");
}

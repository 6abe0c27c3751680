//! Bounded resources (OWASP API4): connections that never finish a request head, or sit idle,
//! are closed; the number held at once is capped; the ingestion history is bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::process::ServeProcess;

/// The soft limit on open files of this process (and of the server it starts, which inherits
/// it), from /proc; 1024, the usual default, where that cannot be read.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

/// Reads `stream` to its end: true once the server has closed it (end of file or a reset),
/// false if it is still open at the deadline.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn half_sent_request_heads_are_closed_after_the_header_timeout_while_health_answers() {
    // Thousands, as many as the descriptor limit leaves room for on each side.
    let count = 2_000.min(open_files_limit().saturating_sub(200));
    let cap = (count + 100).to_string();
    // The idle timeout is far away, so it is the header timeout that closes them.
    let server = ServeProcess::start(
        &[("OHLCV_HEADER_TIMEOUT_SECS", "1")],
        &["--idle-timeout-secs", "3600", "--max-connections", &cap],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut held: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */")
                .unwrap();
            s
        })
        .collect();

    let health = reqwest::blocking::get(format!("{}/health", server.url)).unwrap();
    assert_eq!(health.status(), 200);

    let mut open = 0;
    for s in &mut held {
        if !closed_by_server(s) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "of {count} half-sent request heads");
    let health = reqwest::blocking::get(format!("{}/health", server.url)).unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn connections_that_send_nothing_or_idle_after_a_request_are_closed_after_the_idle_timeout() {
    // The header timeout is far away, so it is the idle timeout that closes them.
    let server = ServeProcess::start(
        &[("OHLCV_IDLE_TIMEOUT_SECS", "1")],
        &["--header-timeout-secs", "300"],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut silent = TcpStream::connect(&addr).unwrap();

    let mut kept_alive = TcpStream::connect(&addr).unwrap();
    kept_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    // Until the response's body: `{"status":"ok"}` ends it.
    let mut response = Vec::new();
    let mut buf = [0; 1024];
    kept_alive.set_read_timeout(Some(common::DEADLINE)).unwrap();
    while !response.ends_with(b"}") {
        let n = kept_alive.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response ended");
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");

    assert!(
        closed_by_server(&mut silent),
        "a connection that sent nothing"
    );
    assert!(
        closed_by_server(&mut kept_alive),
        "an idle keep-alive connection"
    );
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = ServeProcess::start(&[], &["--max-connections", "1", "--idle-timeout-secs", "1"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    // Holds the only connection until the idle timeout closes it.
    let mut first = TcpStream::connect(&addr).unwrap();
    // Queued in the backlog meanwhile, then served.
    let health = reqwest::blocking::get(format!("{}/health", server.url)).unwrap();
    assert_eq!(health.status(), 200);
    assert!(closed_by_server(&mut first));
}

#[test]
fn the_ingestion_history_keeps_the_latest_jobs() {
    let server = ServeProcess::start(&[], &["--ingestion-history", "2"]);
    let client = reqwest::blocking::Client::new();
    let body = serde_json::json!({
        "trades": 1000, "symbols": ["AAPL"], "start": "2024-01-02", "end": "2024-01-05",
    });
    for id in 1..=3 {
        let r = client
            .post(format!("{}/api/v1/ingestions", server.url))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().unwrap());
        let done = common::watch_to_the_end(&format!("{}/api/v1/ingestions/{id}", server.url));
        assert_eq!(done["state"], "completed", "{done}");
    }
    let list: serde_json::Value = client
        .get(format!("{}/api/v1/ingestions", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<u64> = list["ingestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3]);
    let gone = client
        .get(format!("{}/api/v1/ingestions/1", server.url))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[test]
fn limits_out_of_range_are_refused_naming_the_flag() {
    for (flag, value) in [
        ("--header-timeout-secs", "0"),
        ("--header-timeout-secs", "301"),
        ("--idle-timeout-secs", "0"),
        ("--max-connections", "0"),
        ("--ingestion-history", "0"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = common::process::ohlcv(dir.path(), &[])
            .args(["serve", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

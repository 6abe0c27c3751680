//! A local HTTP sink that accepts InfluxDB writes (`/api/v2/write`, `/write`) and discards
//! them, to measure the client alone: `cargo run --release --example sink -- 127.0.0.1:9999`.
//! It answers `/health` and `/ping` too, `/query` with an empty result (so a load finds no
//! earlier load, and no other load's claim, there), and prints bodies and bytes received
//! every 5 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn discard(State(c): State<Arc<Counters>>, body: Bytes) -> StatusCode {
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// InfluxQL's answer to a query that matched nothing.
async fn empty_result() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"results":[{"statement_id":0}]}"#,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/api/v2/write", post(discard))
        .route("/write", post(discard))
        .route("/health", get(|| async { "{\"status\":\"pass\"}" }))
        .route("/ping", get(|| async { StatusCode::NO_CONTENT }))
        .route("/query", post(empty_result).get(empty_result))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("sink listening on http://{addr}");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            eprintln!(
                "requests {} bytes {}",
                counters.requests.load(Ordering::Relaxed),
                counters.bytes.load(Ordering::Relaxed)
            );
        }
    });
    axum::serve(listener, app).await.expect("serve");
}

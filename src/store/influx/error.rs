//! What can go wrong talking to InfluxDB, and which [`StoreError`] kind each failure is.

use std::time::Duration;

use serde::Deserialize;

use crate::store::{Backend, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("invalid InfluxDB URL {0:?}: expected http:// or https://")]
    Url(String),
    #[error(
        "InfluxDB rejected the credentials (HTTP {0}): check INFLUXDB_TOKEN (or INFLUXDB_USERNAME/INFLUXDB_PASSWORD) and its permissions"
    )]
    Credentials(u16),
    #[error("InfluxDB has no {0}: run `ohlcv influx setup` first")]
    NotFound(String),
    #[error("InfluxDB rejected a line (HTTP 400): {0}")]
    BadLine(String),
    #[error("InfluxDB dropped {dropped} points of a batch (partial write): {message}")]
    PartialWrite { dropped: u64, message: String },
    #[error("a single line is larger than the server's request size limit")]
    LineTooLarge,
    #[error("InfluxDB answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    #[error("InfluxDB is unreachable: {0}")]
    Unreachable(String),
    #[error("unexpected answer from InfluxDB: {0}")]
    Protocol(String),
    #[error("InfluxDB kept failing for {0:?} of retries")]
    RetriesExhausted(Duration),
}

pub type Result<T, E = InfluxError> = std::result::Result<T, E>;

impl From<InfluxError> for StoreError {
    fn from(e: InfluxError) -> Self {
        match e {
            InfluxError::Credentials(_) => StoreError::Unauthorized(e.into()),
            InfluxError::NotFound(_) => StoreError::Missing(e.into()),
            // A URL that is not http(s) names no server we can reach.
            InfluxError::Url(_)
            | InfluxError::Unreachable(_)
            | InfluxError::RetriesExhausted(_)
            | InfluxError::Server { .. } => StoreError::Unavailable(e.into()),
            InfluxError::BadLine(_)
            | InfluxError::PartialWrite { .. }
            | InfluxError::LineTooLarge => StoreError::Rejected(e.into()),
            InfluxError::Protocol(_) => StoreError::Corrupt(Backend::Influx(e)),
        }
    }
}

/// An HTTP failure without the URL (which reqwest would print).
pub fn transport_error(e: reqwest::Error) -> InfluxError {
    InfluxError::Unreachable(e.without_url().to_string())
}

/// The message of an InfluxDB error body: v2 `{"code","message"}`, v1 `{"error"}`, or text.
pub fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct V2 {
        message: Option<String>,
        error: Option<String>,
    }
    let text = match serde_json::from_str::<V2>(body) {
        Ok(V2 {
            message: Some(m), ..
        })
        | Ok(V2 { error: Some(m), .. }) => m,
        _ => body.trim().to_string(),
    };
    // Long bodies (a whole rejected batch) are cut: the first offending line is enough.
    text.chars().take(600).collect()
}

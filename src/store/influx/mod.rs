//! InfluxDB as a store: setup, the write endpoint's semantics, and the [`Store`](crate::store::Store) read side,
//! in InfluxQL (`/query`, served by InfluxDB 1.x, by 2.x through its v1 compatibility API and
//! by 3.x) or in Flux (`/api/v2/query`, served by 2.x and 1.8+).
//!
//! Credentials are [`Secret`]s: they go into an `Authorization` header and nowhere else, never
//! into a URL, a log line, an error or any output.

mod flux;
pub mod line_protocol;
mod query;

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

pub use query::InfluxStore;

/// A credential. Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which HTTP API to write and set up through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `/api/v2/write` with org and bucket (InfluxDB 2.x, 3.x).
    V2,
    /// `/write` with a database (InfluxDB 1.x, and the v1 compatibility API of 2.x and 3.x).
    V1,
}

/// Which query language reads go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QueryLanguage {
    /// InfluxQL through `/query`: InfluxDB 1.x, 2.x (v1 compatibility) and 3.x.
    Influxql,
    /// Flux through `/api/v2/query`: InfluxDB 2.x and 1.8+.
    Flux,
}

#[derive(Debug, Clone)]
pub struct InfluxConfig {
    pub url: reqwest::Url,
    pub api: Api,
    pub token: Option<Secret>,
    pub org: String,
    pub bucket: String,
    /// v1: the database; defaults to the bucket's name (2.4+ maps a bucket to a database).
    pub database: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub retention_days: u32,
    pub query_language: QueryLanguage,
}

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("invalid InfluxDB URL {0:?}: expected http:// or https://")]
    Url(String),
    #[error("cannot read the token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
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

/// What a write response means for the batch.
#[derive(Debug)]
pub enum WriteOutcome {
    Written,
    /// Transient: try again, after the server's `Retry-After` if it gave one.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// 413: the body is over the server's limit; split it.
    TooLarge,
    Fatal(InfluxError),
}

/// Reads `Retry-After` as whole seconds (the form InfluxDB sends).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Classifies a write response by the documented status codes of `/api/v2/write` and `/write`.
pub fn classify_write(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    target: &str,
) -> WriteOutcome {
    let message = || error_message(body);
    match status.as_u16() {
        200..=299 => WriteOutcome::Written,
        400 => {
            let m = message();
            // InfluxDB 1.x reports partial writes as 400 with "partial write ... dropped=N".
            match dropped_count(&m) {
                Some(dropped) => WriteOutcome::Fatal(InfluxError::PartialWrite {
                    dropped,
                    message: m,
                }),
                None => WriteOutcome::Fatal(InfluxError::BadLine(m)),
            }
        }
        401 | 403 => WriteOutcome::Fatal(InfluxError::Credentials(status.as_u16())),
        404 => WriteOutcome::Fatal(InfluxError::NotFound(target.to_string())),
        413 => WriteOutcome::TooLarge,
        422 => {
            let m = message();
            WriteOutcome::Fatal(InfluxError::PartialWrite {
                dropped: dropped_count(&m).unwrap_or(0),
                message: m,
            })
        }
        429 | 503 => WriteOutcome::Retry {
            after: retry_after(headers),
            reason: format!("HTTP {}", status.as_u16()),
        },
        500..=599 => WriteOutcome::Retry {
            after: None,
            reason: format!("HTTP {}: {}", status.as_u16(), message()),
        },
        other => WriteOutcome::Fatal(InfluxError::Server {
            status: other,
            message: message(),
        }),
    }
}

fn dropped_count(message: &str) -> Option<u64> {
    let at = message.find("dropped=")? + "dropped=".len();
    let digits: String = message[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

impl InfluxConfig {
    pub fn parse_url(url: &str) -> Result<reqwest::Url> {
        reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| InfluxError::Url(url.to_string()))
    }

    /// Where the data goes, as said in messages and checkpoints (no credentials).
    pub fn target(&self) -> String {
        match self.api {
            Api::V2 => format!("{} org {} bucket {}", self.url, self.org, self.bucket),
            Api::V1 => format!("{} database {}", self.url, self.database),
        }
    }

    /// The thing a 404 means is missing.
    pub fn missing_target(&self) -> String {
        match self.api {
            Api::V2 => format!("bucket {:?} in org {:?}", self.bucket, self.org),
            Api::V1 => format!("database {:?}", self.database),
        }
    }

    pub fn auth_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = if let Some(token) = &self.token {
            Some(format!("Token {}", token.expose()))
        } else if let (Some(user), Some(password)) = (&self.username, &self.password) {
            use base64::Engine;
            let pair = format!("{user}:{}", password.expose());
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            let mut v = v;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        headers
    }

    pub fn write_url(&self) -> reqwest::Url {
        let mut url = self.url.clone();
        match self.api {
            Api::V2 => {
                url.set_path(&join_path(self.url.path(), "api/v2/write"));
                url.query_pairs_mut()
                    .append_pair("org", &self.org)
                    .append_pair("bucket", &self.bucket)
                    .append_pair("precision", "ns");
            }
            Api::V1 => {
                url.set_path(&join_path(self.url.path(), "write"));
                url.query_pairs_mut()
                    .append_pair("db", &self.database)
                    .append_pair("precision", "ns");
            }
        }
        url
    }

    pub fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.url.clone();
        url.set_path(&join_path(self.url.path(), path));
        url
    }

    /// `/health` on 2.x, `/ping` on 1.x: answers when the server can take writes again.
    pub fn health_url(&self) -> reqwest::Url {
        self.endpoint(match self.api {
            Api::V2 => "health",
            Api::V1 => "ping",
        })
    }
}

fn join_path(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path)
}

/// Deletes every trade, candle and manifest point of the target (for `load --replace`).
pub fn clear(config: &InfluxConfig) -> Result<()> {
    let client = blocking_client()?;
    let measurements = [
        line_protocol::TRADE,
        line_protocol::CANDLE,
        line_protocol::MANIFEST,
        line_protocol::SHARD,
    ];
    match config.api {
        Api::V1 => {
            let q: Vec<String> = measurements
                .iter()
                .map(|m| format!("DROP MEASUREMENT {}", quote_ident(m)))
                .collect();
            influxql(&client, config, &q.join("; "), Some(&config.database))?;
        }
        Api::V2 => {
            for m in measurements {
                let mut url = config.endpoint("api/v2/delete");
                url.query_pairs_mut()
                    .append_pair("org", &config.org)
                    .append_pair("bucket", &config.bucket);
                let body = serde_json::json!({
                    "start": "1677-09-21T00:12:43.145224194Z",
                    "stop": "2262-04-11T23:47:16.854775806Z",
                    "predicate": format!("_measurement=\"{m}\""),
                });
                let response = client
                    .post(url)
                    .headers(config.auth_headers())
                    .json(&body)
                    .send()
                    .map_err(transport_error)?;
                check(response, &config.missing_target())?;
            }
        }
    }
    Ok(())
}

/// What `ohlcv influx setup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    Created,
    Exists,
    /// It exists, but keeps data for this many days rather than the configured retention.
    RetentionDiffers {
        existing_days: Option<u64>,
    },
}

/// Creates the bucket (v2) or database with a retention policy (v1) if missing. Idempotent.
pub fn setup(config: &InfluxConfig) -> Result<SetupOutcome> {
    let client = blocking_client()?;
    let wanted = config.retention_days as u64 * 86_400;
    match config.api {
        Api::V2 => {
            let mut url = config.endpoint("api/v2/buckets");
            url.query_pairs_mut()
                .append_pair("org", &config.org)
                .append_pair("name", &config.bucket);
            let found: serde_json::Value = get_json(&client, config, url)?;
            if let Some(bucket) = found["buckets"].as_array().and_then(|b| b.first()) {
                let existing = bucket["retentionRules"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["type"] == "expire"))
                    .and_then(|r| r["everySeconds"].as_u64())
                    .unwrap_or(0);
                return Ok(if existing == wanted {
                    SetupOutcome::Exists
                } else {
                    SetupOutcome::RetentionDiffers {
                        existing_days: (existing > 0).then_some(existing / 86_400),
                    }
                });
            }
            let mut url = config.endpoint("api/v2/orgs");
            url.query_pairs_mut().append_pair("org", &config.org);
            let orgs: serde_json::Value = get_json(&client, config, url).map_err(|e| match e {
                InfluxError::NotFound(_) => InfluxError::NotFound(format!("org {:?}", config.org)),
                e => e,
            })?;
            let org_id = orgs["orgs"]
                .as_array()
                .and_then(|o| o.first())
                .and_then(|o| o["id"].as_str())
                .ok_or_else(|| InfluxError::NotFound(format!("org {:?}", config.org)))?;
            let body = serde_json::json!({
                "orgID": org_id,
                "name": config.bucket,
                "retentionRules": [{"type": "expire", "everySeconds": wanted}],
            });
            let response = client
                .post(config.endpoint("api/v2/buckets"))
                .headers(config.auth_headers())
                .json(&body)
                .send()
                .map_err(transport_error)?;
            check(response, &config.missing_target())?;
            Ok(SetupOutcome::Created)
        }
        Api::V1 => {
            let db = &config.database;
            let databases = influxql(&client, config, "SHOW DATABASES", None)?;
            let exists = databases
                .iter()
                .any(|row| row.first().and_then(|v| v.as_str()) == Some(db.as_str()));
            if !exists {
                let q = format!(
                    "CREATE DATABASE {} WITH DURATION {}d REPLICATION 1 NAME \"ohlcv\"",
                    quote_ident(db),
                    config.retention_days
                );
                influxql(&client, config, &q, None)?;
                return Ok(SetupOutcome::Created);
            }
            let policies = influxql(
                &client,
                config,
                &format!("SHOW RETENTION POLICIES ON {}", quote_ident(db)),
                None,
            )?;
            // Columns: name, duration, shardGroupDuration, replicaN, default.
            let default = policies
                .iter()
                .find(|row| row.get(4).and_then(|v| v.as_bool()) == Some(true));
            let days = default
                .and_then(|row| row.get(1))
                .and_then(|v| v.as_str())
                .and_then(parse_influx_duration_hours)
                .map(|h| h / 24);
            Ok(if days == Some(config.retention_days as u64) {
                SetupOutcome::Exists
            } else {
                SetupOutcome::RetentionDiffers {
                    existing_days: days.filter(|d| *d > 0),
                }
            })
        }
    }
}

/// Parses InfluxDB's `87600h0m0s` (or `0s` for infinite) into whole hours.
fn parse_influx_duration_hours(s: &str) -> Option<u64> {
    if s == "0s" {
        return Some(0);
    }
    s.split_once('h')?.0.parse().ok()
}

/// An InfluxQL identifier in double quotes.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn blocking_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(transport_error)
}

fn check(
    response: reqwest::blocking::Response,
    target: &str,
) -> Result<reqwest::blocking::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().unwrap_or_default();
    Err(match status.as_u16() {
        401 | 403 => InfluxError::Credentials(status.as_u16()),
        404 => InfluxError::NotFound(target.to_string()),
        s => InfluxError::Server {
            status: s,
            message: error_message(&body),
        },
    })
}

fn get_json(
    client: &reqwest::blocking::Client,
    config: &InfluxConfig,
    url: reqwest::Url,
) -> Result<serde_json::Value> {
    let response = client
        .get(url)
        .headers(config.auth_headers())
        .send()
        .map_err(transport_error)?;
    let response = check(response, &config.missing_target())?;
    let text = response.text().map_err(transport_error)?;
    serde_json::from_str(&text).map_err(|e| InfluxError::Protocol(e.to_string()))
}

/// Runs InfluxQL statements through `/query` and returns the rows of every series of every
/// result, in order (`epoch=ns`, chunked so large results stream).
pub(crate) fn influxql(
    client: &reqwest::blocking::Client,
    config: &InfluxConfig,
    q: &str,
    db: Option<&str>,
) -> Result<Vec<Vec<serde_json::Value>>> {
    let mut out = Vec::new();
    influxql_each(client, config, q, db, |_, rows| out.extend(rows))?;
    Ok(out)
}

/// Like [`influxql`], calling `each(statement_id, rows)` per chunk of rows.
pub(crate) fn influxql_each(
    client: &reqwest::blocking::Client,
    config: &InfluxConfig,
    q: &str,
    db: Option<&str>,
    mut each: impl FnMut(usize, Vec<Vec<serde_json::Value>>),
) -> Result<()> {
    let mut url = config.endpoint("query");
    {
        let mut pairs = url.query_pairs_mut();
        pairs
            .append_pair("epoch", "ns")
            .append_pair("chunked", "true")
            .append_pair("chunk_size", "20000");
        if let Some(db) = db {
            pairs.append_pair("db", db);
        }
    }
    let response = client
        .post(url)
        .headers(config.auth_headers())
        .form(&[("q", q)])
        .send()
        .map_err(transport_error)?;
    let response = check(response, &config.missing_target())?;
    let reader = std::io::BufReader::new(response);
    for value in serde_json::Deserializer::from_reader(reader).into_iter::<serde_json::Value>() {
        let value = value.map_err(|e| InfluxError::Protocol(e.to_string()))?;
        if let Some(error) = value["error"].as_str() {
            return Err(InfluxError::Server {
                status: 200,
                message: error.chars().take(600).collect(),
            });
        }
        for result in value["results"].as_array().into_iter().flatten() {
            if let Some(error) = result["error"].as_str() {
                return Err(InfluxError::Server {
                    status: 200,
                    message: error.chars().take(600).collect(),
                });
            }
            let id = result["statement_id"].as_u64().unwrap_or(0) as usize;
            for series in result["series"].as_array().into_iter().flatten() {
                let rows = series["values"]
                    .as_array()
                    .map(|v| v.iter().filter_map(|r| r.as_array().cloned()).collect())
                    .unwrap_or_default();
                each(id, rows);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api: Api) -> InfluxConfig {
        InfluxConfig {
            url: InfluxConfig::parse_url("http://127.0.0.1:8086/prefix/").unwrap(),
            api,
            token: Some(Secret::new("s3cr3t-token")),
            org: "ohlcv poc".into(),
            bucket: "trades".into(),
            database: "trades".into(),
            username: None,
            password: None,
            retention_days: 3650,
            query_language: QueryLanguage::Influxql,
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = config(Api::V2);
        let shown = format!("{c:?} {} {}", c.target(), c.write_url());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let auth = c.auth_headers();
        assert!(!format!("{auth:?}").contains("s3cr3t"));
        assert_eq!(
            auth["authorization"].to_str().unwrap(),
            "Token s3cr3t-token"
        );
    }

    #[test]
    fn urls_carry_org_bucket_and_precision() {
        assert_eq!(
            config(Api::V2).write_url().as_str(),
            "http://127.0.0.1:8086/prefix/api/v2/write?org=ohlcv+poc&bucket=trades&precision=ns"
        );
        assert_eq!(
            config(Api::V1).write_url().as_str(),
            "http://127.0.0.1:8086/prefix/write?db=trades&precision=ns"
        );
        assert!(InfluxConfig::parse_url("ftp://x").is_err());
        assert!(InfluxConfig::parse_url("localhost:8086").is_err());
    }

    #[test]
    fn responses_are_classified_by_the_documented_codes() {
        let h = HeaderMap::new();
        let mut with_retry = HeaderMap::new();
        with_retry.insert("retry-after", HeaderValue::from_static("7"));
        let c = |code: u16, headers: &HeaderMap, body: &str| {
            classify_write(StatusCode::from_u16(code).unwrap(), headers, body, "bucket")
        };
        assert!(matches!(c(204, &h, ""), WriteOutcome::Written));
        assert!(
            matches!(c(429, &with_retry, ""), WriteOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(
            c(503, &h, ""),
            WriteOutcome::Retry { after: None, .. }
        ));
        assert!(matches!(c(500, &h, "{}"), WriteOutcome::Retry { .. }));
        assert!(matches!(c(413, &h, ""), WriteOutcome::TooLarge));
        assert!(matches!(
            c(401, &h, ""),
            WriteOutcome::Fatal(InfluxError::Credentials(401))
        ));
        assert!(matches!(
            c(404, &h, ""),
            WriteOutcome::Fatal(InfluxError::NotFound(_))
        ));
        match c(
            400,
            &h,
            r#"{"code":"invalid","message":"unable to parse 'bad line': missing fields"}"#,
        ) {
            WriteOutcome::Fatal(InfluxError::BadLine(m)) => assert!(m.contains("bad line")),
            o => panic!("{o:?}"),
        }
        match c(
            400,
            &h,
            r#"{"error":"partial write: unable to parse 'x': missing fields dropped=3"}"#,
        ) {
            WriteOutcome::Fatal(InfluxError::PartialWrite { dropped: 3, .. }) => {}
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            c(
                422,
                &h,
                r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=2"}"#
            ),
            WriteOutcome::Fatal(InfluxError::PartialWrite { dropped: 2, .. })
        ));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_influx_duration_hours("87600h0m0s"), Some(87600));
        assert_eq!(parse_influx_duration_hours("0s"), Some(0));
        assert_eq!(quote_ident(r#"a"b"#), r#""a\"b""#);
    }
}

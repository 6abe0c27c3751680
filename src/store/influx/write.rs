//! Writing line protocol to InfluxDB, as InfluxData's official clients do: batches sent by
//! concurrent writers sharing one keep-alive client, classified by the documented status codes
//! of `/api/v2/write` and `/write` ([`classify_write`]):
//!
//! - 429 and 503 wait for `Retry-After` (whole seconds); other 5xx and connection errors back
//!   off exponentially with jitter ([`RetryPolicy`]) up to the retry time budget;
//! - 413 splits the batch at a line boundary and sends both halves;
//! - 400, 401, 403, 404 and 422 fail the batch with a clear error;
//! - after `breaker_threshold` consecutive failures every writer pauses until `/health` (v2) or
//!   `/ping` (v1) answers again.
//!
//! Writing the same batch twice is safe: the same points (measurement, tags, timestamp) are
//! overwritten, not duplicated.

use std::io::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Serialize;

use super::{InfluxConfig, InfluxError, Precision, Result, error_message, transport_error};

/// Exponential backoff with jitter. The defaults are those of InfluxData's official client
/// libraries (first retry after 5 s, base 2, at most 125 s between tries, 180 s in all).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub interval: Duration,
    pub base: f64,
    pub max_delay: Duration,
    pub max_time: Duration,
    pub jitter: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            base: 2.0,
            max_delay: Duration::from_secs(125),
            max_time: Duration::from_secs(180),
            jitter: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (0-based): `interval · base^attempt`, capped, drawn
    /// uniformly from its upper half plus up to `jitter`, so writers do not retry in lockstep.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let full = self.interval.as_secs_f64() * self.base.powi(attempt.min(30) as i32);
        let capped = full.min(self.max_delay.as_secs_f64());
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(capped * (0.5 + 0.5 * unit) + self.jitter.as_secs_f64() * unit)
    }
}

/// How batches are cut and sent.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub batch_lines: usize,
    pub batch_bytes: usize,
    pub writers: usize,
    pub gzip: bool,
    /// The unit of the trades' and candles' timestamps; a load's bookkeeping points are
    /// always written in nanoseconds.
    pub precision: Precision,
    pub retry: RetryPolicy,
    /// Consecutive failed requests that pause every writer until the server answers health
    /// checks again.
    pub breaker_threshold: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            batch_lines: 10_000,
            batch_bytes: 4 * 1024 * 1024,
            writers: 2,
            gzip: false,
            precision: Precision::Ns,
            retry: RetryPolicy::default(),
            breaker_threshold: 5,
        }
    }
}

/// Counters of the write path, live while a load runs.
#[derive(Debug, Default)]
pub struct BatchStats {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub split: AtomicU64,
    pub bytes_raw: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub in_flight: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BatchSummary {
    pub batches: u64,
    pub retried: u64,
    pub failed: u64,
    pub split: u64,
    pub bytes_raw: u64,
    pub bytes_sent: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

impl BatchStats {
    fn latencies(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        // A panicking writer leaves whole numbers behind: the list stays usable.
        self.latencies_us.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        self.latencies().push(us);
    }

    pub fn summary(&self) -> BatchSummary {
        let mut l = self.latencies().clone();
        l.sort_unstable();
        let pct = |p: f64| {
            let at = (l.len().saturating_sub(1) as f64 * p).round() as usize;
            l.get(at).map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        BatchSummary {
            batches: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            split: self.split.load(Ordering::Relaxed),
            bytes_raw: self.bytes_raw.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            latency_ms_p50: pct(0.5),
            latency_ms_p90: pct(0.9),
            latency_ms_p99: pct(0.99),
            latency_ms_max: pct(1.0),
        }
    }
}

/// A body of line protocol, gzipped or not, ready to send.
#[derive(Debug, Clone)]
pub struct Batch {
    body: Bytes,
    gzipped: bool,
    raw_len: usize,
}

impl Batch {
    pub fn new(raw: Vec<u8>, gzip_it: bool) -> Self {
        let raw_len = raw.len();
        // Compressing into a Vec cannot fail; were it to, the batch goes out uncompressed.
        let (body, gzipped) = match gzip_it.then(|| gzip(&raw)).flatten() {
            Some(compressed) => (compressed, true),
            None => (raw, false),
        };
        Self {
            body: Bytes::from(body),
            gzipped,
            raw_len,
        }
    }

    /// The line protocol itself; `None` only if our own gzip output does not decompress.
    fn raw(&self) -> Option<Vec<u8>> {
        if self.gzipped {
            gunzip(&self.body)
        } else {
            Some(self.body.to_vec())
        }
    }
}

fn gzip(raw: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(raw).ok()?;
    enc.finish().ok()
}

fn gunzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Splits line protocol at the line boundary nearest the middle; `None` for a single line.
fn split_lines(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let mid = raw.len() / 2;
    let (head, tail) = raw.split_at(mid);
    let cut = head.iter().rposition(|b| *b == b'\n').or_else(|| {
        tail.iter()
            .take(tail.len().saturating_sub(1))
            .position(|b| *b == b'\n')
            .map(|p| p + mid)
    })?;
    Some(raw.split_at(cut + 1))
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

/// Classifies a write response by the documented status codes of `/api/v2/write` and `/write`;
/// `target` names what a 404 means is missing.
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

/// Pauses every writer after repeated failures until the server answers health checks.
#[derive(Debug)]
struct Breaker {
    failures: AtomicU32,
    threshold: u32,
    probe: tokio::sync::Mutex<()>,
}

/// Sends batches to one target. Clones share the HTTP client, the statistics and the breaker,
/// so a pool of writers pauses together.
#[derive(Debug, Clone)]
pub struct Writer {
    client: reqwest::Client,
    config: Arc<InfluxConfig>,
    url: reqwest::Url,
    retry: RetryPolicy,
    stats: Arc<BatchStats>,
    breaker: Arc<Breaker>,
}

enum Sent {
    Done,
    TooLarge,
}

impl Writer {
    pub fn new(
        config: &InfluxConfig,
        options: &WriteOptions,
        stats: Arc<BatchStats>,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(options.writers)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(transport_error)?;
        Ok(Self {
            client,
            url: config.write_url(options.precision),
            config: Arc::new(config.clone()),
            retry: options.retry,
            stats,
            breaker: Arc::new(Breaker {
                failures: AtomicU32::new(0),
                threshold: options.breaker_threshold.max(1),
                probe: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Writes one batch, splitting it on 413, retrying transient failures.
    pub async fn write(&self, batch: &Batch, rng: &mut impl Rng) -> Result<()> {
        let mut parts = vec![batch.clone()];
        while let Some(part) = parts.pop() {
            match self.send(&part, rng).await? {
                Sent::Done => {
                    self.stats
                        .bytes_raw
                        .fetch_add(part.raw_len as u64, Ordering::Relaxed);
                    self.stats
                        .bytes_sent
                        .fetch_add(part.body.len() as u64, Ordering::Relaxed);
                }
                Sent::TooLarge => {
                    let raw = part.raw().ok_or_else(|| {
                        InfluxError::Protocol("a compressed batch does not decompress".into())
                    })?;
                    // A single line cannot be split: it cannot be sent.
                    let (a, b) = split_lines(&raw).ok_or(InfluxError::LineTooLarge)?;
                    self.stats.split.fetch_add(1, Ordering::Relaxed);
                    parts.push(Batch::new(b.to_vec(), part.gzipped));
                    parts.push(Batch::new(a.to_vec(), part.gzipped));
                }
            }
        }
        Ok(())
    }

    /// Waits while the breaker is open; returns how long it waited.
    async fn wait_closed(&self) -> Duration {
        let breaker = &self.breaker;
        if breaker.failures.load(Ordering::Relaxed) < breaker.threshold {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let _probe = breaker.probe.lock().await;
        let mut logged = false;
        while breaker.failures.load(Ordering::Relaxed) >= breaker.threshold {
            if !logged {
                tracing::warn!(target = %self.config.target(), "writes paused after repeated failures; waiting for the server's health check");
                logged = true;
            }
            let healthy = self
                .client
                .get(self.config.health_url())
                .headers(self.config.auth_headers())
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                tracing::info!("server healthy again; writes resume");
                breaker.failures.store(0, Ordering::Relaxed);
            } else {
                tokio::time::sleep(self.retry.interval).await;
            }
        }
        started.elapsed()
    }

    async fn send(&self, batch: &Batch, rng: &mut impl Rng) -> Result<Sent> {
        let mut attempt = 0;
        let mut budget_start = Instant::now();
        loop {
            // Time paused by the breaker does not count against the retry budget.
            budget_start += self.wait_closed().await;
            let mut request = self
                .client
                .post(self.url.clone())
                .headers(self.config.auth_headers())
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(batch.body.clone());
            if batch.gzipped {
                request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = match request.send().await {
                Ok(r) => {
                    let (status, headers) = (r.status(), r.headers().clone());
                    let text = r.text().await.unwrap_or_default();
                    classify_write(status, &headers, &text, &self.config.missing_target())
                }
                Err(e) => WriteOutcome::Retry {
                    after: None,
                    reason: transport_error(e).to_string(),
                },
            };
            self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                WriteOutcome::Written => {
                    self.stats.record(started.elapsed());
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    self.breaker.failures.store(0, Ordering::Relaxed);
                    return Ok(Sent::Done);
                }
                WriteOutcome::TooLarge => return Ok(Sent::TooLarge),
                WriteOutcome::Fatal(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                WriteOutcome::Retry { after, reason } => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    self.breaker.failures.fetch_add(1, Ordering::Relaxed);
                    let delay = after.unwrap_or_else(|| self.retry.delay(attempt, rng));
                    if budget_start.elapsed() + delay > self.retry.max_time {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        return Err(InfluxError::RetriesExhausted(self.retry.max_time));
                    }
                    tracing::warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, attempt, "write failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

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
}

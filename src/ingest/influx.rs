//! The InfluxDB write pipeline.
//!
//! ```text
//! generator threads ──(bounded channel of encoded, optionally gzipped batches)──► writer tasks ──► InfluxDB
//!  chunk → lines                                                                  retry, split, breaker
//!                                      acknowledgements ──► chunk tracker ──► checkpoint file
//! ```
//!
//! - Generator threads take (symbol, session) chunks in turn and encode their trades and
//!   1-minute candles into batches bounded by lines and by bytes; the channel holds at most
//!   `2 × writers` batches, so memory is bounded whatever N is (backpressure).
//! - Writer tasks share one keep-alive HTTP client. A response is classified by its status
//!   ([`classify_write`]): 429/503 wait for `Retry-After`, other 5xx and connection errors back
//!   off exponentially with jitter up to the retry time budget, 413 splits the batch, 400, 401,
//!   403, 404 and 422 stop the load with a clear error. After `breaker_threshold` consecutive
//!   failures every writer pauses until `/health` (v2) or `/ping` (v1) answers again.
//! - A chunk is acknowledged when every batch holding its lines is; the checkpoint lists
//!   acknowledged chunks and is keyed by the target and the load's settings, so `--resume`
//!   never mixes two loads. Rewriting an unacknowledged chunk is safe: the same trades are the
//!   same points (measurement, tags, timestamp), which InfluxDB overwrites.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{IngestError, Progress, Result, jobs, retention_cutoff, worker_threads};
use crate::candles;
use crate::generator::{GENERATOR_VERSION, GeneratorConfig, MarketPlan};
use crate::model::TradeColumns;
use crate::store::influx::InfluxStore;
use crate::store::influx::line_protocol::{self, SeriesKeys};
use crate::store::influx::{
    InfluxConfig, InfluxError, WriteOutcome, classify_write, transport_error,
};
use crate::store::manifest::{Manifest, write_atomically};
use crate::store::{Store, StoreError};
use crate::telemetry;

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

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub batch_lines: usize,
    pub batch_bytes: usize,
    pub writers: usize,
    pub gzip: bool,
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
            retry: RetryPolicy::default(),
            breaker_threshold: 5,
        }
    }
}

/// `K/N`: this machine loads the chunks whose index is `K` modulo `N` (0-based `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let err = || format!("invalid shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (u32, u32) =
            (k.parse().map_err(|_| err())?, n.parse().map_err(|_| err())?);
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    fn owns(&self, chunk: u32) -> bool {
        chunk % self.count == self.index
    }
}

#[derive(Debug, Clone)]
pub struct InfluxLoadOptions {
    pub config: GeneratorConfig,
    pub influx: InfluxConfig,
    pub write: WriteOptions,
    pub shard: Shard,
    /// Skip the chunks a checkpoint of the same load and target lists as written.
    pub resume: bool,
    /// Delete a different load found in the target instead of refusing.
    pub replace: bool,
    pub checkpoint_dir: PathBuf,
    /// Generator threads; 0 = one per core.
    pub threads: usize,
    pub retention_days: u32,
    pub now: chrono::DateTime<chrono::Utc>,
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
    fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us
            .lock()
            .expect("no panics while held")
            .push(us);
    }

    pub fn summary(&self) -> BatchSummary {
        let mut l = self
            .latencies_us
            .lock()
            .expect("no panics while held")
            .clone();
        l.sort_unstable();
        let pct = |p: f64| {
            if l.is_empty() {
                0.0
            } else {
                l[((l.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
            }
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InfluxLoadSummary {
    pub trades: u64,
    pub written: u64,
    pub chunks: usize,
    pub chunks_skipped: usize,
    pub seconds: f64,
    pub trades_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    pub batches: BatchSummary,
}

/// Which chunks of a load are acknowledged by a target.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    target: String,
    generator_version: u32,
    load: GeneratorConfig,
    shard: Shard,
    done: BTreeSet<u32>,
}

fn checkpoint_path(dir: &Path, target: &str, load: &GeneratorConfig, shard: Shard) -> PathBuf {
    let key =
        serde_json::to_string(&(target, GENERATOR_VERSION, load, shard)).expect("serialisable");
    let hash = crate::generator::seeds::fnv1a(key.as_bytes());
    dir.join(format!("influx-checkpoint-{hash:016x}.json"))
}

/// A batch on its way to InfluxDB.
struct Batch {
    body: Bytes,
    gzipped: bool,
    raw_len: usize,
    trades: u64,
    chunks: Vec<u32>,
}

#[derive(Default)]
struct ChunkState {
    pending: u32,
    produced: bool,
}

/// Tracks when chunks are fully acknowledged.
#[derive(Default)]
struct Tracker {
    chunks: Mutex<HashMap<u32, ChunkState>>,
    done: Mutex<BTreeSet<u32>>,
}

impl Tracker {
    fn batch_created(&self, chunks: &[u32]) {
        let mut map = self.chunks.lock().expect("no panics while held");
        for c in chunks {
            map.entry(*c).or_default().pending += 1;
        }
    }

    fn settle(&self, chunk: u32, map: &mut HashMap<u32, ChunkState>) {
        if map
            .get(&chunk)
            .is_some_and(|s| s.produced && s.pending == 0)
        {
            map.remove(&chunk);
            self.done
                .lock()
                .expect("no panics while held")
                .insert(chunk);
        }
    }

    fn chunk_produced(&self, chunk: u32) {
        let mut map = self.chunks.lock().expect("no panics while held");
        map.entry(chunk).or_default().produced = true;
        self.settle(chunk, &mut map);
    }

    fn batch_acknowledged(&self, chunks: &[u32]) {
        let mut map = self.chunks.lock().expect("no panics while held");
        for c in chunks {
            if let Some(s) = map.get_mut(c) {
                s.pending -= 1;
            }
            self.settle(*c, &mut map);
        }
    }
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(raw).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("our own gzip output");
    out
}

/// Encodes chunks into batches and hands them to the writers.
struct Producer<'a> {
    plan: &'a MarketPlan,
    options: &'a WriteOptions,
    tracker: &'a Tracker,
    sender: tokio::sync::mpsc::Sender<Batch>,
    buffer: Vec<u8>,
    lines: usize,
    trades: u64,
    chunks: Vec<u32>,
}

impl Producer<'_> {
    fn flush(&mut self) -> bool {
        if self.lines == 0 {
            return true;
        }
        let raw = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(self.options.batch_bytes + 4096),
        );
        let raw_len = raw.len();
        let body = if self.options.gzip { gzip(&raw) } else { raw };
        let chunks = std::mem::take(&mut self.chunks);
        let batch = Batch {
            body: Bytes::from(body),
            gzipped: self.options.gzip,
            raw_len,
            trades: self.trades,
            chunks,
        };
        self.lines = 0;
        self.trades = 0;
        // A closed channel means the writers stopped on an error; the caller reports it.
        self.sender.blocking_send(batch).is_ok()
    }

    fn line_added(&mut self, chunk: u32) -> bool {
        self.lines += 1;
        if self.chunks.last() != Some(&chunk) {
            // Counted as pending from its first line, so the chunk cannot settle while some of
            // its lines still wait in this buffer.
            self.tracker.batch_created(&[chunk]);
            self.chunks.push(chunk);
        }
        if self.lines >= self.options.batch_lines
            || self.buffer.len() + 512 >= self.options.batch_bytes
        {
            return self.flush();
        }
        true
    }

    fn chunk(
        &mut self,
        id: u32,
        symbol: usize,
        session: usize,
        keys: &SeriesKeys,
        progress: &Progress,
    ) -> bool {
        let mut stream = self.plan.chunk_trades(symbol, session);
        let mut trades = TradeColumns::with_capacity(super::BATCH_ROWS + super::BATCH_ROWS / 4);
        loop {
            if progress.cancel.load(Ordering::Relaxed) {
                return false;
            }
            trades.clear();
            if !stream.fill(super::BATCH_ROWS, &mut trades) {
                break;
            }
            for i in 0..trades.len() {
                line_protocol::push_trade(&mut self.buffer, keys, &trades, i);
                self.trades += 1;
                if !self.line_added(id) {
                    return false;
                }
            }
            for c in candles::minute_candles(&trades) {
                line_protocol::push_candle(&mut self.buffer, keys, &c);
                if !self.line_added(id) {
                    return false;
                }
            }
        }
        self.tracker.chunk_produced(id);
        true
    }
}

/// Pauses every writer after repeated failures until the server answers health checks.
struct Breaker {
    failures: AtomicU32,
    threshold: u32,
    probe: tokio::sync::Mutex<()>,
}

impl Breaker {
    /// Waits while the breaker is open; returns how long it waited.
    async fn wait_closed(
        &self,
        client: &reqwest::Client,
        influx: &InfluxConfig,
        interval: Duration,
    ) -> Duration {
        if self.failures.load(Ordering::Relaxed) < self.threshold {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let _probe = self.probe.lock().await;
        let mut logged = false;
        while self.failures.load(Ordering::Relaxed) >= self.threshold {
            if !logged {
                tracing::warn!(target = %influx.target(), "writes paused after repeated failures; waiting for the server's health check");
                logged = true;
            }
            let healthy = client
                .get(influx.health_url())
                .headers(influx.auth_headers())
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                tracing::info!("server healthy again; writes resume");
                self.failures.store(0, Ordering::Relaxed);
            } else {
                tokio::time::sleep(interval).await;
            }
        }
        started.elapsed()
    }
}

struct Writer {
    client: reqwest::Client,
    influx: InfluxConfig,
    url: reqwest::Url,
    retry: RetryPolicy,
    stats: Arc<BatchStats>,
    breaker: Arc<Breaker>,
}

impl Writer {
    /// Writes one batch, splitting it on 413, retrying transient failures.
    async fn write(
        &self,
        batch: &Batch,
        rng: &mut impl Rng,
    ) -> std::result::Result<(), InfluxError> {
        let mut parts = vec![(batch.body.clone(), batch.raw_len)];
        while let Some((body, raw_len)) = parts.pop() {
            match self.send(body.clone(), batch.gzipped, rng).await? {
                Sent::Done => {
                    self.stats
                        .bytes_raw
                        .fetch_add(raw_len as u64, Ordering::Relaxed);
                    self.stats
                        .bytes_sent
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                }
                Sent::TooLarge => {
                    let raw = if batch.gzipped {
                        gunzip(&body)
                    } else {
                        body.to_vec()
                    };
                    let (a, b) = split_lines(&raw).ok_or(InfluxError::LineTooLarge)?;
                    self.stats.split.fetch_add(1, Ordering::Relaxed);
                    for half in [b, a] {
                        let encoded = if batch.gzipped {
                            gzip(half)
                        } else {
                            half.to_vec()
                        };
                        parts.push((Bytes::from(encoded), half.len()));
                    }
                }
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        body: Bytes,
        gzipped: bool,
        rng: &mut impl Rng,
    ) -> std::result::Result<Sent, InfluxError> {
        let mut attempt = 0;
        let mut budget_start = Instant::now();
        loop {
            budget_start += self
                .breaker
                .wait_closed(&self.client, &self.influx, self.retry.interval)
                .await;
            let mut request = self
                .client
                .post(self.url.clone())
                .headers(self.influx.auth_headers())
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(body.clone());
            if gzipped {
                request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let response = request.send().await;
            let outcome = match response {
                Ok(r) => {
                    let (status, headers) = (r.status(), r.headers().clone());
                    let text = r.text().await.unwrap_or_default();
                    classify_write(status, &headers, &text, &self.influx.missing_target())
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

enum Sent {
    Done,
    TooLarge,
}

/// Splits line protocol at the line boundary nearest the middle; `None` for a single line.
fn split_lines(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let mid = raw.len() / 2;
    let cut = raw[..mid].iter().rposition(|b| *b == b'\n').or_else(|| {
        raw[mid..raw.len().saturating_sub(1)]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + mid)
    })?;
    Some(raw.split_at(cut + 1))
}

fn write_checkpoint(path: &Path, file: &CheckpointFile) -> Result<()> {
    let json = serde_json::to_vec(file).expect("serialisable");
    write_atomically(path, |f| f.write_all(&json)).map_err(|e| IngestError::Checkpoint {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Runs a load into InfluxDB. Blocks; runs its own async runtime for the writers.
pub fn load(
    options: &InfluxLoadOptions,
    progress: &Progress,
    stats: &Arc<BatchStats>,
) -> Result<InfluxLoadSummary> {
    let started = Instant::now();
    let plan = MarketPlan::new(options.config.clone())?;
    let influx = &options.influx;
    let target = influx.target();
    std::fs::create_dir_all(&options.checkpoint_dir).map_err(|e| IngestError::Checkpoint {
        path: options.checkpoint_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let checkpoint_path = checkpoint_path(
        &options.checkpoint_dir,
        &target,
        &options.config,
        options.shard,
    );
    let mut checkpoint = CheckpointFile {
        target: target.clone(),
        generator_version: GENERATOR_VERSION,
        load: options.config.clone(),
        shard: options.shard,
        done: BTreeSet::new(),
    };
    if options.resume
        && let Ok(bytes) = std::fs::read(&checkpoint_path)
        && let Ok(previous) = serde_json::from_slice::<CheckpointFile>(&bytes)
    {
        checkpoint.done = previous.done;
    }

    // Chunks are numbered symbol-major; the shard and the checkpoint pick which to write.
    let sessions = plan.sessions().len();
    let cutoff = retention_cutoff(options.now, options.retention_days);
    let mut todo: Vec<(u32, usize, usize)> = Vec::new();
    let mut total = 0;
    let mut skipped = 0;
    for s in 0..plan.symbols().len() {
        for d in 0..sessions {
            let id = (s * sessions + d) as u32;
            if !options.shard.owns(id) || plan.sessions()[d].close <= cutoff {
                continue;
            }
            total += plan.chunk(s, d).count;
            if checkpoint.done.contains(&id) {
                skipped += 1;
            } else {
                todo.push((id, s, d));
            }
        }
    }
    let to_write: u64 = todo.iter().map(|(_, s, d)| plan.chunk(*s, *d).count).sum();
    progress.total.store(to_write, Ordering::Relaxed);

    let mut manifest = Manifest::new(options.config.clone(), options.retention_days);
    // Two loads in one bucket would mix their trades: refuse, or clear it when told to.
    match InfluxStore::new(influx.clone())?.manifest() {
        Ok(existing) if !existing.same_load(&manifest) => {
            if !options.replace {
                return Err(StoreError::DifferentLoad {
                    dir: target.clone().into(),
                    existing: existing.describe(),
                }
                .into());
            }
            crate::store::influx::clear(influx)?;
        }
        Ok(_) | Err(StoreError::Empty(_)) => {}
        Err(e) => return Err(e.into()),
    }
    manifest.partitions = jobs(&plan)
        .into_iter()
        .map(|j| crate::store::Partition {
            trades_file: String::new(),
            candles_file: String::new(),
            ..j.partition
        })
        .filter(|p| p.end > cutoff)
        .collect();
    let manifest_time = plan.sessions()[0].open;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.write.writers.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| IngestError::Influx(InfluxError::Unreachable(e.to_string())))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.write.writers)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(transport_error)?;

    let breaker = Arc::new(Breaker {
        failures: AtomicU32::new(0),
        threshold: options.write.breaker_threshold.max(1),
        probe: tokio::sync::Mutex::new(()),
    });
    let new_writer = || Writer {
        client: client.clone(),
        influx: influx.clone(),
        url: influx.write_url(),
        retry: options.write.retry,
        stats: stats.clone(),
        breaker: breaker.clone(),
    };
    // The manifest and shard marks go through the same retrying writer as the trades.
    let write_point = |raw: Vec<u8>| -> Result<()> {
        let raw_len = raw.len();
        let body = if options.write.gzip { gzip(&raw) } else { raw };
        let batch = Batch {
            body: Bytes::from(body),
            gzipped: options.write.gzip,
            raw_len,
            trades: 0,
            chunks: Vec::new(),
        };
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        Ok(runtime.block_on(new_writer().write(&batch, &mut rng))?)
    };
    let write_manifest = |m: &Manifest| {
        let json = serde_json::to_string(m).expect("serialisable");
        write_point(line_protocol::manifest_line(&json, manifest_time))
    };
    write_manifest(&manifest)?;

    let tracker = Tracker::default();
    let writers = options.write.writers.max(1);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Batch>(writers * 2);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let (acks, mut ack_receiver) =
        tokio::sync::mpsc::unbounded_channel::<std::result::Result<Batch, InfluxError>>();
    let threads = worker_threads(options.threads);
    let keys: Vec<SeriesKeys> = plan
        .symbols()
        .iter()
        .map(|s| SeriesKeys::new(&s.symbol))
        .collect();
    let next = AtomicUsize::new(0);
    let mut failure: Option<IngestError> = None;

    std::thread::scope(|scope| {
        for _ in 0..threads.min(todo.len()).max(1) {
            let sender = sender.clone();
            let (plan, tracker, keys, todo, next) = (&plan, &tracker, &keys, &todo, &next);
            scope.spawn(move || {
                let mut producer = Producer {
                    plan,
                    options: &options.write,
                    tracker,
                    sender,
                    buffer: Vec::with_capacity(options.write.batch_bytes + 4096),
                    lines: 0,
                    trades: 0,
                    chunks: Vec::new(),
                };
                while let Some(&(id, s, d)) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if !producer.chunk(id, s, d, &keys[s], progress) {
                        return;
                    }
                }
                producer.flush();
            });
        }
        drop(sender);

        runtime.block_on(async {
            for i in 0..writers {
                let writer = new_writer();
                let (receiver, acks) = (receiver.clone(), acks.clone());
                tokio::spawn(async move {
                    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(i as u64 + 1);
                    loop {
                        let next = receiver.lock().await.recv().await;
                        let Some(batch) = next else { break };
                        let result = writer.write(&batch, &mut rng).await.map(|()| batch);
                        let failed = result.is_err();
                        if acks.send(result).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(acks);
            let mut save = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    message = ack_receiver.recv() => match message {
                        Some(Ok(batch)) => {
                            tracker.batch_acknowledged(&batch.chunks);
                            progress.done.fetch_add(batch.trades, Ordering::Relaxed);
                        }
                        Some(Err(e)) => {
                            progress.cancel.store(true, Ordering::Relaxed);
                            failure.get_or_insert(e.into());
                            // Unblock the producers; the other writers drain what is queued.
                            receiver.lock().await.close();
                        }
                        None => break,
                    },
                    _ = save.tick() => {
                        checkpoint.done.extend(tracker.done.lock().expect("no panics while held").iter().copied());
                        if let Err(e) = write_checkpoint(&checkpoint_path, &checkpoint) {
                            failure.get_or_insert(e);
                        }
                    }
                }
            }
        });
    });

    checkpoint.done.extend(
        tracker
            .done
            .lock()
            .expect("no panics while held")
            .iter()
            .copied(),
    );
    write_checkpoint(&checkpoint_path, &checkpoint)?;
    if let Some(e) = failure {
        return Err(e);
    }
    if progress.cancel.load(Ordering::Relaxed) {
        return Err(IngestError::Cancelled);
    }
    if options.shard == Shard::ALL {
        manifest.complete = true;
        write_manifest(&manifest)?;
    } else {
        let Shard { index, count } = options.shard;
        write_point(line_protocol::shard_line(index, count, manifest_time))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(InfluxLoadSummary {
        trades: total,
        written: to_write,
        chunks: todo.len() + skipped,
        chunks_skipped: skipped,
        seconds,
        trades_per_second: to_write as f64 / seconds.max(1e-9),
        peak_rss_bytes: telemetry::peak_rss_bytes(),
        batches: stats.summary(),
    })
}

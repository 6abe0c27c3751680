//! Loads as background jobs, for the HTTP API: one at a time, watched through their live
//! counters, cancelled cleanly (the load stops at a batch boundary and leaves what it wrote
//! resumable).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::influx::{BatchStats, BatchSummary, InfluxLoadOptions, Shard, WriteOptions};
use super::{IngestError, LoadOptions, Progress};
use crate::generator::GeneratorConfig;
use crate::store::StoreError;
use crate::store::influx::{InfluxConfig, InfluxError};

/// Where the jobs write: the store the server serves.
#[derive(Debug, Clone)]
pub enum Target {
    Parquet {
        dir: PathBuf,
    },
    Influx {
        config: Box<InfluxConfig>,
        write: WriteOptions,
        /// Where checkpoints go.
        checkpoint_dir: PathBuf,
    },
}

impl Target {
    /// The store's name, as `ohlcv --store` spells it.
    pub fn store_name(&self) -> &'static str {
        match self {
            Target::Parquet { .. } => "parquet",
            Target::Influx { .. } => "influxdb",
        }
    }
}

/// What one job loads.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobSettings {
    #[serde(flatten)]
    pub config: GeneratorConfig,
    /// Delete a different load found in the store instead of failing.
    pub replace: bool,
    /// InfluxDB: skip the chunks the checkpoint of this load lists as written.
    pub resume: bool,
    #[serde(skip)]
    pub threads: usize,
    #[serde(skip)]
    pub retention_days: u32,
    /// InfluxDB: the share of the load to write.
    #[serde(skip)]
    pub shard: Shard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One load, live.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub settings: JobSettings,
    pub progress: Progress,
    pub stats: Arc<BatchStats>,
    inner: Mutex<JobInner>,
}

#[derive(Debug)]
struct JobInner {
    state: JobState,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// Safe to show a client: no paths, hosts or credentials.
    error: Option<String>,
}

/// A job as the API reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: u64,
    pub state: JobState,
    pub store: &'static str,
    pub settings: JobSettings,
    pub processed: u64,
    pub total: u64,
    pub percentage: f64,
    pub elapsed_ms: u64,
    /// Until the end at the rate so far; none before the first trade is written.
    pub eta_ms: Option<u64>,
    pub trades_per_second: f64,
    pub batches: BatchSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Job {
    pub fn state(&self) -> JobState {
        self.lock().state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobInner> {
        self.inner.lock().expect("no panics while held")
    }

    pub fn status(&self, store: &'static str) -> JobStatus {
        let inner = self.lock();
        let processed = self.progress.done.load(Ordering::Relaxed);
        let total = self.progress.total.load(Ordering::Relaxed);
        let elapsed = match (inner.started, inner.ended) {
            (Some(s), Some(e)) => e - s,
            (Some(s), None) => s.elapsed(),
            _ => std::time::Duration::ZERO,
        };
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            processed as f64 / seconds
        } else {
            0.0
        };
        let eta_ms = (inner.state == JobState::Running && rate > 0.0)
            .then(|| (total.saturating_sub(processed) as f64 / rate * 1000.0) as u64);
        JobStatus {
            id: self.id,
            state: inner.state,
            store,
            settings: self.settings.clone(),
            processed,
            total,
            percentage: if total == 0 {
                if inner.state == JobState::Completed {
                    100.0
                } else {
                    0.0
                }
            } else {
                (processed as f64 * 100.0 / total as f64 * 100.0).round() / 100.0
            },
            elapsed_ms: elapsed.as_millis() as u64,
            eta_ms,
            trades_per_second: rate.round(),
            batches: self.stats.summary(),
            error: inner.error.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("load {0} is running; cancel it or wait for it to finish")]
    Busy(u64),
    #[error("no load is running")]
    NotRunning,
}

/// The server's loads: at most one running, every one kept for reporting.
#[derive(Debug)]
pub struct Jobs {
    target: Target,
    next_id: AtomicU64,
    jobs: Mutex<Vec<Arc<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Jobs {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            next_id: AtomicU64::new(1),
            jobs: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Starts a load in the background, unless one is queued or running.
    pub fn start(&self, settings: JobSettings) -> Result<Arc<Job>, JobError> {
        let mut jobs = self.jobs.lock().expect("no panics while held");
        if let Some(busy) = jobs
            .iter()
            .find(|j| matches!(j.state(), JobState::Queued | JobState::Running))
        {
            return Err(JobError::Busy(busy.id));
        }
        let job = Arc::new(Job {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            settings,
            progress: Progress::default(),
            stats: Arc::new(BatchStats::default()),
            inner: Mutex::new(JobInner {
                state: JobState::Queued,
                started: None,
                ended: None,
                error: None,
            }),
        });
        jobs.push(job.clone());
        let (target, running) = (self.target.clone(), job.clone());
        let handle = std::thread::Builder::new()
            .name(format!("load-{}", job.id))
            .spawn(move || run(&target, &running))
            .expect("a thread can be spawned");
        let mut threads = self.threads.lock().expect("no panics while held");
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(job)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .expect("no panics while held")
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    /// Every job, oldest first.
    pub fn all(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().expect("no panics while held").clone()
    }

    /// The most recent job.
    pub fn latest(&self) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .expect("no panics while held")
            .last()
            .cloned()
    }

    /// Asks the running job to stop; it ends `cancelled` once its in-flight batches finish.
    pub fn cancel_running(&self) -> Result<Arc<Job>, JobError> {
        let job = self
            .latest()
            .filter(|j| matches!(j.state(), JobState::Queued | JobState::Running))
            .ok_or(JobError::NotRunning)?;
        job.progress.cancel.store(true, Ordering::Relaxed);
        Ok(job)
    }

    /// Cancels the running job and waits until every job thread has ended, its checkpoint
    /// written: what a graceful shutdown does.
    pub fn shutdown(&self) {
        let _ = self.cancel_running();
        let threads = std::mem::take(&mut *self.threads.lock().expect("no panics while held"));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn run(target: &Target, job: &Job) {
    {
        let mut inner = job.lock();
        inner.state = JobState::Running;
        inner.started = Some(Instant::now());
    }
    let s = &job.settings;
    let now = chrono::Utc::now();
    let result = match target {
        Target::Parquet { dir } => super::load(
            dir,
            &LoadOptions {
                config: s.config.clone(),
                threads: s.threads,
                replace: s.replace,
                retention_days: s.retention_days,
                now,
            },
            &job.progress,
        )
        .map(|_| ()),
        Target::Influx {
            config,
            write,
            checkpoint_dir,
        } => super::influx::load(
            &InfluxLoadOptions {
                config: s.config.clone(),
                influx: (**config).clone(),
                write: write.clone(),
                shard: s.shard,
                resume: s.resume,
                replace: s.replace,
                checkpoint_dir: checkpoint_dir.clone(),
                threads: s.threads,
                retention_days: s.retention_days,
                now,
            },
            &job.progress,
            &job.stats,
        )
        .map(|_| ()),
    };
    let mut inner = job.lock();
    inner.ended = Some(Instant::now());
    match result {
        Ok(()) => inner.state = JobState::Completed,
        Err(IngestError::Cancelled) => inner.state = JobState::Cancelled,
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "load failed");
            inner.state = JobState::Failed;
            inner.error = Some(public_message(&e));
        }
    }
    tracing::info!(job = job.id, state = ?inner.state, "load ended");
}

/// What a client may read of a failure: what to do about it, never a path, host or detail of
/// the server's internals (those are in the log line above).
fn public_message(e: &IngestError) -> String {
    match e {
        IngestError::Store(StoreError::DifferentLoad { .. }) => {
            "the store holds a different load; start again with replace: true to delete it".into()
        }
        IngestError::Influx(InfluxError::Credentials(_))
        | IngestError::Store(StoreError::Influx(InfluxError::Credentials(_))) => {
            "InfluxDB rejected the server's credentials".into()
        }
        IngestError::Influx(InfluxError::NotFound(_))
        | IngestError::Store(StoreError::Influx(InfluxError::NotFound(_))) => {
            "the InfluxDB bucket or database does not exist: run `ohlcv influx setup`".into()
        }
        IngestError::Influx(InfluxError::Unreachable(_) | InfluxError::RetriesExhausted(_))
        | IngestError::Store(StoreError::Influx(InfluxError::Unreachable(_))) => {
            "InfluxDB is unreachable; the load can be resumed".into()
        }
        IngestError::Generator(g) => g.to_string(),
        _ => "the load failed; the server log has the details".into(),
    }
}

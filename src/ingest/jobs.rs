//! Loads as background jobs, for the HTTP API: one at a time, watched through their live
//! counters, cancelled cleanly (the load stops at a batch boundary and leaves what it wrote
//! resumable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{BatchStats, BatchSummary, IngestError, LoadSpec, Progress, Target};
use crate::store::StoreError;

/// A job's lock only guards plain fields: a panic elsewhere cannot leave them half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    pub spec: LoadSpec,
    pub progress: Progress,
    pub stats: Arc<BatchStats>,
    inner: Mutex<JobInner>,
    /// Turns true once the job has ended, its final state set.
    ended: tokio::sync::watch::Sender<bool>,
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
    pub settings: LoadSpec,
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

    fn lock(&self) -> MutexGuard<'_, JobInner> {
        lock(&self.inner)
    }

    /// Waits until the job has ended (completed, failed or cancelled), at most `wait`; true
    /// if it has.
    pub async fn ended_within(&self, wait: Duration) -> bool {
        let mut ended = self.ended.subscribe();
        tokio::time::timeout(wait, ended.wait_for(|ended| *ended))
            .await
            .is_ok_and(|r| r.is_ok())
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
            settings: self.spec.clone(),
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

/// Jobs kept for reporting unless [`Jobs::with_history`] says otherwise.
pub const DEFAULT_HISTORY: usize = 100;

/// The server's loads: at most one running, the latest `history` kept for reporting.
#[derive(Debug)]
pub struct Jobs {
    target: Target,
    next_id: AtomicU64,
    /// Oldest first.
    jobs: Mutex<Vec<Arc<Job>>>,
    history: usize,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Jobs {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            next_id: AtomicU64::new(1),
            jobs: Mutex::new(Vec::new()),
            history: DEFAULT_HISTORY,
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Keeps at most `history` jobs (at least one): starting another drops the oldest ended
    /// ones, so the list cannot grow without bound. A running job is never dropped.
    pub fn with_history(self, history: usize) -> Self {
        Self {
            history: history.max(1),
            ..self
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `Busy` while a load is queued or running: checked before planning a new one, which
    /// costs time and memory a refused request should not spend.
    pub fn ensure_idle(&self) -> Result<(), JobError> {
        idle(&lock(&self.jobs))
    }

    /// Starts a load in the background, unless one is queued or running.
    pub fn start(&self, spec: LoadSpec) -> Result<Arc<Job>, JobError> {
        let mut jobs = lock(&self.jobs);
        idle(&jobs)?;
        let job = Arc::new(Job {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            spec,
            progress: Progress::default(),
            stats: Arc::new(BatchStats::default()),
            inner: Mutex::new(JobInner {
                state: JobState::Queued,
                started: None,
                ended: None,
                error: None,
            }),
            ended: tokio::sync::watch::Sender::new(false),
        });
        // None is busy, so every job listed has ended: the oldest go.
        let excess = (jobs.len() + 1)
            .saturating_sub(self.history)
            .min(jobs.len());
        jobs.drain(..excess);
        jobs.push(job.clone());
        let (target, running) = (self.target.clone(), job.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("load-{}", job.id))
            .spawn(move || run(&target, &running));
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                drop(jobs);
                finish(&job, Ok(Err(IngestError::Thread(e))));
                return Ok(job);
            }
        };
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(job)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.jobs).iter().find(|j| j.id == id).cloned()
    }

    /// Every job, oldest first.
    pub fn all(&self) -> Vec<Arc<Job>> {
        lock(&self.jobs).clone()
    }

    /// The most recent job.
    pub fn latest(&self) -> Option<Arc<Job>> {
        lock(&self.jobs).last().cloned()
    }

    /// Asks the running job to stop; it ends `cancelled` once its in-flight batches finish.
    pub fn cancel_running(&self) -> Result<Arc<Job>, JobError> {
        let job = self
            .latest()
            .filter(|j| matches!(j.state(), JobState::Queued | JobState::Running))
            .ok_or(JobError::NotRunning)?;
        job.progress.cancel();
        Ok(job)
    }

    /// Cancels job `id` if it is queued or running; `None` if there is no such job. Checked
    /// and cancelled under the jobs' lock, so a job that ends meanwhile is never confused
    /// with the next one.
    pub fn cancel(&self, id: u64) -> Option<Result<Arc<Job>, JobError>> {
        let jobs = lock(&self.jobs);
        let job = jobs.iter().find(|j| j.id == id)?;
        if !matches!(job.state(), JobState::Queued | JobState::Running) {
            return Some(Err(JobError::NotRunning));
        }
        job.progress.cancel();
        Some(Ok(job.clone()))
    }

    /// Cancels the running job and waits until every job thread has ended, its checkpoint
    /// written: what a graceful shutdown does.
    pub fn shutdown(&self) {
        let _ = self.cancel_running();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// `Busy` with the id of the queued or running job among `jobs`, if any.
fn idle(jobs: &[Arc<Job>]) -> Result<(), JobError> {
    match jobs
        .iter()
        .find(|j| matches!(j.state(), JobState::Queued | JobState::Running))
    {
        Some(busy) => Err(JobError::Busy(busy.id)),
        None => Ok(()),
    }
}

fn run(target: &Target, job: &Job) {
    {
        let mut inner = job.lock();
        inner.state = JobState::Running;
        inner.started = Some(Instant::now());
    }
    // A panic in the load must still end the job, or it would read as running for ever and
    // every later start would be refused as busy.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::run(target, &job.spec, &job.progress, &job.stats)
    }));
    finish(job, result);
}

/// Records how `job` ended, logs it, and wakes whoever waits for the end.
fn finish(job: &Job, result: std::thread::Result<super::Result<super::LoadSummary>>) {
    {
        let mut inner = job.lock();
        inner.ended = Some(Instant::now());
        match result {
            Ok(Ok(_)) => inner.state = JobState::Completed,
            Ok(Err(IngestError::Cancelled)) => inner.state = JobState::Cancelled,
            Ok(Err(e)) => {
                tracing::error!(job = job.id, error = %crate::telemetry::chain(&e), "load failed");
                inner.state = JobState::Failed;
                inner.error = Some(public_message(&e));
            }
            Err(panic) => {
                let what = crate::telemetry::panic_message(panic.as_ref());
                tracing::error!(job = job.id, panic = %what, "load panicked");
                inner.state = JobState::Failed;
                inner.error = Some(INTERNAL_FAILURE.into());
            }
        }
        tracing::info!(job = job.id, state = ?inner.state, "load ended");
    }
    job.ended.send_replace(true);
}

/// What a client reads of a failure whose details only the server log may hold.
const INTERNAL_FAILURE: &str = "the load failed; the server log has the details";

/// What a client may read of a failure: what to do about it, never a path, host or detail of
/// the server's internals (those are in the log line above).
fn public_message(e: &IngestError) -> String {
    match e {
        IngestError::Store(StoreError::DifferentLoad { .. }) => {
            "the store holds a different load; start again with replace: true to delete it".into()
        }
        IngestError::Store(StoreError::Locked { .. }) => {
            "another load is writing this store; try again once it has finished".into()
        }
        IngestError::Store(StoreError::Unauthorized(_)) => {
            "the store rejected the server's credentials".into()
        }
        IngestError::Store(StoreError::Missing(_)) => {
            "the store's bucket, database or directory does not exist: run `ohlcv influx setup` for InfluxDB".into()
        }
        IngestError::Store(StoreError::Unavailable(_)) => {
            "the store is unreachable; the load can be resumed".into()
        }
        IngestError::BeyondRetention { first, days, .. } => format!(
            "the load's first session ({first}) is older than the configured retention of {days} days (--influxdb-retention): load later dates"
        ),
        IngestError::Generator(g) => g.to_string(),
        _ => INTERNAL_FAILURE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_load_ends_failed_and_wakes_its_waiters() {
        let jobs = Jobs::new(Target::Parquet {
            dir: std::path::PathBuf::from("unused").into(),
        });
        let job = Arc::new(Job {
            id: 1,
            spec: LoadSpec::new(crate::generator::GeneratorConfig::default()),
            progress: Progress::default(),
            stats: Arc::default(),
            inner: Mutex::new(JobInner {
                state: JobState::Running,
                started: Some(Instant::now()),
                ended: None,
                error: None,
            }),
            ended: tokio::sync::watch::Sender::new(false),
        });
        lock(&jobs.jobs).push(job.clone());
        let panic =
            std::panic::catch_unwind(|| -> super::super::Result<super::super::LoadSummary> {
                panic!("index out of bounds")
            });
        finish(&job, panic);
        let status = job.status("parquet");
        assert_eq!(status.state, JobState::Failed);
        assert_eq!(status.error.as_deref(), Some(INTERNAL_FAILURE));
        assert!(*job.ended.borrow());
        // No longer busy: the next load may start.
        assert!(matches!(jobs.cancel_running(), Err(JobError::NotRunning)));
    }

    #[test]
    fn a_refusal_beyond_retention_tells_the_client_what_to_do_without_the_host() {
        let e = IngestError::BeyondRetention {
            first: chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            target: "http://influx.internal:8086 bucket trades".into(),
            days: 30,
        };
        let message = public_message(&e);
        assert!(
            message.contains("2024-01-02") && message.contains("30 days"),
            "{message}"
        );
        assert!(!message.contains("influx.internal"), "{message}");
    }
}

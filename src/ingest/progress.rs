//! A load's live counters, and watching a load from a terminal: a progress bar on a TTY, a
//! JSON log line every 5 s otherwise, and Ctrl-C or SIGTERM asking it to stop at a batch
//! boundary (its checkpoint written, so the same load resumes).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::BatchStats;
use crate::telemetry;

/// Live counters a caller can watch while a load runs (progress bars, the API), and the flag
/// that asks it to stop.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub cancel: AtomicBool,
}

impl Progress {
    /// Asks the load to stop at its next batch boundary.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Runs `work` (a load counting into `progress`) while reporting its progress, and cancels it
/// on Ctrl-C or SIGTERM. `batches` adds the write path's figures to the JSON lines.
pub fn watch<T: Send>(
    progress: &Progress,
    batches: Option<&BatchStats>,
    work: impl FnOnce() -> T + Send,
) -> T {
    let (stop_reporting, stopped) = mpsc::channel::<()>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(|| report(progress, stopped, batches));
        scope.spawn(|| cancel_on_signal(progress, finished));
        // Owned by this closure, so that a panic in `work` drops them on its way out: both
        // threads then end, and the scope passes the panic on instead of waiting for them for
        // ever.
        let (stop_reporting, done) = (stop_reporting, done);
        let result = work();
        let _ = stop_reporting.send(());
        let _ = done.send(());
        result
    })
}

/// Sets `progress`'s cancel flag on the first shutdown signal, unless `finished` comes first;
/// a second signal before `finished` ends the process.
fn cancel_on_signal(progress: &Progress, mut finished: tokio::sync::oneshot::Receiver<()>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        tokio::select! {
            _ = telemetry::shutdown_signal() => {
                tracing::warn!("stopping: finishing the batches in flight, then writing the checkpoint (a second signal exits at once)");
                progress.cancel();
                tokio::select! {
                    _ = telemetry::exit_on_second_signal() => {}
                    _ = &mut finished => {}
                }
            }
            _ = &mut finished => {}
        }
    });
}

/// A progress bar on a terminal, a JSON log line every 5 s otherwise, until `stopped`.
fn report(progress: &Progress, stopped: mpsc::Receiver<()>, batches: Option<&BatchStats>) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {percent:>3}% {human_pos}/{human_len} trades  {per_sec}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let period = if terminal {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
        let done = progress.done.load(Ordering::Relaxed);
        let total = progress.total.load(Ordering::Relaxed);
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
            continue;
        }
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        if let Some(b) = batches {
            let s = b.summary();
            tracing::info!(
                batches = s.batches,
                retried = s.retried,
                failed = s.failed,
                in_flight = b.in_flight.load(Ordering::Relaxed),
                bytes_sent = s.bytes_sent,
                latency_ms_p50 = s.latency_ms_p50,
                latency_ms_p99 = s.latency_ms_p99,
                "write batches"
            );
        }
        tracing::info!(
            processed = done,
            total,
            percentage = 100.0 * done as f64 / total.max(1) as f64,
            trades_per_second = rate.round(),
            eta_seconds = ((total - done.min(total)) as f64 / rate.max(1.0)).round(),
            "load progress"
        );
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_work_ends_the_watch_instead_of_hanging_it() {
        let (ended, watched) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                watch(&Progress::default(), None, || -> () {
                    panic!("the work failed");
                })
            });
            let _ = ended.send(outcome.is_err());
        });
        // A guard against the hang this test is about, not a timing assertion.
        assert_eq!(watched.recv_timeout(Duration::from_secs(60)), Ok(true));
    }
}

//! The load into InfluxDB.
//!
//! ```text
//! generator threads ──(bounded channel of encoded, optionally gzipped batches)──► writer tasks ──► InfluxDB
//!  producer: chunk → lines                                                       writers: retry, split, breaker
//!                                      acknowledgements ──► tracker ──► checkpoint file
//! ```
//!
//! - `producer`: generator threads take (symbol, session) chunks in turn; the channel holds
//!   at most `2 × writers` batches, so memory is bounded whatever N is (backpressure).
//! - `writers`: async tasks sending batches through the client's retrying
//!   [`Writer`](crate::store::influx::write::Writer).
//! - `tracker`: a chunk is acknowledged when every batch holding its lines is; the checkpoint
//!   lists acknowledged chunks, so `--resume` skips them. Rewriting an unacknowledged chunk is
//!   safe: the same trades are the same points, which InfluxDB overwrites.
//!
//! The manifest (a point) goes first, listing the load's partitions as the embedded store
//! would; it is marked complete at the end, or each shard leaves a mark of its own.
//!
//! # Two loads into one bucket
//!
//! A load first reads the manifest: a different load there is refused (or, with `--replace`,
//! deleted). That alone leaves a race: two loads starting together both find no manifest and
//! both write. A lock on this machine cannot close it, since the shards of one load
//! (`--shard K/N`) legitimately write from several machines at once, so loads claim the
//! target instead, before writing the manifest or any trade:
//!
//! 1. write a claim, a point `ohlcv_claim,fingerprint=<F> load="<what it loads>"` at the
//!    current time (within any retention), through the same retrying writer as the trades,
//!    where `F` is [`Manifest::fingerprint`]: the same for two loads exactly when
//!    [`Manifest::same_load`] holds, so the same for every shard of one load;
//! 2. once it is acknowledged, read every claim back;
//! 3. if a claim with another fingerprint is there, withdraw its own claim (delete that one
//!    point) and fail with [`StoreError::Locked`] naming the other load, having written no
//!    trade; otherwise go on.
//!
//! Of two different loads, at most one goes on, whatever the interleaving (the reasoning is
//! in `claim.rs`); when both claim before either reads, both back off and a retry succeeds.
//! Claims stay after a load, so a later different load is refused by the manifest or, if it
//! raced ahead of the manifest, by the claim.
//!
//! A claim is also a lease (`lease_until`): the load renews it every [`claim::RENEW_EVERY`]
//! while its writers run and ends it after its last point, whatever the outcome. `--replace`
//! refuses while a different load's latest claim is leased (that load is writing), before it
//! deletes anything; once the lease has ended or run out (the load died), it deletes claims
//! with the rest, then claims like any load. A load that dies between its claim and its
//! manifest leaves a claim that makes other loads back off until a `--replace` clears it.
//! The protocol needs a server that shows a write to every read once it has acknowledged it,
//! as InfluxDB does, and clocks that agree to well within the lease.
//! Reads of trades, candles and the manifest, and `verify`, never look at claims.

mod claim;
mod producer;
mod tracker;
mod writers;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use rand::SeedableRng;

use super::{BatchStats, IngestError, LoadSpec, LoadSummary, Progress, Result, Shard, Unit};
use crate::calendar::Session;
use crate::generator::MarketPlan;
use crate::store::influx::line_protocol::{self, SeriesKeys};
use crate::store::influx::write::{Batch, WriteOptions, Writer};
use crate::store::influx::{self, InfluxConfig};
use crate::store::{Manifest, StoreError, layout};
use crate::telemetry;
use producer::Producer;
use tracker::{Checkpoint, Tracker};

/// Runs a load into InfluxDB. Blocks; runs its own async runtime for the writers.
pub(super) fn load(
    config: &InfluxConfig,
    options: &WriteOptions,
    checkpoint_dir: &Path,
    spec: &LoadSpec,
    progress: &Progress,
    stats: &Arc<BatchStats>,
) -> Result<LoadSummary> {
    let started = Instant::now();
    let plan = MarketPlan::new(spec.load.clone())?;
    let mut checkpoint = Checkpoint::open(
        checkpoint_dir,
        config.target(),
        &spec.load,
        spec.shard,
        spec.resume,
    )?;

    refuse_beyond_retention(config, plan.sessions())?;

    // Chunks are numbered symbol-major; the shard and the checkpoint pick which to write.
    let sessions = plan.sessions().len();
    let mut todo: Vec<(u32, usize, usize)> = Vec::new();
    let mut total = 0;
    let mut skipped = 0;
    for s in 0..plan.symbols().len() {
        for d in 0..sessions {
            let id = (s * sessions + d) as u32;
            if !spec.shard.owns(id) {
                continue;
            }
            total += plan.chunk(s, d).count;
            if checkpoint.is_done(id) {
                skipped += 1;
            } else {
                todo.push((id, s, d));
            }
        }
    }
    let to_write: u64 = todo.iter().map(|(_, s, d)| plan.chunk(*s, *d).count).sum();
    progress.total.store(to_write, Ordering::Relaxed);

    let mut manifest = Manifest::new(spec.load.clone());
    // Two loads in one bucket would mix their trades: refuse, or clear it when told to.
    match influx::open(config.clone())?.manifest() {
        Ok(existing) if !existing.same_load(&manifest) => {
            if !spec.replace {
                return Err(StoreError::DifferentLoad {
                    target: config.target(),
                    existing: existing.describe(),
                }
                .into());
            }
            claim::ensure_nobody_writes(config, &manifest)?;
            let symbols: Vec<_> = existing
                .load
                .symbols
                .iter()
                .chain(&spec.load.symbols)
                .cloned()
                .collect();
            influx::clear(config, &symbols)?;
        }
        Ok(_) | Err(StoreError::Empty(_)) => {
            // A different load's claim without its manifest: that load is starting, or died
            // before writing its manifest. --replace deletes it as it would the load; without
            // --replace the claim below refuses.
            let fingerprint = manifest.fingerprint();
            if spec.replace
                && influx::claims(config)?
                    .iter()
                    .any(|c| c.fingerprint != fingerprint)
            {
                claim::ensure_nobody_writes(config, &manifest)?;
                influx::clear(config, &spec.load.symbols)?;
            }
        }
        Err(e) => return Err(e.into()),
    }
    manifest.partitions = layout::plan(&plan)
        .into_iter()
        .map(|planned| planned.partition)
        .collect();
    // MarketPlan::new refuses a load without sessions.
    let manifest_time = plan.sessions().first().map_or(0, |s| s.open);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.writers.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| StoreError::from(influx::InfluxError::Unreachable(e.to_string())))?;
    let writer = Writer::new(config, options, stats.clone())?;
    // The claim, the manifest and shard marks go through a writer retrying as the trades' does,
    // always in nanoseconds: a claim's time is the instant it was written, and other loads
    // compare it and delete it by that instant.
    let points = Writer::new(
        config,
        &WriteOptions {
            precision: influx::Precision::Ns,
            ..options.clone()
        },
        stats.clone(),
    )?;
    let write_point = |raw: Vec<u8>| -> Result<()> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        let batch = Batch::new(raw, options.gzip);
        Ok(runtime.block_on(points.write(&batch, &mut rng))?)
    };
    let claimant = claim::Claimant::new(&manifest, options);
    claim::claim(config, &claimant, write_point)?;
    // Whatever happens from here, the claim's lease is ended last, after the load's final
    // point, so that a --replace waiting for it never clears the bucket under a late write.
    let outcome = (|| {
        let write_manifest =
            |m: &Manifest| write_point(line_protocol::manifest_line(&m.to_json(), manifest_time));
        write_manifest(&manifest)?;

        let tracker = Tracker::default();
        let writers = options.writers.max(1);
        let (sender, queue) = tokio::sync::mpsc::channel(writers * 2);
        let keys: Vec<SeriesKeys> = plan
            .symbols()
            .iter()
            .map(|s| SeriesKeys::new(&s.symbol, config.schema))
            .collect();
        let next = AtomicUsize::new(0);
        let (writing, renewals) = std::sync::mpsc::channel::<()>();
        let panicked = std::sync::Mutex::new(None);
        let failure = std::thread::scope(|scope| {
            // Renews the claim while the writers run; they end by dropping `writing`.
            let (claimant, write_point) = (&claimant, &write_point);
            scope.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = renewals.recv_timeout(claim::RENEW_EVERY) {
                if let Err(e) = claimant.renew(write_point) {
                    tracing::warn!(error = %telemetry::chain(&e), "could not renew the load's claim");
                }
            }
        });
            for _ in 0..spec.worker_threads().min(todo.len()).max(1) {
                let mut producer = Producer::new(&plan, options, &tracker, sender.clone());
                let (keys, todo, next) = (&keys, &todo, &next);
                let panicked = &panicked;
                scope.spawn(move || {
                    super::run_worker(progress, panicked, || {
                        while let Some(&(id, s, d)) = todo.get(next.fetch_add(1, Ordering::Relaxed))
                        {
                            #[allow(
                                clippy::indexing_slicing,
                                reason = "`keys` has one entry per symbol of the plan, and `s` is one of its positions"
                            )]
                            let keys = &keys[s];
                            if !producer.chunk(id, s, d, keys, progress) {
                                return Ok(());
                            }
                        }
                        producer.flush();
                        Ok(())
                    })
                });
            }
            drop(sender);
            let failure = runtime.block_on(writers::run(
                &writer,
                writers,
                queue,
                &tracker,
                progress,
                &mut checkpoint,
            ));
            drop(writing);
            failure
        });

        checkpoint.save(tracker.done())?;
        let panicked = panicked.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = panicked.or(failure) {
            return Err(e);
        }
        if progress.cancelled() {
            return Err(IngestError::Cancelled);
        }
        if spec.shard == Shard::ALL {
            manifest.complete = true;
            write_manifest(&manifest)?;
        } else {
            let Shard { index, count } = spec.shard;
            write_point(line_protocol::shard_line(index, count, manifest_time))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(LoadSummary {
            trades: total,
            written: to_write,
            unit: Unit::Chunks,
            units: todo.len() + skipped,
            skipped,
            seconds,
            trades_per_second: to_write as f64 / seconds.max(1e-9),
            peak_rss_bytes: telemetry::peak_rss_bytes(),
            bytes_on_disk: None,
            batches: Some(stats.summary()),
        })
    })();
    if let Err(e) = claimant.end(write_point) {
        // The lease then runs out by itself; until it does, a --replace waits.
        tracing::warn!(error = %telemetry::chain(&e), "could not end the load's claim");
    }
    outcome
}

/// An hour's margin, since the load takes time and the server measures retention when it
/// writes (a 300 M load takes about 8 minutes here).
const RETENTION_MARGIN: chrono::Duration = chrono::Duration::hours(1);

/// InfluxDB drops points older than its retention, and a load missing them would never
/// complete: refuse it up front. The configured retention is the one `ohlcv influx setup`
/// gives a new target; a target with a shorter one rejects the points, and the load fails with
/// the server's message.
fn refuse_beyond_retention(config: &InfluxConfig, sessions: &[Session]) -> Result<()> {
    match first_beyond_retention(config.retention_days, sessions, Utc::now()) {
        Some(first) => Err(IngestError::BeyondRetention {
            first,
            target: config.target(),
            days: config.retention_days,
        }),
        None => Ok(()),
    }
}

/// The first session's date if it opens before `now - days` (plus the margin).
fn first_beyond_retention(
    days: u32,
    sessions: &[Session],
    now: DateTime<Utc>,
) -> Option<NaiveDate> {
    let first = sessions.first()?;
    let keep = chrono::Duration::days(i64::from(days)) - RETENTION_MARGIN;
    let cutoff = now
        .checked_sub_signed(keep)
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(i64::MIN);
    (first.open < cutoff).then_some(first.date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_older_than_the_retention_is_refused_and_a_newer_one_is_not() {
        let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
        let sessions = crate::calendar::sessions(day(4), day(8));
        let days_later = |d: u32, n: i64| {
            day(d).and_hms_opt(12, 0, 0).unwrap().and_utc() + chrono::Duration::days(n)
        };
        // The first session opens at 14:30 UTC on March 4.
        assert_eq!(
            first_beyond_retention(30, &sessions, days_later(4, 30)),
            None
        );
        assert_eq!(
            first_beyond_retention(30, &sessions, days_later(4, 31)),
            Some(day(4))
        );
        // The shortest retention still takes a load of the last day.
        assert_eq!(first_beyond_retention(1, &sessions, days_later(4, 0)), None);
        assert_eq!(first_beyond_retention(30, &[], days_later(4, 400)), None);
    }
}

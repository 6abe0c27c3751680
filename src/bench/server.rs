//! What the server costs, read from the server itself: `/debug/vars` on 1.x, `/metrics`
//! (Prometheus text) on 2.x and 3.x, and, when it runs on this machine and its pid is given,
//! its process in `/proc`. A figure no source gives is `None`, never 0.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::influx::client::Client;
use crate::store::influx::{Api, InfluxConfig, admin};
use crate::telemetry;

/// Where the server's figures come from.
pub struct Probe {
    client: Client,
    pid: Option<u32>,
    data_dirs: Vec<PathBuf>,
}

/// How often the server's memory is sampled while a configuration runs, for its peak when
/// the process's own high-water mark cannot be reset.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(200);

impl Probe {
    /// `pid` and `data_dirs` are the server's process and the directories holding a
    /// directory per database (1.x: its `data` and `wal` directories), when it is local.
    pub fn new(
        config: &InfluxConfig,
        pid: Option<u32>,
        data_dirs: Vec<PathBuf>,
    ) -> crate::store::influx::Result<Self> {
        Ok(Self {
            client: Client::new(config.clone())?,
            pid,
            data_dirs,
        })
    }

    fn api(&self) -> Api {
        self.client.config().api
    }

    /// Where each figure comes from, for the report.
    pub fn sources(&self) -> Sources {
        let endpoint = match self.api() {
            Api::V1 => "/debug/vars",
            Api::V2 => "/metrics",
        };
        let local = self.pid.map(|pid| format!("/proc/{pid}"));
        Sources {
            cpu: local.clone().or_else(|| (self.api() == Api::V2).then(|| endpoint.into())),
            memory: local.or_else(|| {
                Some(match self.api() {
                    Api::V1 => "/debug/vars memstats (Sys - HeapReleased: what the Go runtime holds from the OS)".into(),
                    Api::V2 => "/metrics process_resident_memory_bytes".into(),
                })
            }),
            disk: Some(endpoint.into()),
            data_dirs: self
                .data_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
        }
    }

    fn debug_vars(&self) -> Option<Value> {
        let text = self
            .client
            .get_text(self.client.config().endpoint("debug/vars"))
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    fn metrics(&self) -> Option<String> {
        self.client
            .get_text(self.client.config().endpoint("metrics"))
            .ok()
    }

    /// CPU seconds the server has used since it started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        if self.pid.is_some() {
            return telemetry::cpu_seconds_of(self.pid);
        }
        match self.api() {
            // 1.x publishes no CPU figure of its own.
            Api::V1 => None,
            Api::V2 => metric_sum(&self.metrics()?, "process_cpu_seconds_total", None),
        }
    }

    /// Memory the server holds now.
    pub fn memory_bytes(&self) -> Option<u64> {
        if self.pid.is_some() {
            return telemetry::rss_bytes_of(self.pid);
        }
        match self.api() {
            Api::V1 => {
                let vars = self.debug_vars()?;
                let memstats = vars.get("memstats")?;
                let sys = memstats.get("Sys")?.as_u64()?;
                let released = memstats.get("HeapReleased")?.as_u64()?;
                Some(sys.saturating_sub(released))
            }
            Api::V2 => metric_sum(&self.metrics()?, "process_resident_memory_bytes", None)
                .map(|b| b as u64),
        }
    }

    /// Bytes on disk of `target`'s database or bucket (TSM files and WAL), as the server
    /// counts them.
    pub fn disk_bytes(&self, target: &InfluxConfig) -> Option<u64> {
        match self.api() {
            Api::V1 => database_disk_bytes(&self.debug_vars()?, &target.database),
            Api::V2 => {
                let id = admin::bucket_id(&Client::new(target.clone()).ok()?).ok()??;
                let metrics = self.metrics()?;
                let tsm = metric_sum(&metrics, "storage_tsm_files_disk_bytes", Some(&id))?;
                let wal = metric_sum(&metrics, "storage_wal_size", Some(&id)).unwrap_or(0.0);
                Some((tsm + wal) as u64)
            }
        }
    }

    /// Bytes on disk of `target`'s database once 1.x has compacted it: its WAL snapshotted
    /// into TSM files, no compaction running or queued, and the size the same over
    /// [`COMPACTION_QUIET`] of reads [`COMPACTION_POLL`] apart (longer than the engine's
    /// compaction planner takes to pick up a snapshotted shard, about a second; a read that
    /// fails is skipped). When that happens depends on the server's
    /// `[data] cache-snapshot-write-cold-duration` and `compact-full-write-cold-duration`
    /// (defaults 10 minutes and 4 hours); `None` if it has not within `wait`, and on 2.x,
    /// whose `/metrics` say nothing of compactions.
    pub fn compacted_disk_bytes(&self, target: &InfluxConfig, wait: Duration) -> Option<u64> {
        if self.api() != Api::V1 || wait.is_zero() {
            return None;
        }
        let deadline = Instant::now() + wait;
        // The size seen quiet (WAL empty, nothing compacting) and since when.
        let mut quiet: Option<(u64, Instant)> = None;
        loop {
            let seen = self
                .debug_vars()
                .and_then(|vars| database_storage(&vars, &target.database));
            if let Some(now) = seen {
                if now.wal_bytes != 0 || now.compacting != 0 {
                    quiet = None;
                } else {
                    match quiet {
                        Some((bytes, since)) if bytes == now.disk_bytes => {
                            if since.elapsed() >= COMPACTION_QUIET {
                                return Some(bytes);
                            }
                        }
                        _ => quiet = Some((now.disk_bytes, Instant::now())),
                    }
                }
            }
            if Instant::now() + COMPACTION_POLL > deadline {
                return None;
            }
            std::thread::sleep(COMPACTION_POLL);
        }
    }

    /// Bytes of the files under `<dir>/<name>` summed over the data directories given; `None`
    /// when none were given or none holds `name`.
    pub fn data_dir_bytes(&self, name: &str) -> Option<u64> {
        let found: Vec<u64> = self
            .data_dirs
            .iter()
            .map(|d| d.join(name))
            .filter(|d| d.is_dir())
            .map(|d| tree_bytes(&d))
            .collect();
        (!found.is_empty()).then(|| found.iter().sum())
    }

    /// Runs `work` while watching the server's memory, and returns its result with the peak
    /// seen: the process's high-water mark when it could be reset first, else the largest of
    /// the samples taken every [`MEMORY_SAMPLE_EVERY`].
    pub fn watch_memory<T: Send>(&self, work: impl FnOnce() -> T + Send) -> (T, Option<u64>) {
        let reset = self.pid.is_some_and(telemetry::reset_peak_rss);
        let (stop, stopped) = mpsc::channel::<()>();
        let (result, sampled) = std::thread::scope(|scope| {
            let sampler = scope.spawn(move || {
                let mut peak = self.memory_bytes();
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(MEMORY_SAMPLE_EVERY)
                {
                    peak = peak.max(self.memory_bytes());
                }
                peak.max(self.memory_bytes())
            });
            // Owned here, so that a panic in `work` drops it and the sampler ends.
            let stop = stop;
            let result = work();
            let _ = stop.send(());
            (result, sampler.join().ok().flatten())
        });
        let high_water = reset
            .then(|| telemetry::peak_rss_bytes_of(self.pid))
            .flatten();
        (result, high_water.max(sampled))
    }
}

/// How often [`Probe::compacted_disk_bytes`] reads the server's storage while it waits.
const COMPACTION_POLL: Duration = Duration::from_millis(500);
/// How long the compacted size must hold before it is the figure.
const COMPACTION_QUIET: Duration = Duration::from_secs(3);

/// A 1.x database's storage, summed over its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Storage {
    /// TSM files and WAL, as the shards count them.
    disk_bytes: u64,
    /// WAL segments not yet snapshotted into TSM files.
    wal_bytes: u64,
    /// Compactions running or queued, of every level.
    compacting: u64,
}

/// The storage of `database` from 1.x's `/debug/vars`: its `shard`, `tsm1_wal` and
/// `tsm1_engine` statistics; `None` if it has no shard.
fn database_storage(vars: &Value, database: &str) -> Option<Storage> {
    let of_database = |name: &'static str| {
        vars.as_object()
            .into_iter()
            .flat_map(|o| o.values())
            .filter(move |v| v.get("name").and_then(Value::as_str) == Some(name))
            .filter(move |v| {
                v.get("tags")
                    .and_then(|t| t.get("database"))
                    .and_then(Value::as_str)
                    == Some(database)
            })
            .filter_map(|v| v.get("values")?.as_object())
    };
    let sum = |name: &'static str, counts: fn(&str) -> bool| -> u64 {
        of_database(name)
            .flat_map(|values| values.iter())
            .filter(|(key, _)| counts(key))
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    };
    let disk_bytes = database_disk_bytes(vars, database)?;
    Some(Storage {
        disk_bytes,
        wal_bytes: sum("tsm1_wal", |k| {
            k == "currentSegmentDiskBytes" || k == "oldSegmentsDiskBytes"
        }),
        compacting: sum("tsm1_engine", |k| {
            k.ends_with("CompactionsActive") || k.ends_with("CompactionQueue")
        }),
    })
}

/// Where the figures of a report come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sources {
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    pub data_dirs: Vec<String>,
}

/// The sum of every shard's `diskBytes` (TSM files and WAL segments) of `database`, from
/// 1.x's `/debug/vars`.
fn database_disk_bytes(vars: &Value, database: &str) -> Option<u64> {
    let shards: Vec<u64> = vars
        .as_object()?
        .values()
        .filter(|v| v.get("name").and_then(Value::as_str) == Some("shard"))
        .filter(|v| {
            v.get("tags")
                .and_then(|t| t.get("database"))
                .and_then(Value::as_str)
                == Some(database)
        })
        .filter_map(|v| v.get("values")?.get("diskBytes")?.as_u64())
        .collect();
    (!shards.is_empty()).then(|| shards.iter().sum())
}

/// The sum of the samples of metric `name` in Prometheus text, only those labelled
/// `bucket="<bucket>"` if a bucket is given; `None` if there is none.
fn metric_sum(text: &str, name: &str, bucket: Option<&str>) -> Option<f64> {
    let label = bucket.map(|b| format!("bucket=\"{b}\""));
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            if label.as_ref().is_some_and(|want| !labels.contains(want)) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Bytes of the regular files under `dir`; what cannot be read counts nothing.
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_disk_bytes_are_summed_per_database() {
        let vars = serde_json::json!({
            "memstats": {"Sys": 10},
            "shard:/a/x/autogen/1:1": {"name": "shard", "tags": {"database": "x"}, "values": {"diskBytes": 86}},
            "shard:/a/x/autogen/2:2": {"name": "shard", "tags": {"database": "x"}, "values": {"diskBytes": 14}},
            "shard:/a/y/autogen/3:3": {"name": "shard", "tags": {"database": "y"}, "values": {"diskBytes": 5}},
            "tsm1_wal:/a/x/autogen/1:1": {"name": "tsm1_wal", "tags": {"database": "x"}, "values": {"diskBytes": 99}},
        });
        assert_eq!(database_disk_bytes(&vars, "x"), Some(100));
        assert_eq!(database_disk_bytes(&vars, "z"), None);
        assert_eq!(database_storage(&vars, "z"), None);
        let busy = serde_json::json!({
            "shard:1": {"name": "shard", "tags": {"database": "x"}, "values": {"diskBytes": 86}},
            "tsm1_wal:1": {"name": "tsm1_wal", "tags": {"database": "x"}, "values": {"currentSegmentDiskBytes": 10, "oldSegmentsDiskBytes": 5, "writeOk": 3}},
            "tsm1_engine:1": {"name": "tsm1_engine", "tags": {"database": "x"}, "values": {"cacheCompactions": 4, "tsmLevel1CompactionsActive": 1, "tsmFullCompactionQueue": 2}},
            "tsm1_engine:2": {"name": "tsm1_engine", "tags": {"database": "y"}, "values": {"tsmFullCompactionsActive": 7}},
        });
        assert_eq!(
            database_storage(&busy, "x"),
            Some(Storage {
                disk_bytes: 86,
                wal_bytes: 15,
                compacting: 3
            })
        );
    }

    #[test]
    fn prometheus_samples_are_summed_by_bucket() {
        let text = "# HELP process_cpu_seconds_total CPU\n\
                    process_cpu_seconds_total 12.5\n\
                    process_cpu_seconds_total_other 1\n\
                    storage_tsm_files_disk_bytes{bucket=\"b1\",level=\"1\"} 100\n\
                    storage_tsm_files_disk_bytes{bucket=\"b1\",level=\"2\"} 50\n\
                    storage_tsm_files_disk_bytes{bucket=\"b2\",level=\"1\"} 7\n";
        assert_eq!(
            metric_sum(text, "process_cpu_seconds_total", None),
            Some(12.5)
        );
        assert_eq!(
            metric_sum(text, "storage_tsm_files_disk_bytes", Some("b1")),
            Some(150.0)
        );
        assert_eq!(metric_sum(text, "storage_wal_size", Some("b1")), None);
    }
}

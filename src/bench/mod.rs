//! `ohlcv bench influx`: a matrix of write settings run against the configured InfluxDB, each
//! configuration into a fresh database or bucket that it creates and drops, with the same
//! deterministic trades; what each costs the client and the server, how fast the OHLCV
//! queries come back on every candle path, and whether the load verifies exactly.
//!
//! - [`server`]: the server's CPU, memory and disk, from its own endpoints and `/proc`;
//! - [`workload`]: the query workload and its timing;
//! - [`report`]: `report.json`, `report.md` and the SVG charts.

pub mod report;
pub mod server;
pub mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::generator::{GeneratorConfig, GeneratorError, MarketPlan};
use crate::ingest::{self, BatchStats, IngestError, LoadSpec, Progress, Target, WriteOptions};
use crate::model::TradeColumns;
use crate::store::influx::{self, Api, InfluxConfig, InfluxError, Precision, Schema};
use crate::store::{Backend, StoreError};
use crate::telemetry;
use crate::verify;
pub use report::{Machine, Report, Run, ServerInfo};
use server::Probe;
use workload::CandlePath;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    #[error(transparent)]
    Influx(#[from] InfluxError),
    /// The server stopped answering: every further configuration would fail the same way.
    #[error("the benchmark stopped: {0}")]
    Unreachable(String),
    #[error("cannot write the report to {}", path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the matrix is empty: every list needs at least one value")]
    EmptyMatrix,
    #[error("cannot read the matrix file {}", path.display())]
    MatrixRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What is wrong with a matrix file, on one line with where it is.
    #[error("the matrix file {}: {message}", path.display())]
    MatrixFile { path: PathBuf, message: String },
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// One configuration: its data model and write settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Reported beside the settings, as the run's `schema`.
    #[serde(skip)]
    pub schema: Schema,
    pub batch_lines: usize,
    pub writers: usize,
    pub gzip: bool,
    pub precision: Precision,
}

impl Settings {
    /// How the report names it.
    pub fn label(&self) -> String {
        format!(
            "{}, {} lines, {} writer{}, {}, {}",
            self.schema,
            self.batch_lines,
            self.writers,
            if self.writers == 1 { "" } else { "s" },
            if self.gzip { "gzip" } else { "plain" },
            self.precision
        )
    }
}

/// How the lists of the matrix combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// The first value of each list is the base; every other value is tried with the base's
    /// other settings (as many runs as values, less the lists' count, plus one).
    One,
    /// Every combination.
    All,
}

/// The data models and write settings to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub schemas: Vec<Schema>,
    pub batch_lines: Vec<usize>,
    pub writers: Vec<usize>,
    pub gzip: Vec<bool>,
    pub precision: Vec<Precision>,
    pub vary: Vary,
}

impl Default for Matrix {
    /// A useful report in a few minutes on a 2-core machine: every schema, the write settings
    /// around today's defaults (10,000 lines, 2 writers, no gzip, ns), one list at a time.
    fn default() -> Self {
        Self {
            schemas: Schema::ALL.to_vec(),
            batch_lines: vec![10_000, 1_000, 50_000],
            writers: vec![2, 1, 4],
            gzip: vec![false, true],
            precision: vec![Precision::Ns, Precision::Us, Precision::Ms],
            vary: Vary::One,
        }
    }
}

/// The largest batch and writer count a matrix may ask for, as the flags allow.
pub const MAX_BATCH_LINES: usize = 10_000_000;
pub const MAX_WRITERS: usize = 256;

/// A matrix file (`--matrix`): any of the lists, keyed as the flags are named, and `vary`.
/// A list it has replaces the default one; a flag replaces the file's list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    pub schema: Option<Vec<Schema>>,
    pub batch_lines: Option<Vec<usize>>,
    pub writers: Option<Vec<usize>>,
    pub gzip: Option<Vec<bool>>,
    pub precision: Option<Vec<Precision>>,
    pub vary: Option<Vary>,
}

impl MatrixFile {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::MatrixRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| BenchError::MatrixFile {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The file's lists, or what is wrong with them: a line number and toml's message, on
    /// one line (its own error spans several, with the source quoted).
    fn parse(text: &str) -> Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            format!(
                "{at}{}",
                e.message().split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })?;
        let out_of_range = |key: &str, values: &Option<Vec<usize>>, max: usize| {
            values
                .iter()
                .flatten()
                .find(|&&v| !(1..=max).contains(&v))
                .map(|v| format!("{key}: {v} is not in 1..={max}"))
        };
        let empty = [
            ("schema", file.schema.as_ref().map(Vec::len)),
            ("batch_lines", file.batch_lines.as_ref().map(Vec::len)),
            ("writers", file.writers.as_ref().map(Vec::len)),
            ("gzip", file.gzip.as_ref().map(Vec::len)),
            ("precision", file.precision.as_ref().map(Vec::len)),
        ]
        .into_iter()
        .find(|(_, len)| *len == Some(0))
        .map(|(key, _)| format!("{key}: the list is empty"));
        match empty
            .or_else(|| out_of_range("batch_lines", &file.batch_lines, MAX_BATCH_LINES))
            .or_else(|| out_of_range("writers", &file.writers, MAX_WRITERS))
        {
            Some(problem) => Err(problem),
            None => Ok(file),
        }
    }

    /// The matrix: each list from `flags` if given there, else from this file, else the
    /// default.
    pub fn merge(self, flags: MatrixFile) -> Matrix {
        let default = Matrix::default();
        Matrix {
            schemas: flags.schema.or(self.schema).unwrap_or(default.schemas),
            batch_lines: flags
                .batch_lines
                .or(self.batch_lines)
                .unwrap_or(default.batch_lines),
            writers: flags.writers.or(self.writers).unwrap_or(default.writers),
            gzip: flags.gzip.or(self.gzip).unwrap_or(default.gzip),
            precision: flags
                .precision
                .or(self.precision)
                .unwrap_or(default.precision),
            vary: flags.vary.or(self.vary).unwrap_or(default.vary),
        }
    }
}

impl Matrix {
    /// The configurations, in the order they run, each once.
    pub fn settings(&self) -> Result<Vec<Settings>> {
        let (Some(&schema), Some(&b), Some(&w), Some(&g), Some(&p)) = (
            self.schemas.first(),
            self.batch_lines.first(),
            self.writers.first(),
            self.gzip.first(),
            self.precision.first(),
        ) else {
            return Err(BenchError::EmptyMatrix);
        };
        let base = Settings {
            schema,
            batch_lines: b,
            writers: w,
            gzip: g,
            precision: p,
        };
        let mut all: Vec<Settings> = match self.vary {
            Vary::One => std::iter::once(base)
                .chain(
                    self.schemas
                        .iter()
                        .map(|&schema| Settings { schema, ..base }),
                )
                .chain(self.batch_lines.iter().map(|&batch_lines| Settings {
                    batch_lines,
                    ..base
                }))
                .chain(
                    self.writers
                        .iter()
                        .map(|&writers| Settings { writers, ..base }),
                )
                .chain(self.gzip.iter().map(|&gzip| Settings { gzip, ..base }))
                .chain(
                    self.precision
                        .iter()
                        .map(|&precision| Settings { precision, ..base }),
                )
                .collect(),
            Vary::All => self
                .schemas
                .iter()
                .flat_map(|&schema| {
                    self.batch_lines.iter().flat_map(move |&batch_lines| {
                        self.writers.iter().flat_map(move |&writers| {
                            self.gzip.iter().flat_map(move |&gzip| {
                                self.precision.iter().map(move |&precision| Settings {
                                    schema,
                                    batch_lines,
                                    writers,
                                    gzip,
                                    precision,
                                })
                            })
                        })
                    })
                })
                .collect(),
        };
        let mut seen = Vec::new();
        all.retain(|s| {
            let new = !seen.contains(s);
            seen.push(*s);
            new
        });
        Ok(all)
    }
}

/// What to run, beside the matrix.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The trades every configuration loads.
    pub load: GeneratorConfig,
    pub matrix: Matrix,
    /// Warm runs of each query after its cold one.
    pub query_runs: usize,
    /// Trades `verify` regenerates and compares field by field.
    pub verify_sample: usize,
    /// Generator threads (0: one per core).
    pub threads: usize,
    /// Databases (or buckets) are named `<prefix>_<pid>_<n>`.
    pub prefix: String,
    /// The server's process, when it runs on this machine.
    pub server_pid: Option<u32>,
    /// The directories holding the server's per-database directories, when it is local.
    pub server_data_dirs: Vec<PathBuf>,
    /// Where checkpoints go while a configuration loads.
    pub scratch: PathBuf,
    /// How long to wait after each load for the server to compact it, for the disk bytes
    /// after compaction (1.x only); zero: not measured.
    pub compaction_wait: std::time::Duration,
}

/// Why `precision` cannot store the trades of `plan` exactly, if it cannot: a trade time that
/// is not a whole unit would be cut, and trades of one symbol falling in one unit would
/// become a single point.
pub fn precision_problem(plan: &MarketPlan, precision: Precision) -> Option<String> {
    if precision == Precision::Ns {
        return None;
    }
    let unit = precision.nanos();
    let (mut cut, mut colliding, mut total) = (0u64, 0u64, 0u64);
    let mut trades = TradeColumns::default();
    for s in 0..plan.symbols().len() {
        for d in 0..plan.sessions().len() {
            trades.clear();
            plan.generate(s, d, &mut trades);
            let mut previous = None;
            for &t in &trades.times {
                total += 1;
                if t.rem_euclid(unit) != 0 {
                    cut += 1;
                }
                let at = precision.of(t);
                if previous == Some(at) {
                    colliding += 1;
                }
                previous = Some(at);
            }
        }
    }
    (cut > 0).then(|| {
        let merged = match colliding {
            0 => String::new(),
            n => {
                format!(", {n} of them into the point of the trade before them of the same symbol")
            }
        };
        format!(
            "precision {precision} would cut the times of {cut} of {total} trades{merged}, so the \
             load could not be read back exactly"
        )
    })
}

/// Runs the matrix against `config`'s server and returns the report. `progress` counts each
/// configuration's load in turn and carries the cancel flag: once set, the runs done so far
/// are the report. `finished` hears of each run as it ends.
pub fn run(
    config: &InfluxConfig,
    options: &BenchOptions,
    progress: &Progress,
    mut finished: impl FnMut(&Run),
) -> Result<Report> {
    let settings = options.matrix.settings()?;
    let plan = MarketPlan::new(options.load.clone())?;
    let probe = Probe::new(config, options.server_pid, options.server_data_dirs.clone())?;
    let version = influx::client::Client::new(config.clone())?
        .version()
        .map_err(|e| BenchError::Unreachable(e.to_string()))?;
    let mut report = Report::new(
        ServerInfo {
            version,
            url: config.public_url(),
            api: config.api,
            query_language: config.query_language,
            sources: probe.sources(),
        },
        Machine::this(),
        options,
    );
    let mut problems: HashMap<Precision, Option<String>> = HashMap::new();
    for (index, settings) in settings.into_iter().enumerate() {
        if progress.cancelled() {
            break;
        }
        let problem = problems
            .entry(settings.precision)
            .or_insert_with(|| precision_problem(&plan, settings.precision))
            .clone();
        let run = match problem {
            Some(reason) => Run::rejected(settings, reason),
            None => {
                let name = format!("{}_{}_{index}", options.prefix, std::process::id());
                let target = InfluxConfig {
                    database: name.clone(),
                    bucket: name,
                    schema: settings.schema,
                    ..config.clone()
                };
                let outcome = run_one(&target, &plan, options, settings, &probe, progress);
                if let Err(e) = influx::drop_target(&target) {
                    tracing::warn!(target = %target.target(), error = %telemetry::chain(&e), "could not drop the benchmark's database");
                }
                match outcome {
                    Ok(Some(run)) => run,
                    Ok(None) => break,
                    Err(e) => return Err(e),
                }
            }
        };
        tracing::info!(
            configuration = %run.settings.label(),
            trades_per_second = run.trades_per_second,
            verified = run.verified,
            rejected = run.rejected,
            "benchmark configuration done"
        );
        finished(&run);
        report.runs.push(run);
    }
    let _ = std::fs::remove_dir_all(&options.scratch);
    Ok(report)
}

/// Whether a load's failure means the server cannot be reached at all (as opposed to
/// refusing this configuration).
fn unreachable(e: &IngestError) -> bool {
    matches!(
        e,
        IngestError::Store(StoreError::Unavailable(Backend::Influx(
            InfluxError::Unreachable(_) | InfluxError::RetriesExhausted(_)
        )))
    )
}

/// One configuration into `target`, which it creates; `None` if it was cancelled.
fn run_one(
    target: &InfluxConfig,
    plan: &MarketPlan,
    options: &BenchOptions,
    settings: Settings,
    probe: &Probe,
    progress: &Progress,
) -> Result<Option<Run>> {
    if let Err(e) = influx::setup(target) {
        return match e {
            InfluxError::Unreachable(_) => Err(BenchError::Unreachable(e.to_string())),
            e => Ok(Some(Run::rejected(settings, telemetry::chain(&e)))),
        };
    }
    let write = WriteOptions {
        batch_lines: settings.batch_lines,
        writers: settings.writers,
        gzip: settings.gzip,
        precision: settings.precision,
        ..WriteOptions::default()
    };
    let load = Target::Influx {
        config: Box::new(target.clone()),
        write,
        checkpoint_dir: options.scratch.clone(),
    };
    let spec = LoadSpec {
        threads: options.threads,
        ..LoadSpec::new(options.load.clone())
    };
    progress.done.store(0, Ordering::Relaxed);
    let stats = Arc::new(BatchStats::default());
    let cpu_before = probe.cpu_seconds();
    let (outcome, peak_loading) =
        probe.watch_memory(|| ingest::run(&load, &spec, progress, &stats));
    let cpu_after = probe.cpu_seconds();
    let summary = match outcome {
        Ok(summary) => summary,
        Err(IngestError::Cancelled) => return Ok(None),
        Err(e) if unreachable(&e) => return Err(BenchError::Unreachable(telemetry::chain(&e))),
        Err(e) => return Ok(Some(Run::rejected(settings, telemetry::chain(&e)))),
    };
    let disk_bytes = probe.disk_bytes(target);
    let dir_name = match target.api {
        Api::V1 => Some(target.database.clone()),
        Api::V2 => influx::client::Client::new(target.clone())
            .ok()
            .and_then(|c| influx::admin::bucket_id(&c).ok().flatten()),
    };
    let data_dir_bytes = dir_name.and_then(|name| probe.data_dir_bytes(&name));
    let disk_bytes_compacted = probe.compacted_disk_bytes(target, options.compaction_wait);

    let store = influx::open(target.clone()).map_err(BenchError::Influx)?;
    let ((queries, verified), peak_reading) = probe.watch_memory(|| {
        let queries = workload::run(store.as_ref(), target, plan, options.query_runs);
        let verified = verify::verify(store.as_ref(), options.verify_sample, 1)
            .map(|report| report.ok())
            .unwrap_or(false);
        (queries, verified)
    });
    let batches = summary.batches.as_ref();
    Ok(Some(Run {
        schema: settings.schema,
        settings,
        candle_path: CandlePath::Stored1m,
        trades: Some(summary.trades),
        seconds: Some(summary.seconds),
        trades_per_second: Some(summary.trades_per_second),
        write_latency_ms: batches.map(|b| report::Latency {
            p50: b.latency_ms_p50,
            p99: b.latency_ms_p99,
        }),
        server_cpu_seconds: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after - before),
        server_peak_rss_bytes: peak_loading.max(peak_reading),
        disk_bytes: disk_bytes.or(data_dir_bytes),
        data_dir_bytes,
        bytes_per_trade: disk_bytes
            .or(data_dir_bytes)
            .map(|b| b as f64 / summary.trades.max(1) as f64),
        disk_bytes_compacted,
        bytes_per_trade_compacted: disk_bytes_compacted
            .map(|b| b as f64 / summary.trades.max(1) as f64),
        bytes_sent: batches.map(|b| b.bytes_sent),
        queries,
        verified,
        rejected: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(vary: Vary) -> Matrix {
        Matrix {
            schemas: vec![Schema::Tags, Schema::PerSymbol],
            batch_lines: vec![10_000, 1_000],
            writers: vec![2, 1, 4],
            gzip: vec![false, true],
            precision: vec![Precision::Ns, Precision::Ms],
            vary,
        }
    }

    #[test]
    fn one_at_a_time_varies_each_list_around_the_base() {
        let settings = matrix(Vary::One).settings().unwrap();
        assert_eq!(settings.len(), 1 + 1 + 1 + 2 + 1 + 1);
        let base = settings[0];
        assert_eq!(
            base,
            Settings {
                schema: Schema::Tags,
                batch_lines: 10_000,
                writers: 2,
                gzip: false,
                precision: Precision::Ns
            }
        );
        for s in &settings[1..] {
            let differences = [
                s.schema != base.schema,
                s.batch_lines != base.batch_lines,
                s.writers != base.writers,
                s.gzip != base.gzip,
                s.precision != base.precision,
            ];
            assert_eq!(differences.iter().filter(|d| **d).count(), 1, "{s:?}");
        }
        assert_eq!(
            matrix(Vary::All).settings().unwrap().len(),
            2 * 2 * 3 * 2 * 2
        );
        let empty = Matrix {
            gzip: vec![],
            ..matrix(Vary::All)
        };
        assert!(matches!(empty.settings(), Err(BenchError::EmptyMatrix)));
    }

    #[test]
    fn a_matrix_file_gives_the_lists_flags_do_not() {
        let file = MatrixFile::parse(
            "schema = [\"no_trade_id\", \"tags\"]\nwriters = [3]\nprecision = [\"us\"]\nvary = \"all\"\n",
        )
        .unwrap();
        let flags = MatrixFile {
            writers: Some(vec![1, 2]),
            ..MatrixFile::default()
        };
        let m = file.merge(flags);
        assert_eq!(m.schemas, [Schema::NoTradeId, Schema::Tags]);
        assert_eq!(m.writers, [1, 2], "the flag wins");
        assert_eq!(m.precision, [Precision::Us]);
        assert_eq!(m.vary, Vary::All);
        assert_eq!(m.batch_lines, Matrix::default().batch_lines);
        assert_eq!(
            MatrixFile::default().merge(MatrixFile::default()),
            Matrix::default()
        );

        for (text, want) in [
            (
                "gzip = [true]\nwriter = [2]\n",
                "line 2: unknown field `writer`",
            ),
            ("schema = [\"tag\"]", "line 1: unknown variant `tag`"),
            ("batch_lines = [1000, -5]", "line 1: invalid value"),
            ("batch_lines = [0]", "batch_lines: 0 is not in 1..=10000000"),
            ("writers = [257]", "writers: 257 is not in 1..=256"),
            ("precision = []", "precision: the list is empty"),
            ("vary = [", "line 1:"),
        ] {
            let problem = MatrixFile::parse(text).unwrap_err();
            assert!(problem.starts_with(want), "{text:?}: {problem}");
            assert!(!problem.contains('\n'), "{problem}");
        }
    }

    #[test]
    fn a_precision_coarser_than_the_trades_is_a_problem() {
        let plan = MarketPlan::new(GeneratorConfig {
            trades: 5_000,
            symbols: vec![crate::model::Symbol::new("AAPL").unwrap()],
            start: chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
            end: chrono::NaiveDate::from_ymd_opt(2024, 3, 8).unwrap(),
            seed: 1,
        })
        .unwrap();
        assert_eq!(precision_problem(&plan, Precision::Ns), None);
        assert_eq!(precision_problem(&plan, Precision::Us), None);
        let ms = precision_problem(&plan, Precision::Ms).unwrap();
        assert!(ms.contains("of 5000 trades"), "{ms}");
    }
}

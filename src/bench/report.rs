//! The benchmark's report: `report.json` (every figure; `null` where one could not be read),
//! `report.md` (tables, the best configuration per goal, the machine and server) and SVG
//! charts drawn here (a bar chart needs no charting library).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::workload::{CandlePath, QueryCost};
use super::{BenchError, BenchOptions, Result, Settings, Vary, server::Sources};
use crate::generator::{GENERATOR_VERSION, GeneratorConfig};
use crate::store::influx::{Api, QueryLanguage, Schema};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub server: ServerInfo,
    pub machine: Machine,
    /// What every configuration loads.
    pub load: GeneratorConfig,
    pub generator_version: u32,
    /// The command that reproduces this report (credentials come from the environment).
    pub command: String,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerInfo {
    pub version: Option<String>,
    /// Without credentials.
    pub url: String,
    pub api: Api,
    pub query_language: QueryLanguage,
    /// Where the server's figures come from.
    pub sources: Sources,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub cpu: Option<String>,
    pub cores: Option<usize>,
    pub memory_bytes: Option<u64>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub ohlcv_version: String,
}

impl Machine {
    /// This machine, as `/proc` and `/etc/os-release` describe it.
    pub fn this() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let field = |text: Option<String>, key: &str| -> Option<String> {
            text?.lines().find_map(|l| {
                let (k, v) = l.split_once([':', '='])?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        Self {
            cpu: field(read("/proc/cpuinfo"), "model name"),
            cores: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_bytes: field(read("/proc/meminfo"), "MemTotal").and_then(|kib| {
                kib.trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|k| k * 1024)
            }),
            os: field(read("/etc/os-release"), "PRETTY_NAME"),
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_string()),
            ohlcv_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// One configuration's figures; `None` (`null`) where a figure could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub schema: Schema,
    pub settings: Settings,
    /// The candles the loader writes; `queries` name the path each one read.
    pub candle_path: CandlePath,
    pub trades: Option<u64>,
    pub seconds: Option<f64>,
    pub trades_per_second: Option<f64>,
    pub write_latency_ms: Option<Latency>,
    pub server_cpu_seconds: Option<f64>,
    pub server_peak_rss_bytes: Option<u64>,
    /// As the server counts them (TSM files and WAL), right after the load; the data
    /// directories' size when the server does not say.
    pub disk_bytes: Option<u64>,
    /// The files of the database in the server's data directories (`--server-data-dir`).
    pub data_dir_bytes: Option<u64>,
    pub bytes_per_trade: Option<f64>,
    /// As the server counts them once it has compacted the load (1.x, with
    /// `--compaction-wait-secs`; `Probe::compacted_disk_bytes` says when that is).
    pub disk_bytes_compacted: Option<u64>,
    pub bytes_per_trade_compacted: Option<f64>,
    /// Request bodies as sent (after gzip).
    pub bytes_sent: Option<u64>,
    pub queries: Vec<QueryCost>,
    /// True only once `verify` passed: every count exact, sampled trades and candles equal.
    pub verified: bool,
    /// Why the configuration was not run to the end: the server refused it, or its
    /// precision cannot hold the trades.
    pub rejected: Option<String>,
}

impl Run {
    pub fn rejected(settings: Settings, reason: String) -> Self {
        Self {
            schema: settings.schema,
            settings,
            candle_path: CandlePath::Stored1m,
            trades: None,
            seconds: None,
            trades_per_second: None,
            write_latency_ms: None,
            server_cpu_seconds: None,
            server_peak_rss_bytes: None,
            disk_bytes: None,
            data_dir_bytes: None,
            bytes_per_trade: None,
            disk_bytes_compacted: None,
            bytes_per_trade_compacted: None,
            bytes_sent: None,
            queries: Vec::new(),
            verified: false,
            rejected: Some(reason),
        }
    }

    /// Server CPU microseconds per trade.
    pub fn server_cpu_us_per_trade(&self) -> Option<f64> {
        Some(self.server_cpu_seconds? * 1e6 / self.trades? as f64)
    }
}

/// The command line that runs `options` (the server and its credentials come from the
/// environment, as for every command).
fn command(options: &BenchOptions) -> String {
    let m = &options.matrix;
    let list = |v: Vec<String>| v.join(",");
    let load = &options.load;
    let mut c = format!(
        "ohlcv bench influx --trades {} --symbols {} --start {} --end {} --seed {} --schema {} \
         --batch-lines {} --writers {} --gzip {} --precision {} --vary {} --query-runs {} --verify-sample {}",
        load.trades,
        list(load.symbols.iter().map(|s| s.to_string()).collect()),
        load.start,
        load.end,
        load.seed,
        list(m.schemas.iter().map(|s| s.to_string()).collect()),
        list(m.batch_lines.iter().map(|b| b.to_string()).collect()),
        list(m.writers.iter().map(|w| w.to_string()).collect()),
        list(m.gzip.iter().map(|g| g.to_string()).collect()),
        list(m.precision.iter().map(|p| p.to_string()).collect()),
        match m.vary {
            Vary::One => "one",
            Vary::All => "all",
        },
        options.query_runs,
        options.verify_sample,
    );
    if !options.compaction_wait.is_zero() {
        c.push_str(&format!(
            " --compaction-wait-secs {}",
            options.compaction_wait.as_secs()
        ));
    }
    if options.server_pid.is_some() {
        c.push_str(" --server-pid PID");
    }
    if !options.server_data_dirs.is_empty() {
        c.push_str(" --server-data-dir DIRS");
    }
    c
}

impl Report {
    pub fn new(server: ServerInfo, machine: Machine, options: &BenchOptions) -> Self {
        Self {
            server,
            machine,
            load: options.load.clone(),
            generator_version: GENERATOR_VERSION,
            command: command(options),
            runs: Vec::new(),
        }
    }

    /// Writes `report.json`, `report.md` and the charts into `dir`, creating it.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BenchError::Report { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| BenchError::Report {
            path: dir.join("report.json"),
            source: e.into(),
        })?;
        for (name, body) in [
            ("report.json", json),
            ("report.md", self.markdown().into_bytes()),
            ("throughput.svg", self.throughput_chart().into_bytes()),
            ("bytes_per_trade.svg", self.bytes_chart().into_bytes()),
            ("query_latency.svg", self.query_chart().into_bytes()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, body).map_err(io(&path))?;
        }
        Ok(())
    }

    fn accepted(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|r| r.rejected.is_none())
    }

    /// The verified run best by `key` (larger is better when `larger`).
    fn best(&self, larger: bool, key: impl Fn(&Run) -> Option<f64>) -> Option<(&Run, f64)> {
        self.accepted()
            .filter(|r| r.verified)
            .filter_map(|r| key(r).map(|k| (r, k)))
            .reduce(|a, b| {
                let better = if larger { b.1 > a.1 } else { b.1 < a.1 };
                if better { b } else { a }
            })
    }

    /// The run whose queries the side-by-side table shows: the fastest verified load.
    fn showcase(&self) -> Option<&Run> {
        self.best(true, |r| r.trades_per_second).map(|(r, _)| r)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let or_null = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        let _ = writeln!(md, "# InfluxDB benchmark\n");
        let _ = writeln!(md, "```sh\n{}\n```\n", self.command);
        let s = &self.server;
        let m = &self.machine;
        let _ = writeln!(md, "| | |\n| --- | --- |");
        let _ = writeln!(
            md,
            "| server | InfluxDB {} at {} ({:?} API, {:?}) |",
            or_null(s.version.clone()),
            s.url,
            s.api,
            s.query_language
        );
        let _ = writeln!(
            md,
            "| server figures | CPU: {}; memory: {}; disk: {} |",
            or_null(s.sources.cpu.clone()),
            or_null(s.sources.memory.clone()),
            or_null(s.sources.disk.clone())
        );
        let _ = writeln!(
            md,
            "| machine | {}, {} cores, {} GiB, {}, Linux {} |",
            or_null(m.cpu.clone()),
            or_null(m.cores.map(|c| c.to_string())),
            or_null(m.memory_bytes.map(|b| format!("{:.1}", b as f64 / GIB))),
            or_null(m.os.clone()),
            or_null(m.kernel.clone())
        );
        let l = &self.load;
        let _ = writeln!(
            md,
            "| load | {} trades, {}, {} to {}, seed {}, generator v{} |",
            l.trades,
            l.symbols
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            l.start,
            l.end,
            l.seed,
            self.generator_version
        );
        let _ = writeln!(
            md,
            "| schemas | {} |\n",
            Schema::ALL
                .iter()
                .map(|s| format!("`{s}`: {}", s.describe()))
                .collect::<Vec<_>>()
                .join("; ")
        );

        let _ = writeln!(md, "## Writes\n");
        let _ = writeln!(
            md,
            "| configuration | trades/s | write p50 / p99 ms | server CPU s | CPU µs/trade | server peak RSS MiB | disk bytes | bytes/trade | compacted bytes/trade | verified |"
        );
        let _ = writeln!(
            md,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for r in &self.runs {
            if let Some(reason) = &r.rejected {
                let _ = writeln!(
                    md,
                    "| {} | rejected: {} | | | | | | | | |",
                    r.settings.label(),
                    reason.replace('|', "\\|")
                );
                continue;
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.settings.label(),
                num(r.trades_per_second, 0),
                or_null(
                    r.write_latency_ms
                        .map(|l| format!("{:.1} / {:.1}", l.p50, l.p99))
                ),
                num(r.server_cpu_seconds, 1),
                num(r.server_cpu_us_per_trade(), 2),
                num(r.server_peak_rss_bytes.map(|b| b as f64 / MIB), 1),
                or_null(r.disk_bytes.map(|b| b.to_string())),
                num(r.bytes_per_trade, 1),
                num(r.bytes_per_trade_compacted, 1),
                r.verified
            );
        }

        let _ = writeln!(md, "\n## Best configuration per goal (verified runs)\n");
        let goals: [Goal; 4] = [
            ("throughput", true, |r| r.trades_per_second, "trades/s"),
            (
                "write latency",
                false,
                |r| r.write_latency_ms.map(|l| l.p99),
                "ms p99",
            ),
            (
                "server CPU",
                false,
                Run::server_cpu_us_per_trade,
                "CPU µs/trade",
            ),
            ("disk", false, |r| r.bytes_per_trade, "bytes/trade"),
        ];
        let _ = writeln!(
            md,
            "| goal | configuration | figure |\n| --- | --- | ---: |"
        );
        for (goal, larger, key, unit) in goals {
            match self.best(larger, key) {
                Some((run, value)) => {
                    let _ = writeln!(
                        md,
                        "| {goal} | {} | {} {unit} |",
                        run.settings.label(),
                        fmt_num(value, 2)
                    );
                }
                None => {
                    let _ = writeln!(md, "| {goal} | null | null |");
                }
            }
        }

        if let Some(run) = self.showcase() {
            let _ = writeln!(
                md,
                "\n## Queries by candle path ({})\n\nThe load's first symbol; the day and the month of the load's middle session, and the whole load. Cold is the first run after the load; p50 and p99 over the warm runs.\n",
                run.settings.label()
            );
            let _ = writeln!(
                md,
                "| query | candle path | cold ms | p50 ms | p99 ms | rows |\n| --- | --- | ---: | ---: | ---: | ---: |"
            );
            for q in &run.queries {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    q.name,
                    q.candle_path.label(),
                    num(q.cold_ms, 1),
                    num(q.p50_ms, 1),
                    num(q.p99_ms, 1),
                    match (&q.error, q.rows) {
                        (Some(e), _) => format!("error: {}", e.replace('|', "\\|")),
                        (None, rows) => or_null(rows.map(|r| r.to_string())),
                    }
                );
            }
        }
        let _ = writeln!(
            md,
            "\nCharts: [throughput](throughput.svg), [bytes per trade](bytes_per_trade.svg), [query latency](query_latency.svg). Every figure, with `null` where one could not be read: [report.json](report.json)."
        );
        md
    }

    fn throughput_chart(&self) -> String {
        let bars: Vec<(String, f64)> = self
            .accepted()
            .filter_map(|r| Some((r.settings.label(), r.trades_per_second?)))
            .collect();
        bar_chart("Trades per second by configuration", "trades/s", &bars)
    }

    fn bytes_chart(&self) -> String {
        let bars: Vec<(String, f64)> = self
            .accepted()
            .filter_map(|r| Some((r.settings.label(), r.bytes_per_trade?)))
            .collect();
        bar_chart("Bytes on disk per trade by configuration", "bytes", &bars)
    }

    fn query_chart(&self) -> String {
        let bars: Vec<(String, f64)> = self
            .showcase()
            .map(|run| {
                run.queries
                    .iter()
                    .filter_map(|q| {
                        Some((format!("{}: {}", q.candle_path.label(), q.name), q.p50_ms?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        bar_chart("Query latency p50 by candle path", "ms", &bars)
    }
}

/// A goal of the best-configuration table: its name, whether larger is better, the figure
/// and its unit.
type Goal = (&'static str, bool, fn(&Run) -> Option<f64>, &'static str);

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = MIB * 1024.0;

fn fmt_num(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "null".into(), |v| fmt_num(v, decimals))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart: one labelled bar per value, scaled to the largest.
fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    const LABEL: f64 = 330.0;
    const PLOT: f64 = 420.0;
    const ROW: f64 = 24.0;
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let height = 50.0 + ROW * bars.len() as f64;
    let width = LABEL + PLOT + 110.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 40.0 + ROW * i as f64;
        let w = if max > 0.0 { PLOT * value / max } else { 0.0 };
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#4878a8\"/>\
             <text x=\"{}\" y=\"{}\">{} {}</text>",
            LABEL - 8.0,
            y + 14.0,
            escape(label),
            LABEL,
            ROW - 6.0,
            LABEL + w + 6.0,
            y + 14.0,
            if *value >= 100.0 {
                fmt_num(*value, 0)
            } else {
                fmt_num(*value, 2)
            },
            escape(unit)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_scales_to_its_largest_bar_and_escapes_labels() {
        let svg = bar_chart("t", "ms", &[("a<b".into(), 2.0), ("c".into(), 4.0)]);
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("width=\"420.0\""), "{svg}");
        assert!(svg.contains("width=\"210.0\""), "{svg}");
        assert!(svg.starts_with("<svg"));
    }

    #[test]
    fn the_flux_paths_are_labelled_in_the_table_the_chart_and_the_json() {
        use crate::store::influx::Precision;
        let settings = Settings {
            schema: Schema::Tags,
            batch_lines: 1_000,
            writers: 1,
            gzip: false,
            precision: Precision::Ns,
        };
        let mut run = Run::rejected(settings, String::new());
        run.rejected = None;
        run.verified = true;
        run.trades_per_second = Some(1.0);
        run.queries = [CandlePath::ServerFlux, CandlePath::DownsampledTask]
            .map(|candle_path| QueryCost {
                name: "1h candles, a month".into(),
                candle_path,
                cold_ms: Some(2.0),
                p50_ms: Some(1.0),
                p99_ms: Some(1.5),
                rows: Some(3),
                error: None,
            })
            .to_vec();
        let report = Report {
            server: ServerInfo {
                version: Some("2.7.11".into()),
                url: "http://127.0.0.1:8086/".into(),
                api: Api::V2,
                query_language: QueryLanguage::Flux,
                sources: Sources {
                    cpu: None,
                    memory: None,
                    disk: None,
                    data_dirs: Vec::new(),
                },
            },
            machine: Machine::this(),
            load: GeneratorConfig::default(),
            generator_version: GENERATOR_VERSION,
            command: "ohlcv bench influx".into(),
            runs: vec![run],
        };
        let md = report.markdown();
        for label in ["server Flux aggregateWindow", "downsampled (task)"] {
            assert!(
                md.contains(&format!(
                    "| 1h candles, a month | {label} | 2.0 | 1.0 | 1.5 | 3 |"
                )),
                "{md}"
            );
            assert!(
                report
                    .query_chart()
                    .contains(&format!("{label}: 1h candles, a month")),
                "{label}"
            );
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["runs"][0]["queries"][0]["candle_path"], "server_flux");
        assert_eq!(
            json["runs"][0]["queries"][1]["candle_path"],
            "downsampled_task"
        );
    }
}

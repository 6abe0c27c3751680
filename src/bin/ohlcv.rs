//! The `ohlcv` command: parses arguments, calls the library, prints. Errors end here as one
//! line on stderr and a non-zero exit.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use ohlcv::api::{self, AppState, LoadDefaults};
use ohlcv::config::{
    CandlesArgs, Cli, Command, InfluxCommand, LoadArgs, RangeArgs, ServeArgs, StoreKind,
    TradesArgs, VerifyArgs,
};
use ohlcv::ingest::influx::{BatchStats, InfluxLoadOptions};
use ohlcv::ingest::jobs::{Jobs, Target};
use ohlcv::ingest::{self, LoadOptions, Progress};
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::influx::{self, InfluxConfig, InfluxStore, SetupOutcome};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::{candles, format, telemetry, verify};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message without the usage block, folded onto one line.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{}", message.join(" "));
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging();
    match run(cli) {
        Ok(code) => code,
        // A reader such as `head` that stops early is not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let parquet = ParquetStore::new(&cli.data_dir);
    if let Command::Load(args) = &cli.command {
        return match cli.store.store {
            StoreKind::Parquet => load(&parquet, args),
            StoreKind::Influxdb => load_influx(&cli, args),
        };
    }
    if let Command::Influx(InfluxCommand::Setup) = &cli.command {
        return influx_setup(&cli.store.influx()?);
    }
    let store: Box<dyn Store> = match cli.store.store {
        StoreKind::Parquet => Box::new(parquet),
        StoreKind::Influxdb => Box::new(InfluxStore::new(cli.store.influx()?)?),
    };
    match cli.command {
        Command::Candles(args) => print_candles(store.as_ref(), &args),
        Command::Trades(args) => print_trades(store.as_ref(), &args),
        Command::Verify(args) => run_verify(store.as_ref(), &args),
        Command::Serve(args) => {
            let target = match cli.store.store {
                StoreKind::Parquet => Target::Parquet {
                    dir: cli.data_dir.clone(),
                },
                StoreKind::Influxdb => Target::Influx {
                    config: Box::new(cli.store.influx()?),
                    write: args.load.write_options(),
                    checkpoint_dir: cli.data_dir.clone(),
                },
            };
            serve(store, target, &args)
        }
        Command::Load(_) | Command::Influx(_) => unreachable!("handled above"),
    }
}

fn serve(store: Box<dyn Store>, target: Target, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.bind, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
        tracing::info!(address = %listener.local_addr()?, "serving");
        let state = AppState::new(
            store.into(),
            std::sync::Arc::new(Jobs::new(target)),
            LoadDefaults {
                config: args.load.generator_config(),
                threads: args.load.threads,
                retention_days: args.load.retention,
                replace: args.load.replace,
                resume: args.load.resume,
                shard: args.load.shard,
            },
            Duration::from_secs(args.request_timeout_secs),
        );
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down: finishing requests in flight, stopping a running load");
        };
        api::serve(listener, state, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn influx_setup(config: &InfluxConfig) -> anyhow::Result<ExitCode> {
    let what = config.missing_target();
    match influx::setup(config)? {
        SetupOutcome::Created => println!(
            "created {what} with a retention of {} days",
            config.retention_days
        ),
        SetupOutcome::Exists => println!(
            "{what} exists with a retention of {} days",
            config.retention_days
        ),
        SetupOutcome::RetentionDiffers { existing_days } => println!(
            "{what} exists, but its retention ({}) differs from the configured {} days; left unchanged",
            existing_days.map_or("infinite".to_string(), |d| format!("{d} days")),
            config.retention_days
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` with a thread that sets `progress.cancel` on Ctrl-C or SIGTERM, so a load
/// stops cleanly (writing its checkpoint) and `--resume` can continue it.
fn cancellable<T: Send>(progress: &Progress, work: impl FnOnce() -> T + Send) -> T {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = finished => return,
                }
                tracing::warn!(
                    "stopping: finishing the batches in flight, then writing the checkpoint"
                );
                progress.cancel.store(true, Ordering::Relaxed);
            });
        });
        let result = work();
        let _ = done.send(());
        result
    })
}

fn load_influx(cli: &Cli, args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let influx = cli.store.influx()?;
    let options = InfluxLoadOptions {
        config: args.generator_config(),
        influx,
        write: args.write_options(),
        shard: args.shard,
        resume: args.resume,
        replace: args.replace,
        checkpoint_dir: cli.data_dir.clone(),
        threads: args.threads,
        retention_days: args.retention,
        now: chrono::Utc::now(),
    };
    let progress = Progress::default();
    let stats = std::sync::Arc::new(BatchStats::default());
    let summary = watched(&progress, Some(&stats), || {
        ingest::influx::load(&options, &progress, &stats)
    })?;
    let b = &summary.batches;
    tracing::info!(
        trades = summary.trades,
        written = summary.written,
        seconds = summary.seconds,
        trades_per_second = summary.trades_per_second,
        peak_rss_bytes = summary.peak_rss_bytes,
        batches = b.batches,
        retried = b.retried,
        failed = b.failed,
        bytes_raw = b.bytes_raw,
        bytes_sent = b.bytes_sent,
        latency_ms_p50 = b.latency_ms_p50,
        latency_ms_p99 = b.latency_ms_p99,
        "load complete"
    );
    let mut out = std::io::stdout().lock();
    write_load_figures(
        &mut out,
        summary.trades,
        &format!(
            "{} ({} chunks, {} already acknowledged)",
            summary.written, summary.chunks, summary.chunks_skipped
        ),
        summary.seconds,
        summary.trades_per_second,
        summary.peak_rss_bytes,
    )?;
    writeln!(
        out,
        "batches         {} sent, {} retried, {} failed, {} split",
        b.batches, b.retried, b.failed, b.split
    )?;
    writeln!(
        out,
        "bytes           {} before compression, {} sent",
        b.bytes_raw, b.bytes_sent
    )?;
    writeln!(
        out,
        "write latency   p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        b.latency_ms_p50, b.latency_ms_p90, b.latency_ms_p99, b.latency_ms_max
    )?;
    Ok(ExitCode::SUCCESS)
}

fn load(store: &ParquetStore, args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        config: args.generator_config(),
        threads: args.threads,
        replace: args.replace,
        retention_days: args.retention,
        now: chrono::Utc::now(),
    };
    let progress = Progress::default();
    let summary = watched(&progress, None, || {
        ingest::load(store.dir(), &options, &progress)
    })?;
    tracing::info!(
        trades = summary.trades,
        written = summary.written,
        seconds = summary.seconds,
        trades_per_second = summary.trades_per_second,
        peak_rss_bytes = summary.peak_rss_bytes,
        bytes_on_disk = summary.bytes_on_disk,
        "load complete"
    );
    let mut out = std::io::stdout().lock();
    write_load_figures(
        &mut out,
        summary.trades,
        &format!(
            "{} ({} partitions, {} already on disk, {} beyond retention)",
            summary.written,
            summary.partitions,
            summary.partitions_skipped,
            summary.partitions_expired
        ),
        summary.seconds,
        summary.trades_per_second,
        summary.peak_rss_bytes,
    )?;
    writeln!(
        out,
        "bytes on disk   {} ({:.1} MiB, {:.2} bytes/trade)",
        summary.bytes_on_disk,
        mib(summary.bytes_on_disk),
        summary.bytes_on_disk as f64 / summary.trades.max(1) as f64
    )?;
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The lines both loads' summaries start with.
fn write_load_figures(
    out: &mut impl Write,
    trades: u64,
    written: &str,
    seconds: f64,
    trades_per_second: f64,
    peak_rss_bytes: Option<u64>,
) -> std::io::Result<()> {
    writeln!(out, "trades          {trades}")?;
    writeln!(out, "written         {written}")?;
    writeln!(out, "seconds         {seconds:.2}")?;
    writeln!(out, "trades/s        {trades_per_second:.0}")?;
    match peak_rss_bytes {
        Some(b) => writeln!(out, "peak RSS        {:.1} MiB", mib(b)),
        None => writeln!(out, "peak RSS        unknown on this OS"),
    }
}

/// Runs a load with progress reporting and Ctrl-C/SIGTERM handling.
fn watched<T: Send>(
    progress: &Progress,
    batches: Option<&BatchStats>,
    work: impl FnOnce() -> T + Send,
) -> T {
    let finished = AtomicBool::new(false);
    let (wake, woken) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(|| report_progress(progress, &finished, woken, batches));
        let result = cancellable(progress, work);
        finished.store(true, Ordering::Relaxed);
        let _ = wake.send(());
        result
    })
}

/// A progress bar on a terminal, a JSON log line every 5 s otherwise.
fn report_progress(
    progress: &Progress,
    finished: &AtomicBool,
    woken: mpsc::Receiver<()>,
    batches: Option<&BatchStats>,
) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {percent:>3}% {human_pos}/{human_len} trades  {per_sec}  ETA {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    let period = if terminal {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    };
    while !finished.load(Ordering::Relaxed) {
        if woken.recv_timeout(period).is_ok() {
            break;
        }
        let done = progress.done.load(Ordering::Relaxed);
        let total = progress.total.load(Ordering::Relaxed);
        match &bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None => {
                let secs = started.elapsed().as_secs_f64();
                let rate = done as f64 / secs.max(1e-9);
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
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn query_range(args: &RangeArgs) -> anyhow::Result<(chrono_tz::Tz, i64, i64)> {
    let tz = candles::parse_tz(&args.tz)?;
    let start = query::parse_time(&args.start, tz).context("--start")?;
    let end = query::parse_time(&args.end, tz).context("--end")?;
    Ok((tz, start, end))
}

fn print_candles(store: &dyn Store, args: &CandlesArgs) -> anyhow::Result<ExitCode> {
    let (tz, start, end) = query_range(&args.range)?;
    let q = CandleQuery {
        symbol: args.range.symbol.clone(),
        interval: args.interval,
        start,
        end,
        tz,
        fill: args.fill,
    };
    let rows = query::candles(store, &q)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    format::write_candles(
        &mut out,
        args.format,
        &q.symbol,
        q.interval,
        &args.range.tz,
        &rows,
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_trades(store: &dyn Store, args: &TradesArgs) -> anyhow::Result<ExitCode> {
    let (_, start, end) = query_range(&args.range)?;
    let trades = query::trades(store, &args.range.symbol, start, end, args.limit)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    format::write_trades(&mut out, args.format, &args.range.symbol, &trades)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn run_verify(store: &dyn Store, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let report = verify::verify(store, args.sample, args.sample_seed)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "chunks checked       {}", report.chunks_checked)?;
    writeln!(out, "trades counted       {}", report.trades_counted)?;
    writeln!(out, "trades sampled       {}", report.trades_sampled)?;
    writeln!(out, "sessions recomputed  {}", report.sessions_recomputed)?;
    writeln!(
        out,
        "seconds              {:.2}",
        started.elapsed().as_secs_f64()
    )?;
    if report.ok() {
        writeln!(out, "OK: the store matches the generator")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "MISMATCH: {} differences", report.differences)?;
    for line in &report.listed {
        writeln!(out, "  {line}")?;
    }
    Ok(ExitCode::FAILURE)
}

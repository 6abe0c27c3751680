//! The `ohlcv` command: parses arguments, calls the library, prints. Errors end here as one
//! line on stderr and a non-zero exit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use ohlcv::api::{self, AppState, Settings};
use ohlcv::config::{
    BenchCommand, BenchInfluxArgs, Cli, Command, InfluxCommand, LoadArgs, RangeArgs, ServeArgs,
};
use ohlcv::ingest::jobs::Jobs;
use ohlcv::ingest::{self, BatchStats, Progress, Target};
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::influx;
use ohlcv::{bench, candles, format, stats, telemetry, verify};

fn main() -> ExitCode {
    let cli = match Cli::parse_with_legacy_env() {
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
    let data_dir = &cli.data_dir;
    match &cli.command {
        Command::Load(args) => load(cli.store.target(data_dir, args)?, args),
        Command::Influx(InfluxCommand::Setup) => {
            let config = cli.store.influx()?;
            println!("{}", influx::setup(&config)?.describe(&config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Influx(args)) => bench_influx(&cli.store.influx()?, args),
        Command::Candles(args) => {
            let (tz, start, end) = query_range(&args.range)?;
            let q = CandleQuery {
                symbol: args.range.symbol.clone(),
                interval: args.interval,
                start,
                end,
                tz,
                fill: args.fill,
            };
            let rows = query::candles(cli.store.open(data_dir)?.as_ref(), &q)?;
            print(|out| {
                format::write_candles(
                    out,
                    args.format,
                    &q.symbol,
                    q.interval,
                    &args.range.tz,
                    &rows,
                )
            })
        }
        Command::Trades(args) => {
            let (_, start, end) = query_range(&args.range)?;
            let store = cli.store.open(data_dir)?;
            let trades = query::trades(store.as_ref(), &args.range.symbol, start, end, args.limit)?;
            print(|out| format::write_trades(out, args.format, &args.range.symbol, &trades))
        }
        Command::Verify(args) => {
            let store = cli.store.open(data_dir)?;
            let report = verify::verify(store.as_ref(), args.sample, args.sample_seed)?;
            print(|out| write!(out, "{report}"))?;
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Stats(args) => {
            let store = cli.store.open(data_dir)?;
            let report = stats::report(store.as_ref(), args.symbols.as_deref())?;
            print(|out| report.write(out, args.format))
        }
        Command::Serve(args) => {
            let settings = Settings {
                request_timeout: Duration::from_secs(args.request_timeout_secs),
                batch_lines: args.load.write_options().batch_lines,
                auth: args.auth()?,
                max_ingestion_trades: args.max_ingestion_trades,
                limits: args.limits(),
            };
            // The server's own load is what /api/start and `{}` start: refuse to serve one
            // that no request could start.
            ohlcv::generator::MarketPlan::new(args.load.spec().load)
                .context("the server's own load (--trades, --symbols, --start, --end)")?;
            let store = cli.store.open(data_dir)?;
            serve(
                store,
                cli.store.target(data_dir, &args.load)?,
                args,
                settings,
            )
        }
    }
}

/// Runs a load with progress reporting; Ctrl-C or SIGTERM stops it cleanly.
fn load(target: Target, args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let (progress, stats) = (Progress::default(), Arc::new(BatchStats::default()));
    let batches = matches!(target, Target::Influx { .. }).then_some(stats.as_ref());
    let summary = ingest::progress::watch(&progress, batches, || {
        ingest::run(&target, &args.spec(), &progress, &stats)
    })?;
    print(|out| write!(out, "{summary}"))
}

/// Runs the benchmark with progress as for `load`, writes its report, and prints where.
/// Ctrl-C or SIGTERM stops it after the current configuration's batches, with a report of the
/// configurations done.
fn bench_influx(config: &influx::InfluxConfig, args: &BenchInfluxArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let progress = Progress::default();
    let report = ingest::progress::watch(&progress, None, || {
        bench::run(config, &options, &progress, |run| {
            let figure = match (&run.rejected, run.trades_per_second) {
                (Some(reason), _) => format!("rejected: {reason}"),
                (None, Some(rate)) => format!("{rate:.0} trades/s, verified: {}", run.verified),
                (None, None) => "no figures".into(),
            };
            eprintln!("{}: {figure}", run.settings.label());
        })
    })?;
    report.write(&args.report)?;
    println!(
        "{} configurations; report in {}",
        report.runs.len(),
        args.report.join("report.md").display()
    );
    Ok(if progress.cancelled() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn serve(
    store: Box<dyn Store>,
    target: Target,
    args: &ServeArgs,
    settings: Settings,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.bind, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
        tracing::info!(
            address = %listener.local_addr()?,
            store = target.store_name(),
            location = %target.describe(),
            auth = if settings.auth.is_open() { "none" } else { "bearer token" },
            "serving"
        );
        if settings.auth.is_open() && !args.bind.is_loopback() {
            tracing::warn!(
                address = %args.bind,
                "serving without an API token on a non-loopback address: anyone who can reach it may start, stop and replace loads"
            );
        }
        let state = AppState::new(
            store.into(),
            Arc::new(Jobs::new(target).with_history(usize::try_from(args.ingestion_history).unwrap_or(usize::MAX))),
            args.load.spec(),
            settings,
        );
        let shutdown = async {
            telemetry::shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight, stopping a running load (a second signal exits at once)");
            tokio::spawn(telemetry::exit_on_second_signal());
        };
        api::serve(listener, state, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn query_range(args: &RangeArgs) -> anyhow::Result<(chrono_tz::Tz, i64, i64)> {
    let tz = candles::parse_tz(&args.tz)?;
    let start = query::parse_time(&args.start, tz).context("--start")?;
    let end = query::parse_time(&args.end, tz).context("--end")?;
    Ok((tz, start, end))
}

/// Writes to stdout through a buffer.
fn print(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock>) -> std::io::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

//! Logs, shutdown signals and resource figures.
//!
//! Logs are JSON lines on stderr (one object per event, fields flattened), filtered by
//! `RUST_LOG`, or else the proof of concept's `LOG_LEVEL` (default `info`), so stdout stays
//! clean for command output such as csv.

use tracing_subscriber::EnvFilter;

/// The log filter from `RUST_LOG`, else `LOG_LEVEL`; an unusable one is `info`, and named.
fn log_filter(
    rust_log: Option<String>,
    log_level: Option<String>,
) -> (EnvFilter, Option<&'static str>) {
    let (variable, directives) = match (rust_log, log_level) {
        (Some(directives), _) => ("RUST_LOG", directives),
        // The proof of concept's levels are pino's; `fatal` and `silent` have other names here.
        (None, Some(level)) => (
            "LOG_LEVEL",
            match level.trim().to_ascii_lowercase().as_str() {
                "fatal" => "error".to_string(),
                "silent" => "off".to_string(),
                level @ ("trace" | "debug" | "info" | "warn" | "error" | "off") => {
                    level.to_string()
                }
                _ => return (EnvFilter::new("info"), Some("LOG_LEVEL")),
            },
        ),
        (None, None) => return (EnvFilter::new("info"), None),
    };
    match EnvFilter::try_new(directives) {
        Ok(filter) => (filter, None),
        Err(_) => (EnvFilter::new("info"), Some(variable)),
    }
}

/// Installs the JSON log subscriber; a second call is a no-op.
pub fn init_logging() {
    let (filter, rejected) = log_filter(
        std::env::var("RUST_LOG").ok(),
        std::env::var("LOG_LEVEL").ok(),
    );
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(variable) = rejected {
        tracing::warn!(variable, "not a log filter; logging at info");
    }
    // A panic is a log line like any other, in JSON, rather than the default hook's text.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current();
        tracing::error!(
            panic = %panic_message(info.payload()),
            location = %location,
            thread = thread.name().unwrap_or("unnamed"),
            "panic"
        );
    }));
}

/// The message a panic was raised with (`panic!`'s text), or a placeholder for other payloads.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// An error and its sources, `: `-separated, for a log line or a one-line message.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Once a first signal has asked for a clean stop, waits for a second and then ends the
/// process at once (exit status 130), for whoever does not want to wait for the stop.
pub async fn exit_on_second_signal() {
    shutdown_signal().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM: what a command or the server stops on.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `/proc/<pid>/<file>` of process `pid`, or of this process.
fn proc_file(pid: Option<u32>, file: &str) -> Option<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    };
    std::fs::read_to_string(path).ok()
}

fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = proc_file(pid, "status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
}

/// Peak resident set size of this process (VmHWM), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    peak_rss_bytes_of(None)
}

/// Current resident set size (VmRSS), where the OS reports it.
pub fn rss_bytes() -> Option<u64> {
    rss_bytes_of(None)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
pub fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of(None)
}

/// Peak resident set size (VmHWM) of process `pid` (this one if `None`), since it started or
/// since [`reset_peak_rss`].
pub fn peak_rss_bytes_of(pid: Option<u32>) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// Current resident set size (VmRSS) of process `pid` (this one if `None`).
pub fn rss_bytes_of(pid: Option<u32>) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// Starts the peak resident set size of process `pid` afresh from its current size (proc(5),
/// `clear_refs` value 5); false where this process may not (another user's process).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU seconds (user + system) process `pid` (this one if `None`) has used, from
/// `/proc/<pid>/stat`.
pub fn cpu_seconds_of(pid: Option<u32>) -> Option<f64> {
    let stat = proc_file(pid, "stat")?;
    // Fields after the command name, which is parenthesised and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name and state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Rust targets.
    Some(ticks as f64 / 100.0)
}

/// Bytes received and sent over every interface but loopback of this process's network
/// namespace, from `/proc/self/net/dev`.
pub fn network_bytes() -> Option<(u64, u64)> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    let mut total = (0, 0);
    for line in dev.lines().skip(2) {
        let (name, counters) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        total.0 += c.first().copied().unwrap_or(0);
        total.1 += c.get(8).copied().unwrap_or(0);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_level_stands_in_for_rust_log() {
        let filter = |rust_log: Option<&str>, level: Option<&str>| {
            let (filter, rejected) =
                super::log_filter(rust_log.map(Into::into), level.map(Into::into));
            (filter.to_string(), rejected)
        };
        assert_eq!(filter(None, None), ("info".into(), None));
        assert_eq!(filter(None, Some("debug")), ("debug".into(), None));
        assert_eq!(filter(None, Some("WARN")), ("warn".into(), None));
        assert_eq!(filter(None, Some("fatal")), ("error".into(), None));
        assert_eq!(filter(None, Some("silent")), ("off".into(), None));
        assert_eq!(
            filter(Some("ohlcv=trace"), Some("error")),
            ("ohlcv=trace".into(), None)
        );
        assert_eq!(
            filter(None, Some("loud")),
            ("info".into(), Some("LOG_LEVEL"))
        );
        assert_eq!(filter(Some("[["), None), ("info".into(), Some("RUST_LOG")));
    }

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            // The high-water mark read later is at least the resident size read before it.
            let now = super::rss_bytes().expect("VmRSS");
            let peak = super::peak_rss_bytes().expect("VmHWM");
            assert!(peak >= now && now > 0);
        }
    }

    #[test]
    fn cpu_and_network_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            let spin = std::time::Instant::now();
            while spin.elapsed() < std::time::Duration::from_millis(30) {
                std::hint::black_box(0);
            }
            assert!(super::cpu_seconds().expect("/proc/self/stat") > 0.0);
            assert!(super::network_bytes().is_some());
        }
    }
}

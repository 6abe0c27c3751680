//! Logs and resource figures.
//!
//! Logs are JSON lines on stderr (one object per event, fields flattened), filtered by
//! `RUST_LOG` (default `info`), so stdout stays clean for command output such as csv.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; a second call is a no-op.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
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
    proc_status_kib("VmHWM:")
}

/// Current resident set size (VmRSS), where the OS reports it.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            // The high-water mark read later is at least the resident size read before it.
            let now = super::rss_bytes().expect("VmRSS");
            let peak = super::peak_rss_bytes().expect("VmHWM");
            assert!(peak >= now && now > 0);
        }
    }
}
